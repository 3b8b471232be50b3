"""quantir-run checks the g_idx of GPTQ weights from .npz files (issue 10, defect 2).

The eager API and checkpoint loader already refuse an out-of-range g_idx and
an act-order g_idx under desc_act=false; .npz weights go through the same
check (runtime.gptq.layer.g_idx_problem) instead of being clamped or ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantir.runtime.gptq import quantize_gptq_rtn
from quantir.runtime.tools.quantir_run import main

GPTQ_GRAPH = Path(__file__).resolve().parent / "data" / "gptq_linear.mlir"
LAYER = "model.layers.0.mlp.down_proj"
K, N = 256, 64


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((N, K)) * 0.05).astype(np.float32)
    return quantize_gptq_rtn(w, 4, 64, sym=True, name=LAYER)


def _run(tmp_path, capsys, layer, g_idx) -> tuple[int, str]:
    parts = {p: getattr(layer, p) for p in ("qweight", "qzeros", "scales")} | {"g_idx": g_idx}
    arrays = {f"{LAYER}.{p}": a for p, a in parts.items()}  # .npz holds the four entries
    arrays[f"{LAYER}.bias"] = np.zeros(N, np.float32)
    np.savez(tmp_path / "w.npz", **arrays)
    code = main(
        [str(GPTQ_GRAPH), "--weights", str(tmp_path / "w.npz"), "--input", "x=random:1x256"]
    )
    captured = capsys.readouterr()
    return code, captured.err


def _bad(name: str) -> np.ndarray:
    g_idx = (np.arange(K) // 64).astype(np.int32)
    if name == "negative":
        g_idx[7] = -1
    elif name == "too_large":
        g_idx[200] = 4
    elif name == "act_order":  # a permutation of groups: valid only with desc_act=true
        g_idx = g_idx[np.random.default_rng(0).permutation(K)].astype(np.int32)
    return g_idx


@pytest.mark.parametrize(
    "case, expected",
    [
        ("negative", "g_idx[7] = -1"),
        ("too_large", "g_idx[200] = 4"),
        ("act_order", "desc_act is False"),
    ],
)
def test_bad_g_idx_from_npz_is_refused(tmp_path, capsys, layer, case, expected):
    code, err = _run(tmp_path, capsys, layer, _bad(case))
    assert code == 1, err
    assert err.startswith("quantir-run: error: ") and err.count("\n") == 1, err
    assert f'GPTQ weight "{LAYER}" in ' in err
    assert expected in err and "Traceback" not in err


def test_valid_g_idx_from_npz_runs(tmp_path, capsys, layer):
    code, err = _run(tmp_path, capsys, layer, _bad("valid"))
    assert code == 0, err
