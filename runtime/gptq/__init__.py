"""GPTQ checkpoints: loading, saving, bit packing and the numpy reference dequantizer.

The format (docs/gptq.md): per linear layer (K = in_features,
N = out_features, G groups along K) qweight int32 [K*bits/32, N], qzeros
int32 [G, N*bits/32], scales float16 [G, N], g_idx int32 [K] and an optional
float16 bias [N]; codes are packed LSB-first into 32-bit words and
w[k, n] = scales[g, n] * (q[k, n] - z[g, n]) with g = g_idx[k].
"""

from quantir.runtime.gptq.checkpoint import (
    GPTQCheckpoint,
    describe_checkpoint,
    load_gptq_checkpoint,
)
from quantir.runtime.gptq.config import config_to_dict, find_gptq_config, parse_gptq_config
from quantir.runtime.gptq.layer import (
    GPTQ_TENSOR_NAMES,
    GPTQFormatError,
    GPTQLinear,
    dequantize_gptq_reference,
    expected_tensor_specs,
)
from quantir.runtime.gptq.packing import (
    pack_codes,
    pack_qweight,
    pack_qzeros,
    unpack_codes,
    unpack_qweight,
    unpack_qzeros,
)
from quantir.runtime.gptq.rtn import act_order_g_idx, quantize_gptq_rtn
from quantir.runtime.gptq.writer import save_gptq_checkpoint

__all__ = [
    "GPTQ_TENSOR_NAMES",
    "GPTQCheckpoint",
    "GPTQFormatError",
    "GPTQLinear",
    "act_order_g_idx",
    "config_to_dict",
    "dequantize_gptq_reference",
    "describe_checkpoint",
    "expected_tensor_specs",
    "find_gptq_config",
    "load_gptq_checkpoint",
    "pack_codes",
    "pack_qweight",
    "pack_qzeros",
    "parse_gptq_config",
    "quantize_gptq_rtn",
    "save_gptq_checkpoint",
    "unpack_codes",
    "unpack_qweight",
    "unpack_qzeros",
]
