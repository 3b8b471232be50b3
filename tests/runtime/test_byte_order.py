"""Byte-swapped arrays are refused at every entry point (issue 10, defect 1).

numpy names a big-endian float32 array's dtype "float32" too; compiled code
reads native byte order, so taking such an array would give wrong numbers
with no error. One check (runtime.buffers.dtype_problem) serves the eager
API's buffers, out=, quantir-run's .npy inputs and .npz weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from quantir.runtime import api
from quantir.runtime.buffers import BufferError, dtype_problem
from quantir.runtime.gptq import quantize_gptq_rtn
from quantir.runtime.tools.quantir_run import main as quantir_run

SWAPPED = ">" if sys.byteorder == "little" else "<"
DATA = Path(__file__).resolve().parents[1] / "tools" / "data"
GPTQ_GRAPH = DATA / "gptq_linear.mlir"
LAYER = "model.layers.0.mlp.down_proj"
K, N = 256, 64


def swapped(array: np.ndarray) -> np.ndarray:
    """The same values stored in the other byte order."""
    return array.astype(array.dtype.newbyteorder(SWAPPED))


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((N, K)) * 0.05).astype(np.float32)
    return quantize_gptq_rtn(w, 4, 64, sym=True, name=LAYER, bias=np.zeros(N, np.float32))


def _parts(layer) -> dict[str, np.ndarray]:
    names = ("qweight", "qzeros", "scales", "g_idx")
    return {p: getattr(layer, p) for p in names}


def test_dtype_problem_names_the_byte_order():
    assert dtype_problem(np.dtype("float32"), ("float32",)) is None
    assert dtype_problem(np.dtype("uint8"), ("uint8",)) is None  # no byte order
    message = dtype_problem(np.dtype(f"{SWAPPED}f4"), ("float32",))
    assert message is not None and "byte order" in message and "astype" in message


@pytest.mark.parametrize("part", ["qweight", "qzeros", "scales", "g_idx"])
def test_eager_gptq_refuses_swapped_tensors(layer, part):
    x = np.ones((2, K), np.float32)
    parts = _parts(layer)
    parts[part] = swapped(parts[part])
    with pytest.raises(BufferError, match=rf"{part}.*byte order"):
        api.qmatmul("gptq", x, parts, config=layer.config, exact=True)


def test_eager_refuses_swapped_x_and_out(layer):
    x = np.ones((2, K), np.float32)
    with pytest.raises(BufferError, match=r"x: .*byte order"):
        api.qmatmul("gptq", swapped(x), _parts(layer), config=layer.config, exact=True)
    out = swapped(np.zeros((2, N), np.float32))
    with pytest.raises(BufferError, match=r"out.*byte order"):
        api.qmatmul("gptq", x, _parts(layer), config=layer.config, out=out, exact=True)
    assert not out.any()  # left untouched


def _run_error(argv, capsys) -> str:
    code = quantir_run([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("quantir-run: error: ") and "Traceback" not in err, err
    return err


def _npz(tmp_path, layer, **override) -> Path:
    arrays = {f"{LAYER}.{p}": a for p, a in _parts(layer).items()}
    arrays[f"{LAYER}.bias"] = np.zeros(N, np.float32)
    arrays.update({f"{LAYER}.{p}": a for p, a in override.items()})
    path = tmp_path / "w.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("part", ["qweight", "scales", "bias"])
def test_quantir_run_refuses_swapped_npz_weights(tmp_path, capsys, layer, part):
    source = layer.bias if part == "bias" else _parts(layer)[part]
    value = swapped(np.asarray(source, np.float32) if part == "bias" else source)
    npz = _npz(tmp_path, layer, **{part: value})
    err = _run_error([GPTQ_GRAPH, "--weights", npz, "--input", "x=random:1x256"], capsys)
    assert "byte order" in err and part in err


def test_quantir_run_refuses_swapped_npy_input(tmp_path, capsys, layer):
    npz = _npz(tmp_path, layer)
    np.save(tmp_path / "x.npy", swapped(np.ones((1, K), np.float32)))
    err = _run_error([GPTQ_GRAPH, "--weights", npz, "--input", f"x={tmp_path / 'x.npy'}"], capsys)
    assert 'input "x"' in err and "byte order" in err
