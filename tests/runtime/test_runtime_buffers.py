"""Buffers are checked before compiled code runs.

Compiled kernels trust their arguments; every buffer the eager API hands
them (x, the packed weight or the four GPTQ tensors, out=) is checked first.
A bad buffer is a BufferError (a ValueError) whose message names the buffer
as the caller knows it (x, packed, out, qweight, qzeros, scales, g_idx) and
says what was expected; a bad argument that is not a buffer (thread count,
config, encoding) is a ValueError. Nothing crashes, and out= is left
untouched when a check fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from quantir.dialects.encoding import QuantizationConfig
from quantir.runtime import api
from quantir.runtime.buffers import BufferError
from quantir.runtime.compiled_graph import compile_on_device
from quantir.runtime.gptq import quantize_gptq_rtn

ENC, K, N = "q8_0", 160, 37  # kernels shared with test_kernels_gguf (same K)
ROW_BYTES = K // 32 * 34


def _packed() -> np.ndarray:
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (N, K // 32, 34), dtype=np.uint8)
    blocks[..., 0:2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)  # finite d
    return blocks.reshape(N, ROW_BYTES)


def _x(m: int = 3) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((m, K)).astype(np.float32)


def _raises(exc, names: str, fn):
    """fn() raises `exc` whose message names the buffer (regex `names`)."""
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    assert re.search(names, message), f"message does not name {names!r}: {message!r}"
    return message


X_NAME = r"\bx\b"
PACKED_NAME = r"packed"
OUT_NAME = r"\bout"


# -- GGUF operands ------------------------------------------------------------------------------


def test_valid_call_runs():
    """The baseline the error cases below perturb."""
    y = api.qmatmul(ENC, _x(), _packed())
    assert y.shape == (3, N) and np.isfinite(y).all()


@pytest.mark.parametrize(
    "make_x,expected",
    [
        (lambda: _x().astype(np.float64), "float32"),
        (lambda: _x().astype(np.int32), "float32"),
        (lambda: _x().tolist(), "numpy"),
        (lambda: np.zeros((3, K - 32), np.float32), str(K)),  # K mismatch
        (lambda: np.zeros((3, K + 1), np.float32), str(K)),
        (lambda: np.float32(1.0), ""),  # 0-d
        (lambda: np.zeros((3, 2 * K), np.float32)[:, ::2], "contiguous"),
        (lambda: np.asfortranarray(_x(4)), "contiguous"),
    ],
    ids=["float64", "int32", "list", "K-32", "K+1", "0-d", "strided", "fortran"],
)
def test_bad_x(make_x, expected):
    message = _raises(BufferError, X_NAME, lambda: api.qmatmul(ENC, make_x(), _packed()))
    assert expected in message


@pytest.mark.parametrize(
    "make_packed,expected",
    [
        (lambda: _packed().view(np.int16), "uint8"),
        (lambda: _packed().astype(np.float32), "uint8"),
        (lambda: _packed()[:, :-1].copy(), "block"),  # rows not whole blocks
        (lambda: np.zeros((N, 0), np.uint8), "block"),
        (lambda: _packed().reshape(-1), "2 dimensions"),
        (lambda: _packed()[None], "2 dimensions"),
        (lambda: np.repeat(_packed(), 2, axis=0)[::2], "contiguous"),  # strided rows
        (lambda: np.asfortranarray(_packed()), "contiguous"),
        (lambda: list(_packed()), "numpy"),
    ],
    ids=[
        "int16",
        "float32",
        "partial-block",
        "empty-rows",
        "1-d",
        "3-d",
        "strided",
        "fortran",
        "list",
    ],
)
@pytest.mark.parametrize("op", ["dequantize", "qmatmul"])
def test_bad_packed(op, make_packed, expected):
    packed = make_packed()
    if op == "dequantize":
        message = _raises(BufferError, PACKED_NAME, lambda: api.dequantize(ENC, packed))
    else:
        message = _raises(BufferError, PACKED_NAME, lambda: api.qmatmul(ENC, _x(), packed))
    assert expected in message


def test_packed_k_mismatch_with_x():
    """x's K disagrees with the packed row length: named as x (the weight fixes K)."""
    packed = _packed()[:, : ROW_BYTES - 34].copy()  # K - 32
    _raises(BufferError, X_NAME, lambda: api.qmatmul(ENC, _x(), packed))


