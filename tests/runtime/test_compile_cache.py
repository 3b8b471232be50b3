"""The on-disk compile cache (runtime/cache.py) as seen through runtime/jit.py.

Each test points QUANTIR_CACHE_DIR at its own directory and empties the
in-process cache, so every compile below goes to the disk cache. "Compiled
again" is observed by wrapping jit._build (the pipeline + LLVM step): in
another process it is replaced by a function that fails, so a result there
proves the entry was loaded, not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize

from quantir.compiler.diagnostics import UserError
from quantir.compiler.pipeline import PIPELINES
from quantir.runtime import api, cache, jit

ENC, K = "q4_0", 96


def _packed(rows: int = 9) -> np.ndarray:
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (rows, K // 32, 18), dtype=np.uint8)
    blocks[..., 0:2] = np.frombuffer(np.float16(0.125).tobytes(), np.uint8)
    return blocks.reshape(rows, K // 32 * 18)


def _expected(packed: np.ndarray) -> np.ndarray:
    return gguf_dequantize(packed, GGMLQuantizationType.Q4_0)


def _entries(d: Path) -> list[Path]:
    return sorted(d.glob("*.qbin")) if d.exists() else []


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A fresh disk cache, an empty in-process cache, and a count of real compiles."""
    d = tmp_path / "cache"
    monkeypatch.setenv("QUANTIR_CACHE_DIR", str(d))
    monkeypatch.delenv("QUANTIR_CACHE", raising=False)
    monkeypatch.setattr(jit, "_memory", {})
    return d


@pytest.fixture
def builds(monkeypatch) -> list:
    """Records every real compile (jit._build call) in this process."""
    calls: list = []
    real = jit._build

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(jit, "_build", counting)
    return calls


def _forget_in_process(monkeypatch) -> None:
    monkeypatch.setattr(jit, "_memory", {})


# A child process that must find every kernel in the disk cache: compiling fails there.
_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize
    from quantir.runtime import api, jit

    mode, ready, go = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "cached-only":
        def no_compile(*args, **kwargs):
            raise RuntimeError("compiled again: the disk cache entry was not used")
        jit._build = no_compile
    if ready != "-":
        Path(ready).touch()
        deadline = time.monotonic() + 60
        while not Path(go).exists():  # start together with the other processes
            if time.monotonic() > deadline:
                sys.exit("timed out waiting for the start signal")
            time.sleep(0.005)
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (9, 3, 18), dtype=np.uint8)
    blocks[..., 0:2] = np.frombuffer(np.float16(0.125).tobytes(), np.uint8)
    packed = blocks.reshape(9, 54)
    w = gguf_dequantize(packed, GGMLQuantizationType.Q4_0)
    y = api.dequantize("q4_0", packed)
    assert np.array_equal(y.view(np.uint32), w.view(np.uint32)), "dequantize differs"
    x = rng.standard_normal((2, 96)).astype(np.float32)
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    got = api.qmatmul("q4_0", x, packed, exact=True)
    assert np.allclose(got, ref, rtol=1e-4, atol=1e-4), "qmatmul differs"
    print("ok")
    """
)


def _child(mode: str, env: dict, ready: str = "-", go: str = "-") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode, ready, go],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0 and out.strip() == "ok", (
        f"child exited {proc.returncode}\nstdout: {out}\nstderr: {err[-3000:]}"
    )


def _warm_both(packed: np.ndarray) -> None:
    """Compile the child's two kernels (same K, same x rank) in this process."""
    api.dequantize(ENC, packed)
    api.qmatmul(ENC, np.zeros((2, K), np.float32), packed, exact=True)


def test_second_process_loads_from_disk(cache_dir, builds):
    packed = _packed()
    _warm_both(packed)
    assert len(builds) == 2
    entries = _entries(cache_dir)
    assert len(entries) == 2
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in entries}
    _finish(_child("cached-only", dict(os.environ)))
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in _entries(cache_dir)} == before


def test_same_process_reloads_from_disk(cache_dir, builds, monkeypatch):
    packed = _packed()
    api.dequantize(ENC, packed)
    _forget_in_process(monkeypatch)
    y = api.dequantize(ENC, packed)
    assert len(builds) == 1
    assert np.array_equal(y.view(np.uint32), _expected(packed).view(np.uint32))


