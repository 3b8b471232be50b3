"""Deeply nested JSON in a GPTQ checkpoint is a one-line error (issue 10, defect 8).

Python's json parser recurses per level: a quantize_config.json or shard
index nested a few thousand levels deep raised RecursionError, which
`quantir inspect` showed as an internal error.
"""

from __future__ import annotations

import numpy as np
import pytest

from quantir.runtime.cli import main
from quantir.runtime.gptq import (
    GPTQFormatError,
    load_gptq_checkpoint,
    quantize_gptq_rtn,
    save_gptq_checkpoint,
)

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def checkpoint(tmp_path):
    w = (np.random.default_rng(0).standard_normal((64, 256)) * 0.05).astype(np.float32)
    layer = quantize_gptq_rtn(w, 4, 64, sym=True, name="layer")
    save_gptq_checkpoint(tmp_path / "ckpt", [layer], layer.config, max_shard_bytes=4096)
    return tmp_path / "ckpt"


@pytest.mark.parametrize(
    "file, message",
    [
        ("quantize_config.json", "quantize_config.json: JSON nested too deeply"),
        ("model.safetensors.index.json", "cannot read the shard index: JSON nested too deeply"),
    ],
)
def test_deep_json_is_a_format_error(checkpoint, capsys, file, message):
    (checkpoint / file).write_text(DEEP)
    with pytest.raises(GPTQFormatError, match=message):
        load_gptq_checkpoint(checkpoint)
    code = main(["inspect", str(checkpoint)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("quantir: error: ") and err.count("\n") == 1, err
    assert message in err and "internal error" not in err and "Traceback" not in err