def test_out_is_filled_and_returned():
    packed, x = _packed(), _x()
    out = np.full((N, K), np.nan, np.float32)
    assert api.dequantize(ENC, packed, out=out) is out
    assert np.array_equal(out, api.dequantize(ENC, packed))
    out2 = np.full((3, N), np.nan, np.float32)
    assert api.qmatmul(ENC, x, packed, out=out2) is out2
    assert np.array_equal(out2, api.qmatmul(ENC, x, packed))
    out1 = np.full((N,), np.nan, np.float32)  # x rank 1: out [N]
    assert api.qmatmul(ENC, x[0], packed, out=out1) is out1
    assert np.array_equal(out1, out2[0])


def _sentinel(shape, dtype=np.float32) -> np.ndarray:
    return np.full(shape, 7.0, dtype)


@pytest.mark.parametrize(
    "make_out,expected",
    [
        (lambda: _sentinel((N, K - 1)), "shape"),
        (lambda: _sentinel((N + 1, K)), "shape"),
        (lambda: _sentinel((N * K,)), "dimensions"),
        (lambda: _sentinel((N, K), np.float64), "float32"),
        (lambda: _sentinel((N, 2 * K))[:, ::2], "contiguous"),
        (lambda: [0.0] * (N * K), "numpy"),
    ],
    ids=["K-1", "N+1", "flat", "float64", "strided", "list"],
)
def test_bad_out(make_out, expected):
    out = make_out()
    message = _raises(BufferError, OUT_NAME, lambda: api.dequantize(ENC, _packed(), out=out))
    assert expected in message
    if isinstance(out, np.ndarray):
        assert (out == 7.0).all(), "a rejected out= was written to"


def test_read_only_out():
    out = _sentinel((N, K))
    out.setflags(write=False)
    message = _raises(BufferError, OUT_NAME, lambda: api.dequantize(ENC, _packed(), out=out))
    assert "read-only" in message
    assert (out == 7.0).all()


def test_out_overlapping_x():
    m = 3
    buf = np.zeros(m * K + m * N, np.float32)
    x = buf[: m * K].reshape(m, K)
    x[:] = _x(m)
    out = buf[m * K - 5 : m * K - 5 + m * N].reshape(m, N)  # shares 5 floats with x
    message = _raises(BufferError, OUT_NAME, lambda: api.qmatmul(ENC, x, _packed(), out=out))
    assert "overlap" in message
    assert np.array_equal(x, _x(m)), "x was modified"


def test_out_overlapping_packed():
    packed_bytes = N * ROW_BYTES
    buf = np.zeros(packed_bytes + N * K * 4 + 64, np.uint8)
    packed = buf[:packed_bytes].reshape(N, ROW_BYTES)
    packed[:] = _packed()
    start = (packed_bytes - 64) // 4 * 4  # inside the packed bytes, float-aligned
    out = buf[start : start + N * K * 4].view(np.float32).reshape(N, K)
    message = _raises(BufferError, OUT_NAME, lambda: api.dequantize(ENC, packed, out=out))
    assert "overlap" in message
    assert np.array_equal(packed, _packed()), "packed was modified"


def test_non_buffer_arguments():
    packed = _packed()
    cfg = QuantizationConfig("gptq", 4, 128)
    with pytest.raises(ValueError, match="config"):
        api.dequantize(ENC, packed, config=cfg)
    with pytest.raises(ValueError, match="q9_9"):
        api.dequantize("q9_9", packed)
    with pytest.raises(TypeError, match="encoding"):
        api.dequantize(42, packed)
    with pytest.raises(ValueError, match="tpu"):
        api.dequantize(ENC, packed, device="tpu")