def test_key_covers_pipeline(cache_dir, builds):
    packed = _packed()
    api.dequantize(ENC, packed)
    api.dequantize(ENC, packed, pipeline="quantir-cpu-scalar")
    assert len(builds) == 2 and len(_entries(cache_dir)) == 2


def _flip(offset_from_end: int):
    def corrupt(data: bytes, key: str) -> bytes:
        i = len(data) - offset_from_end
        return data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]

    return corrupt


def _valid_header(payload: bytes, key: str) -> bytes:
    """An entry whose checksum matches but whose payload may not be a compiled module."""
    return cache._HEADER.pack(cache.MAGIC, cache.FORMAT, cache._digest(key, payload)) + payload


def _with_meta(change):
    """A well-formed entry (valid checksum) whose metadata `change(meta)` edited."""

    def corrupt(data: bytes, key: str) -> bytes:
        payload = data[cache._HEADER.size :]
        (n,) = struct.unpack_from("<Q", payload)
        meta = json.loads(payload[8 : 8 + n])
        meta = change(meta)
        blob = json.dumps(meta).encode()
        return _valid_header(struct.pack("<Q", len(blob)) + blob + payload[8 + n :], key)

    return corrupt


def _plans(change):
    """Host plans edited by `change(plans)`, with a digest that matches them."""

    def edit(meta):
        plans = change(meta["plans"])
        text = json.dumps(plans, sort_keys=True)
        return meta | {"plans": plans, "plans_sha256": hashlib.sha256(text.encode()).hexdigest()}

    return _with_meta(edit)


def _set(field, value):
    return _with_meta(lambda meta: meta | {field: value})


def _drop_a_kernel(meta):
    signatures = dict(meta["signatures"])
    signatures.pop(next(iter(signatures)))
    return meta | {"signatures": signatures}


def _extra_parameter(meta):
    name, params = next(iter(meta["signatures"].items()))
    return meta | {"signatures": meta["signatures"] | {name: [*params, ["int", []]]}}


def _rename_kernels(meta):
    return meta | {"signatures": {k + "_x": v for k, v in meta["signatures"].items()}}


