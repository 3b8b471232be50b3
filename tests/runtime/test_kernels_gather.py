"""quant.gather through the eager API against gguf-py, bit for bit.

`gather(table, ids)` must equal ``gguf.quants.dequantize(table[ids])`` (which
is bit-identical to ggml's C) compared as uint32 bits, for every GGUF
encoding, on both CPU pipelines (the vector code and the GPU's scalar
lowering run on the CPU), with indices that repeat, come unsorted, hit the
first and last rows, have rank 2, or are empty. Tables are random blocks
whose fp16 fields are typical scales in half the rows and any finite fp16 in
the other half (`test_kernels_gguf`'s generators). Out-of-range indices are
refused before anything runs, with the index, its position and the table's
rows in the message.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import numpy as np
import pytest
from kernel_checks import PIPELINE_NAMES, PIPELINES, assert_bits_equal
from test_kernels_gguf import ENCODINGS, LAYOUTS, _blocks_for, k_values, reference

from quantir.runtime import BufferError, api, gather
from quantir.runtime.gguf import open_gguf

TABLE_ROWS = 37
GGUF_FILE = Path(__file__).resolve().parents[1] / "data" / "gguf" / "tiny-llama-q4_k_m.gguf"


def _ids(rng: np.random.Generator, rows: int, count: int, dtype) -> np.ndarray:
    """Unsorted indices with repeats, always including the first and last row."""
    ids = rng.integers(0, rows, count)
    ids[:4] = [rows - 1, 0, rows - 1, 3]
    rng.shuffle(ids)
    return ids.astype(dtype)


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", ENCODINGS)
def test_gather_rows_bit_identical(name, pipeline):
    lay = LAYOUTS[name]
    table = _blocks_for(name, k_values(lay)[0], 5, TABLE_ROWS)
    ids = _ids(np.random.default_rng(6), TABLE_ROWS, 53, np.int32)
    y = gather(table, ids, encoding=name, pipeline=pipeline)
    assert y.shape == (53, k_values(lay)[0])
    assert_bits_equal(y, reference(lay, table[ids]), f"{name} gather")


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", ["q4_0", "q5_1", "q3_k", "q6_k"])
def test_gather_int64_indices_of_rank_2(name, pipeline):
    """[B, T] int64 ids give [B, T, K]; the kernel is the 1-D one behind reshapes."""
    lay = LAYOUTS[name]
    k = k_values(lay)[1]
    table = _blocks_for(name, k, 7, TABLE_ROWS)
    ids = _ids(np.random.default_rng(8), TABLE_ROWS, 3 * 11, np.int64).reshape(3, 11)
    y = gather(table, ids, encoding=name, pipeline=pipeline)
    assert y.shape == (3, 11, k)
    ref = reference(lay, table[ids.reshape(-1)]).reshape(3, 11, k)
    assert_bits_equal(y, ref, f"{name} gather [3, 11]")


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_gather_special_fp16_rows(pipeline):
    """All-0xFF blocks (fp16 fields NaN) and all-zero ones go through bit for bit."""
    lay = LAYOUTS["q4_k"]
    k = k_values(lay)[0]
    table = np.zeros((3, k // lay.epb * lay.block_size), np.uint8)
    table[1] = 0xFF
    table[2, : lay.block_size] = 0xFF
    ids = np.array([2, 1, 0, 1], np.int32)
    y = gather(table, ids, encoding="q4_k", pipeline=pipeline)
    assert_bits_equal(y, reference(lay, table[ids]), "q4_k special rows")


def test_gather_of_a_gguf_tensor_is_dequantize_of_the_rows():
    """The embedding of a llama.cpp file: a GGUFTensor knows its encoding."""
    embd = open_gguf(GGUF_FILE).tensor("token_embd.weight")
    ids = [5, 0, 5, embd.data.shape[0] - 1]
    y = gather(embd, ids)
    assert_bits_equal(y, api.dequantize(embd)[ids], "token_embd rows")
    assert_bits_equal(y, reference(LAYOUTS[embd.encoding.name], np.asarray(embd.data)[ids]), "ref")


def test_gather_empty_indices_and_out():
    lay = LAYOUTS["q8_0"]
    table = _blocks_for("q8_0", 64, 9, TABLE_ROWS)
    assert gather(table, np.zeros(0, np.int32), encoding="q8_0").shape == (0, 64)
    out = np.full((2, 64), np.nan, np.float32)
    y = gather(table, np.array([4, 4], np.int64), encoding="q8_0", out=out)
    assert y is out
    assert_bits_equal(out, reference(lay, table[[4, 4]]), "q8_0 out=")


@pytest.mark.parametrize(
    "ids,message",
    [
        ([0, TABLE_ROWS], f"index {TABLE_ROWS} at position 1 is past the last row"),
        ([3, -1, 2], "index -1 at position 1 is negative"),
        (np.array([[1, 2], [2**40, 0]], np.int64), f"index {2**40} at position [1, 0]"),
    ],
)
def test_gather_out_of_range_index_is_refused(ids, message):
    table = _blocks_for("q4_0", 64, 10, TABLE_ROWS)
    with pytest.raises(BufferError, match=r"input indices: ") as info:
        gather(table, ids, encoding="q4_0")
    text = str(info.value)
    assert message in text
    assert f"indices must be in [0, {TABLE_ROWS}) for the {TABLE_ROWS} rows" in text


def test_indices_are_checked_when_the_kernel_comes_from_the_disk_cache(monkeypatch):
    """The check rides on the host function's argument attributes, which the cache
    entry keeps: a program loaded from disk (no compile) refuses bad ids too."""
    from quantir.runtime import jit

    monkeypatch.delenv("QUANTIR_CACHE", raising=False)  # the disk cache on
    table = _blocks_for("q4_0", 64, 10, TABLE_ROWS)
    gather(table, [0], encoding="q4_0")  # compiled (or found) and cached
    monkeypatch.setattr(jit, "_memory", {})
    monkeypatch.setattr(jit, "_build", lambda *a, **k: pytest.fail("compiled again"))
    with pytest.raises(BufferError, match=f"index {TABLE_ROWS} at position 0"):
        gather(table, [TABLE_ROWS], encoding="q4_0")


@pytest.mark.parametrize(
    "ids,message",
    [
        (np.array([1.0, 2.0]), "expected dtype int32 or int64, got float64 (use indices.astype"),
        (np.array([1, 2], np.uint8), "expected dtype int32 or int64, got uint8"),
        (np.array([1, 2], ">i4"), "byte order"),
        (np.int64(3), "got a scalar (use [i])"),
        ("12", "expected a numpy int32 or int64 array (or a list of ints), got str"),
        ([1.5], "must hold integers"),
    ],
)
def test_gather_bad_indices_are_refused(ids, message):
    table = _blocks_for("q4_0", 64, 10, TABLE_ROWS)
    with pytest.raises(BufferError) as info:
        gather(table, ids, encoding="q4_0")
    assert message in str(info.value)


def test_gather_needs_an_encoding_for_arrays_and_refuses_gptq():
    table = _blocks_for("q4_0", 64, 10, TABLE_ROWS)
    with pytest.raises(TypeError, match="gather: an encoding is needed"):
        gather(table, [0])
    with pytest.raises(ValueError, match="GPTQ weights are not supported"):
        gather(table, [0], encoding="gptq")
    with pytest.raises(BufferError, match="not a whole number of 18-byte blocks"):
        gather(table[:, :20], [0], encoding="q4_0")


def warm_cases():
    """Compile calls for every kernel the tests above use, in test order."""
    cases = [
        functools.partial(_warm, name, pipeline, np.int32, 1, 0)
        for name, pipeline in itertools.product(ENCODINGS, PIPELINE_NAMES)
    ]
    for name, pipeline in itertools.product(["q4_0", "q5_1", "q3_k", "q6_k"], PIPELINE_NAMES):
        cases.append(functools.partial(_warm, name, pipeline, np.int64, 2, 1))
    return cases


def _warm(name: str, pipeline, dtype, ndim: int, which_k: int) -> None:
    lay = LAYOUTS[name]
    table = np.zeros((1, k_values(lay)[which_k] // lay.epb * lay.block_size), np.uint8)
    gather(table, np.zeros((1,) * ndim, dtype), encoding=name, pipeline=pipeline)