class DeviceBuffer:
    """Looks like the CUDA runtime's DeviceBuffer (buffers recognize it by name and `ptr`)."""

    def __init__(self, like: np.ndarray):
        self.ptr, self.shape, self.dtype = 0x1000, like.shape, like.dtype


def test_gpu_buffers_are_refused_by_a_cpu_program():
    types = f"tensor<?x{K}xf32>, tensor<?x{ROW_BYTES}xui8>"
    source = (
        f"func.func @f(%x: tensor<?x{K}xf32>, %w: tensor<?x{ROW_BYTES}xui8>) -> tensor<?x?xf32> "
        "{\n"
        f"  %y = quant.qmatmul #quant.encoding<{ENC}> %x, %w : ({types}) -> tensor<?x?xf32>\n"
        "  func.return %y : tensor<?x?xf32>\n}\n"
    )
    program = compile_on_device(source, "f")
    x, packed = _x(), _packed()
    for args, outputs, name in (
        ([DeviceBuffer(x), packed], None, "input x"),
        ([x, DeviceBuffer(packed)], None, "input w"),
        ([x, packed], [DeviceBuffer(np.zeros((3, N), np.float32))], "output 0"),
    ):
        message = _raises(BufferError, name, lambda a=args, o=outputs: program(a, outputs=o))
        assert "a GPU buffer cannot be used by a CPU program" in message


# -- threads ------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_invalid_thread_count(threads):
    with pytest.raises(ValueError, match="threads"):
        api.dequantize(ENC, _packed(), threads=threads)
    with pytest.raises(ValueError, match="threads"):
        api.qmatmul(ENC, _x(), _packed(), threads=threads)


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_invalid_thread_env(value, monkeypatch):
    monkeypatch.setenv("QUANTIR_NUM_THREADS", value)
    with pytest.raises(ValueError, match="QUANTIR_NUM_THREADS"):
        api.dequantize(ENC, _packed())
    api.dequantize(ENC, _packed(), threads=2)  # an explicit count wins over the variable


# -- GPTQ tensors --------------------------------------------------------------------------------


def _layer():
    w = np.random.default_rng(2).standard_normal((40, 256)) * 0.05
    return quantize_gptq_rtn(w, 4, 128)  # qweight [32, 40], qzeros [2, 5], scales [2, 40]


def _gptq_call(op, tensors, config, **kw):
    if op == "dequantize":
        return api.dequantize("gptq", tensors, config=config, **kw)
    x = np.ones((2, 256), np.float32)
    return api.qmatmul("gptq", x, tensors, config=config, **kw)


def test_gptq_baseline_and_mapping():
    layer = _layer()
    by_tuple = api.dequantize("gptq", layer.tensors(), config=layer.config)
    names = ("qweight", "qzeros", "scales", "g_idx")
    by_map = api.dequantize("gptq", dict(zip(names, layer.tensors())), config=layer.config)
    assert np.array_equal(by_tuple, by_map)
    assert np.array_equal(by_tuple, api.dequantize("gptq", layer))  # config from the layer


@pytest.mark.parametrize("op", ["dequantize", "qmatmul"])
def test_gptq_without_config(op):
    with pytest.raises(ValueError, match="config"):
        _gptq_call(op, _layer().tensors(), None)


def _swap(index, fn):
    def make(layer):
        parts = list(layer.tensors())
        parts[index] = fn(parts[index])
        return tuple(parts)

    return make