CORRUPTIONS = {
    "flip-object-code": _flip(100),
    "flip-last-byte": _flip(1),
    "flip-magic": lambda d, k: b"X" + d[1:],
    "flip-checksum": lambda d, k: d[:20] + bytes([d[20] ^ 1]) + d[21:],
    "truncate-half": lambda d, k: d[: len(d) // 2],
    "truncate-header": lambda d, k: d[:10],
    "empty": lambda d, k: b"",
    "other-format": lambda d, k: d[:8] + (99).to_bytes(4, "little") + d[12:],
    "not-json": lambda d, k: _valid_header((7).to_bytes(8, "little") + b"junk!!!", k),
    "json-missing-keys": lambda d, k: _valid_header((2).to_bytes(8, "little") + b"{}", k),
    "json-not-object": lambda d, k: _valid_header((2).to_bytes(8, "little") + b"[]", k),
    "length-past-end": lambda d, k: _valid_header((1 << 40).to_bytes(8, "little") + b"{}", k),
    # Issue 10: well-formed entries (valid checksum) with bad metadata.
    "target-is-gpu": _set("target", "gpu"),
    "target-unknown": _set("target", 3),
    "plans-not-object": _plans(lambda plans: ["func"]),
    "plans-deeply-nested": _set("plans", "[" * 5000),
    "plans-digest-mismatch": _set("plans_sha256", "0" * 64),
    "plan-edited-without-digest": _with_meta(
        lambda m: m | {"plans": {k: v | {"registers": 1} for k, v in m["plans"].items()}}
    ),
    "plan-reads-undefined-register": _plans(
        lambda plans: {
            k: v | {"steps": [[kind, t, [99] * len(a)] for kind, t, a in v["steps"]]}
            for k, v in plans.items()
        }
    ),
    "plan-unknown-step": _plans(
        lambda plans: {k: v | {"steps": [["jump", -1, []]]} for k, v in plans.items()}
    ),
    "plan-bad-argument": _plans(
        lambda plans: {k: v | {"args": [[0, "input"]]} for k, v in plans.items()}
    ),
    "ptx-not-text": _set("ptx", 5),
    "signatures-not-object": _set("signatures", [1, 2]),
    "signature-not-list": _with_meta(lambda m: m | {"signatures": {"k": "memref"}}),
    "signature-bad-kind": _with_meta(lambda m: m | {"signatures": {"k": [["str", []]]}}),
    "signature-bad-dims": _with_meta(lambda m: m | {"signatures": {"k": [["memref", [-1]]]}}),
    "kernel-missing": _with_meta(_drop_a_kernel),
    "kernel-arity": _with_meta(_extra_parameter),
    "kernel-symbols-absent": _with_meta(_rename_kernels),
    "extra-field": _with_meta(lambda m: m | {"more": 1}),
    # Found by fuzzing: valid host code without the function the caller runs.
    "plans-empty": _plans(lambda plans: {}),
    "plan-of-other-function": _plans(
        lambda plans: {k.replace("dequantize", "other"): v for k, v in plans.items()}
    ),
    "plan-misnamed": _plans(lambda plans: {k: v | {"name": "other"} for k, v in plans.items()}),
    # The checksum is bound to the key: a valid entry of another key never loads.
    "foreign-entry": lambda d, k: _valid_header(d[cache._HEADER.size :], "0" * 64),
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_corrupt_entry_is_rebuilt(how, cache_dir, builds, monkeypatch):
    packed = _packed()
    api.dequantize(ENC, packed)
    (entry,) = _entries(cache_dir)
    good = entry.read_bytes()
    entry.write_bytes(CORRUPTIONS[how](good, entry.stem))
    _forget_in_process(monkeypatch)
    y = api.dequantize(ENC, packed)
    assert len(builds) == 2, "the corrupt entry was not rebuilt"
    assert np.array_equal(y.view(np.uint32), _expected(packed).view(np.uint32))
    # The rebuilt entry replaced the corrupt one and is itself loadable.
    assert _entries(cache_dir) == [entry]
    assert entry.read_bytes() == good
    _forget_in_process(monkeypatch)
    api.dequantize(ENC, packed)
    assert len(builds) == 2


def test_gpu_pipeline_on_the_cpu_is_a_user_error():
    with pytest.raises(
        UserError, match="pipeline 'quantir-gpu' compiles for nvptx, but the device"
    ):
        api.dequantize(ENC, _packed(), pipeline="quantir-gpu")
    # A pass list that leaves GPU ops for the CPU code generator: the same error type.
    with pytest.raises(UserError, match="code generator cannot translate"):
        api.dequantize(ENC, _packed(), pipeline=PIPELINES["quantir-gpu"])


def test_concurrent_processes_share_one_cache(cache_dir, tmp_path):
    """Three processes compile the same kernels into an empty cache at the same moment."""
    env = dict(os.environ)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(3)]
    procs = [_child("compile", env, str(r), str(go)) for r in ready]
    try:
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "children did not start"
            assert all(p.poll() is None for p in procs), "a child exited before starting"
            time.sleep(0.01)
        go.touch()
        for p in procs:
            _finish(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    # One complete entry per compiled graph and per kernel, no temporary files left behind...
    assert len(_entries(cache_dir)) == 2
    assert len(_entries(cache_dir / cache.KERNELS)) == 2
    leftovers = [p.name for p in cache_dir.rglob("*") if p.is_file() and p.suffix != ".qbin"]
    assert leftovers == []
    # ...and they load in a process that cannot compile.
    _finish(_child("cached-only", env))


@pytest.mark.parametrize("value", ["0", "off"])
def test_cache_off_writes_nothing(value, cache_dir, builds, monkeypatch):
    monkeypatch.setenv("QUANTIR_CACHE", value)
    packed = _packed()
    y = api.dequantize(ENC, packed)
    assert np.array_equal(y.view(np.uint32), _expected(packed).view(np.uint32))
    assert not cache_dir.exists()
    _forget_in_process(monkeypatch)
    api.dequantize(ENC, packed)
    assert len(builds) == 2  # nothing on disk to load from


def test_unwritable_cache_dir_only_warns(tmp_path, monkeypatch, builds):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("QUANTIR_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.delenv("QUANTIR_CACHE", raising=False)
    monkeypatch.setattr(jit, "_memory", {})
    monkeypatch.setattr(cache, "_warned", False)
    packed = _packed()
    with pytest.warns(UserWarning, match="compile cache"):
        y = api.dequantize(ENC, packed)
    assert np.array_equal(y.view(np.uint32), _expected(packed).view(np.uint32))
    assert len(builds) == 1
