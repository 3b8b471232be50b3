"""On-disk cache of compiled modules.

Entries live in QUANTIR_CACHE_DIR (default ~/.cache/quantir; QUANTIR_CACHE=0
turns the disk cache off), one file per key: compiled graphs at the top,
the object code of single kernels under `kernels/` (runtime/jit.py), the
thread pool's under `runtime/` (runtime/cpu_pool.py). A key hashes everything the
generated code depends on: the input IR, the target (CPU name and features,
or GPU architecture), and the versions of quantir, xDSL and llvmlite.

An entry is `MAGIC | format | sha256(key | payload) | payload`. Writers
write a temporary file and rename it into place, so concurrent processes
never see a partial entry (the last writer wins; both wrote the same bytes).
A reader that finds a truncated or corrupt entry (checksum mismatch) deletes
it and reports a miss, and the caller rebuilds it. The checksum covers the
key, and the key hashes the compiler's version and sources: an entry copied
or renamed from another key, or left by another version, never verifies.
The checksum detects accidents, not forgery: the cache directory is the
user's own (see docs/runtime-abi.md, "Compile cache").
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import warnings
from pathlib import Path

MAGIC = b"QIRCACHE"
FORMAT = 2  # 2: the checksum covers the key
_HEADER = struct.Struct("<8sI32s")


def cache_dir() -> Path | None:
    if os.environ.get("QUANTIR_CACHE", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    env = os.environ.get("QUANTIR_CACHE_DIR")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "quantir"


def make_key(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        data = p.encode() if isinstance(p, str) else p
        h.update(struct.pack("<Q", len(data)))
        h.update(data)
    return h.hexdigest()


KERNELS = "kernels"
"""The subdirectory of per-kernel entries (object code of one kernel each)."""

RUNTIME = "runtime"
"""The subdirectory of the runtime's own compiled code (the thread pool)."""


def _path(key: str, subdir: str = "") -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    return (d / subdir if subdir else d) / f"{key}.qbin"


def load(key: str, subdir: str = "") -> bytes | None:
    """The payload stored under `key` (in `subdir`), or None (missing, unreadable or corrupt)."""
    path = _path(key, subdir)
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) >= _HEADER.size:
        magic, fmt, digest = _HEADER.unpack_from(data)
        payload = data[_HEADER.size :]
        if magic == MAGIC and fmt == FORMAT and _digest(key, payload) == digest:
            return payload
    # Corrupt, foreign or from another format: drop it so the rebuilt entry replaces it.
    discard(key, subdir)
    return None


def _digest(key: str, payload: bytes) -> bytes:
    return hashlib.sha256(struct.pack("<Q", len(key)) + key.encode() + payload).digest()


def discard(key: str, subdir: str = "") -> None:
    """Delete the entry under `key` (one its reader found invalid), if any."""
    path = _path(key, subdir)
    if path is None:
        return
    try:
        path.unlink()
    except OSError:
        pass


_warned = False


def store(key: str, payload: bytes, subdir: str = "") -> None:
    """Store `payload` under `key` (in `subdir`) atomically; failures only warn
    (the cache is optional)."""
    global _warned
    path = _path(key, subdir)
    if path is None:
        return
    blob = _HEADER.pack(MAGIC, FORMAT, _digest(key, payload)) + payload
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        if not _warned:
            warnings.warn(
                f"quantir: cannot write the compile cache in {path.parent}: {e}", stacklevel=2
            )
            _warned = True
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