GPTQ_BAD = {
    # name: (tensors from a layer, regex naming the buffer)
    "qweight-float32": (_swap(0, lambda a: a.astype(np.float32)), "qweight"),
    "qweight-int64": (_swap(0, lambda a: a.astype(np.int64)), "qweight"),
    "qweight-rows": (_swap(0, lambda a: a[:16].copy()), "qweight"),
    # N from qweight (32) disagrees with scales (40) and with out= (40 columns)
    "qweight-cols": (_swap(0, lambda a: a[:, :32].copy()), "qweight|scales|out"),
    "qweight-fortran": (_swap(0, np.asfortranarray), "qweight"),
    "qzeros-int16": (_swap(1, lambda a: a.astype(np.int16)), "qzeros"),
    "qzeros-rows": (_swap(1, lambda a: a[:1].copy()), "qzeros"),
    "qzeros-cols": (_swap(1, lambda a: a[:, :4].copy()), "qzeros"),
    "scales-float32": (_swap(2, lambda a: a.astype(np.float32)), "scales"),
    "scales-rows": (_swap(2, lambda a: a[:1].copy()), "scales"),
    "scales-cols": (_swap(2, lambda a: a[:, :32].copy()), "scales"),
    "scales-strided": (_swap(2, lambda a: np.repeat(a, 2, axis=1)[:, ::2]), "scales"),
    "g_idx-int64": (_swap(3, lambda a: a.astype(np.int64)), "g_idx"),
    "g_idx-short": (_swap(3, lambda a: a[:128].copy()), "g_idx|qweight"),
    "g_idx-2d": (_swap(3, lambda a: a.reshape(2, 128)), "g_idx"),
    "three-tensors": (lambda layer: layer.tensors()[:3], "g_idx|4 GPTQ tensors"),
    "missing-in-mapping": (
        lambda layer: dict(zip(("qweight", "qzeros", "scales"), layer.tensors())),
        "g_idx",
    ),
}


@pytest.mark.parametrize("case", list(GPTQ_BAD))
@pytest.mark.parametrize("op", ["dequantize", "qmatmul"])
def test_bad_gptq_tensors(op, case):
    layer = _layer()
    make, names = GPTQ_BAD[case]
    out_shape = (40, 256) if op == "dequantize" else (2, 40)
    out = _sentinel(out_shape)
    _raises(BufferError, names, lambda: _gptq_call(op, make(layer), layer.config, out=out))
    assert (out == 7.0).all(), "out= was written before the check failed"


def test_gptq_bad_config_values():
    layer = _layer()
    with pytest.raises(ValueError, match="group_size"):
        api.dequantize("gptq", layer.tensors(), config=QuantizationConfig("gptq", 4, 100))
    with pytest.raises(ValueError, match="checkpoint_format"):
        api.dequantize("gptq", layer.tensors(), config=layer.config, checkpoint_format="v3")


_G_IDX_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from quantir.runtime import api
    from quantir.runtime.gptq import quantize_gptq_rtn

    layer = quantize_gptq_rtn(np.ones((40, 256)), 4, 128, desc_act=True)
    failures = []
    for bad in (10**9, 2, -1):
        g = layer.g_idx.copy()
        g[5] = bad
        tensors = (layer.qweight, layer.qzeros, layer.scales, g)
        for op in ("dequantize", "qmatmul"):
            try:
                if op == "dequantize":
                    api.dequantize("gptq", tensors, config=layer.config)
                else:
                    api.qmatmul("gptq", np.ones((2, 256), np.float32), tensors,
                                config=layer.config)
                failures.append(f"{op} g_idx[5]={bad}: no error")
            except ValueError as e:
                if "g_idx" not in str(e):
                    failures.append(f"{op} g_idx[5]={bad}: message {e}")
    print("\\n".join(failures))
    sys.exit(1 if failures else 0)
    """
)


def test_gptq_g_idx_out_of_range_is_an_error_not_a_crash():
    """g_idx values index scales/qzeros rows: out-of-range ones must be rejected.

    Run in a subprocess, since the failure mode being guarded against is a crash.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _G_IDX_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, (
        f"exit status {proc.returncode} (negative: killed by a signal)\n"
        f"{proc.stdout}\n{proc.stderr[-2000:]}"
    )
