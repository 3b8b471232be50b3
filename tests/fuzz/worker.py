"""Seeded mutation fuzzing of quantir's five input surfaces, one forked child per case.

    python tests/fuzz/worker.py SURFACE --seed S --cases N [--timeout T]

SURFACE is gguf, ir, eager, gptq or cache. The worker imports quantir once,
builds the seed inputs in a scratch directory, then for each case forks a
child that makes one mutated input and feeds it to quantir. The child's
verdict is its exit status: 0 the input was handled (accepted with a correct
result, or refused with a QuantirError / a one-line CLI error), 3 quantir
misbehaved (a traceback, an "internal error", a wrong result). A child
killed by a signal crashed; one still running after T seconds hangs.
Each case prints one JSON line: {"surface", "case", "seed", "outcome",
"detail"}, outcome "ok", "bad", "crash" or "hang". Reproduce a case with
--only CASE.

Children never share state: each case gets its own files, and the parent
runs no compiled code (forking a process with worker threads is unsafe).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
GGUF_SEEDS = sorted((TESTS / "data" / "gguf").glob("mini-*.gguf"))
IR_SEEDS = sorted((TESTS / "tools" / "data").glob("*.mlir")) + sorted(
    (TESTS.parent / "examples").glob("*.mlir")
)
BAD = 3  # a child's exit status for "quantir misbehaved"


class MisbehaviorError(Exception):
    """quantir did something it must not: a traceback, an internal error, a wrong result."""


# --- mutations ------------------------------------------------------------------------------


INTERESTING_INTS = [
    0,
    1,
    2,
    3,
    7,
    8,
    31,
    32,
    255,
    256,
    65535,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**63 - 1,
    2**64 - 1,
]


def mutate_bytes(rng: random.Random, data: bytes, hot: int | None = None) -> bytes:
    """A few random byte edits; `hot` bytes at the start get most of them (headers)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not buf:
            buf.extend(rng.randbytes(4))
        limit = len(buf) if hot is None or rng.random() < 0.2 else min(hot, len(buf))
        i = rng.randrange(limit)
        kind = rng.randrange(6)
        if kind == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            buf[i] = rng.randrange(256)
        elif kind == 2 and i + 8 <= len(buf):
            width = rng.choice([4, 8])
            value = rng.choice(INTERESTING_INTS) & ((1 << (8 * width)) - 1)
            buf[i : i + width] = value.to_bytes(width, "little")
        elif kind == 3:
            del buf[i : i + rng.randint(1, 64)]
        elif kind == 4:
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        else:
            del buf[i:]
    return bytes(buf)


IR_TOKENS = [
    '"',
    "{",
    "}",
    "<",
    ">",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "=",
    "->",
    "%x",
    "%0",
    "^bb0",
    "@f",
    "#quant.encoding<q4_k>",
    "tensor<",
    "?x",
    "xf32",
    "xi32",
    "xsi32",
    "xui8",
    "0",
    "-1",
    "4294967296",
    "99999999999999999999",
    "1.5e308",
    "dense<",
    "\\",
    "\n",
    " ",
    "func.return",
    "quant.qmatmul",
    "quant.weight",
    "//",
    "\x00",
    "\u00e9",
    "[" * 200,
    "{a = " * 120,
    "tuple<" * 150,
]


def mutate_ir(rng: random.Random, text: str) -> str:
    pieces = [text]
    for _ in range(rng.choice([1, 1, 1, 2, 3, 5])):  # mostly one edit: inputs that get far
        t = pieces[0]
        i = rng.randrange(len(t) + 1)
        kind = rng.randrange(5)
        if kind == 0:
            t = t[:i] + rng.choice(IR_TOKENS) + t[i:]
        elif kind == 1:
            t = t[:i] + t[i + rng.randint(1, 20) :]
        elif kind == 2:  # duplicate a line (use before def, redefinitions)
            lines = t.split("\n")
            j = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[j])
            t = "\n".join(lines)
        elif kind == 3:  # swap two lines
            lines = t.split("\n")
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[a], lines[b] = lines[b], lines[a]
            t = "\n".join(lines)
        else:  # replace a number
            import re

            numbers = list(re.finditer(r"\d+", t))
            if numbers:
                m = rng.choice(numbers)
                t = t[: m.start()] + str(rng.choice(INTERESTING_INTS + [-1])) + t[m.end() :]
        pieces[0] = t
    return pieces[0]


# --- running a command inside the child ----------------------------------------------------


def run_cli(main, argv: list[str], prog: str) -> tuple[int, str]:
    """Run a command's main in-process; its status and stderr. MisbehaviorError on a traceback."""
    err = io.StringIO()
    out = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
    text = err.getvalue()
    if "Traceback" in text or "internal error" in text:
        raise MisbehaviorError(f"{prog}: {text.strip()[-600:]}")
    if code not in (0, 1, 2):
        raise MisbehaviorError(f"{prog}: exit status {code}: {text.strip()[-300:]}")
    if code != 0 and not text.strip():
        raise MisbehaviorError(f"{prog}: exit status {code} with no message")
    return code, text


def refused_cleanly(error: BaseException) -> bool:
    from quantir.dialects.errors import QuantirError

    return isinstance(error, QuantirError)


# --- surfaces ----------------------------------------------------------------------------------


def case_gguf(rng: random.Random, work: Path) -> str:
    from quantir.runtime.cli import main as quantir_main
    from quantir.runtime.gguf import open_gguf

    np.seterr(all="ignore")  # mutated scales overflow float sums: not a finding
    seed = rng.choice(GGUF_SEEDS)
    data = seed.read_bytes()
    path = work / "m.gguf"
    path.write_bytes(mutate_bytes(rng, data, hot=4096))
    try:
        model = open_gguf(path)
        for item in list(model)[:4]:
            tensor = item if hasattr(item, "data") else model.tensor(item)
            np.asarray(tensor.data).sum()
        model.close()
    except Exception as e:  # noqa: BLE001 - classify
        if not refused_cleanly(e):
            raise MisbehaviorError(f"open_gguf: {type(e).__name__}: {e}"[:600]) from None
    code, _ = run_cli(quantir_main, ["inspect", str(path), "--metadata"], "quantir")
    return f"{seed.name} inspect={code}"


def case_ir(rng: random.Random, work: Path) -> str:
    from quantir.compiler.tools.quantir_opt import main as opt_main

    seed = rng.choice(IR_SEEDS)
    path = work / "in.mlir"
    path.write_text(mutate_ir(rng, seed.read_text()))
    pipeline = rng.choice(["quantir-cpu", "quantir-cpu-exact", "quantir-gpu", None])
    argv = [str(path)] + (["-p", pipeline] if pipeline else [])
    code, _ = run_cli(opt_main, argv, "quantir-opt")
    return f"{seed.name} -p {pipeline}: {code}"


EAGER_K, EAGER_N = 64, 8


def _eager_inputs(rng: random.Random):
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    w = np.random.default_rng(rng.randrange(2**32)).standard_normal((EAGER_N, EAGER_K))
    packed = quantize(w.astype(np.float32), GGMLQuantizationType.Q8_0)
    return packed


def _hostile_array(rng: random.Random, array: np.ndarray) -> np.ndarray:
    """`array` with one property changed: dtype, byte order, shape, strides, writability."""
    kind = rng.randrange(8)
    if kind == 0:
        return array.astype(rng.choice(["float16", "float64", "int32", "uint8", "int8"]))
    if kind == 1:
        return array.astype(array.dtype.newbyteorder(">" if sys.byteorder == "little" else "<"))
    if kind == 2 and array.ndim >= 1:
        wide = np.repeat(array, 2, axis=-1)
        return wide[..., ::2]  # same values, not contiguous
    if kind == 3:
        return array.reshape(-1) if array.ndim > 1 else array.reshape(1, -1)
    if kind == 4:
        copy = array.copy()
        copy.flags.writeable = False
        return copy
    if kind == 5 and array.ndim >= 1 and array.shape[-1] > 1:
        return array[..., :-1].copy()
    if kind == 6:
        return array.T.copy() if array.ndim == 2 else array
    return array  # unchanged


def case_eager(rng: random.Random, work: Path) -> str:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    from quantir.runtime import api

    packed = _eager_inputs(rng)
    reference = gguf_dequantize(packed, GGMLQuantizationType.Q8_0)  # [N, K] float32
    m = rng.choice([1, 3])
    x = np.random.default_rng(rng.randrange(2**32)).standard_normal((m, EAGER_K))
    x = x.astype(np.float32)
    op = rng.choice(["dequantize", "qmatmul"])
    target = rng.choice(["x", "packed", "out", "none"] if op == "qmatmul" else ["packed", "out"])
    out_shape = (m, EAGER_N) if op == "qmatmul" else (EAGER_N, EAGER_K)
    out = np.zeros(out_shape, np.float32) if target == "out" or rng.random() < 0.3 else None
    if target == "x":
        x = _hostile_array(rng, x)
    elif target == "packed":
        packed = _hostile_array(rng, packed)
    elif target == "out":
        out = _hostile_array(rng, out)
    try:
        if op == "dequantize":
            y = api.dequantize("q8_0", packed, out=out)
        else:
            y = api.qmatmul("q8_0", x, packed, out=out, exact=True)
    except Exception as e:  # noqa: BLE001 - classify
        if refused_cleanly(e):
            return f"{op} {target}: refused"
        raise MisbehaviorError(f"{op} {target}: {type(e).__name__}: {e}"[:600]) from None
    # Accepted: the inputs were valid, so the values must be right.
    if op == "dequantize":
        expected = gguf_dequantize(np.asarray(packed, np.uint8), GGMLQuantizationType.Q8_0)
        ok = np.array_equal(np.asarray(y, np.float32), expected)
    else:
        expected = np.asarray(x, np.float64) @ reference.astype(np.float64).T
        ok = np.allclose(np.asarray(y, np.float64), expected, rtol=1e-4, atol=1e-4)
    if not ok:
        raise MisbehaviorError(f"{op} {target}: wrong result for {x.dtype.str}/{packed.dtype.str}")
    if out is not None and y is not out:
        raise MisbehaviorError(f"{op}: result is not the out= buffer")
    return f"{op} {target}: correct"


def case_gptq(rng: random.Random, work: Path) -> str:
    from quantir.runtime.cli import main as quantir_main
    from quantir.runtime.gptq import (
        dequantize_gptq_reference,
        load_gptq_checkpoint,
        quantize_gptq_rtn,
        save_gptq_checkpoint,
    )

    g = np.random.default_rng(rng.randrange(2**32))
    w = (g.standard_normal((64, 256)) * 0.05).astype(np.float32)
    layer = quantize_gptq_rtn(
        w,
        rng.choice([2, 3, 4, 8]),
        rng.choice([32, 64, 128]),
        sym=rng.random() < 0.5,
        name="model.layers.0.mlp.down_proj",
    )
    directory = work / "ckpt"
    shard = rng.random() < 0.5
    save_gptq_checkpoint(directory, [layer], layer.config, max_shard_bytes=4096 if shard else None)
    files = sorted(p for p in directory.iterdir() if p.is_file())
    victim = rng.choice(files)
    data = victim.read_bytes()
    if victim.suffix == ".json" and rng.random() < 0.7:
        victim.write_text(_mutate_json(rng, json.loads(data)))
    else:
        victim.write_bytes(mutate_bytes(rng, data, hot=512))
    try:
        ckpt = load_gptq_checkpoint(directory)
        for loaded in ckpt.layers.values():
            dequantize_gptq_reference(loaded)
    except Exception as e:  # noqa: BLE001 - classify
        if not refused_cleanly(e):
            raise MisbehaviorError(f"load_gptq_checkpoint: {type(e).__name__}: {e}"[:600]) from None
    code, _ = run_cli(quantir_main, ["inspect", str(directory)], "quantir")
    return f"{victim.name} inspect={code}"


_DEEP = "\u0000deeply nested\u0000"


def _mutate_json(rng: random.Random, value: object) -> str:
    values = [
        None,
        True,
        False,
        0,
        -1,
        3,
        2**40,
        1.5,
        float("nan"),
        "",
        "x",
        [],
        {},
        "gptq",
        "gptq_v2",
        [1, 2],
        {"bits": 4},
    ]
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        choice = rng.randrange(4)
        if choice == 0:
            del value[key]
        elif choice == 1:
            value[key] = rng.choice(values)
        elif choice == 2:
            value[key] = _DEEP if rng.random() < 0.2 else {}
        else:
            inner = value[key]
            if isinstance(inner, dict) and inner:
                inner[rng.choice(list(inner))] = rng.choice(values)
    text = json.dumps(value) if not isinstance(value, str) else value
    text = text.replace(json.dumps(_DEEP), "[" * 5000 + "]" * 5000)  # too deep to build as data
    if rng.random() < 0.1:
        return "[" * 100_000 + "]" * 100_000
    return text


def case_cache(rng: random.Random, work: Path) -> str:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    from quantir.runtime import api, cache

    packed = _eager_inputs(rng)
    expected = gguf_dequantize(packed, GGMLQuantizationType.Q8_0)
    entries = sorted(Path(os.environ["QUANTIR_CACHE_DIR"]).glob("*.qbin"))
    if not entries:
        raise MisbehaviorError("the warmed cache has no entry")
    for entry in entries:
        data = entry.read_bytes()
        key = entry.stem
        how = rng.randrange(3)
        if how == 0:  # raw damage: the checksum must catch it
            data = mutate_bytes(rng, data, hot=256)
        else:  # well-formed (valid checksum) with edited metadata: validation must catch it
            payload = data[cache._HEADER.size :]
            (n,) = struct.unpack_from("<Q", payload)
            meta = payload[8 : 8 + n]
            if how == 1:
                meta = mutate_bytes(rng, meta)
            else:
                meta = _mutate_json(rng, json.loads(meta)).encode()
            payload = struct.pack("<Q", len(meta)) + meta + payload[8 + n :]
            data = cache._HEADER.pack(cache.MAGIC, cache.FORMAT, cache._digest(key, payload))
            data += payload
        entry.write_bytes(data)
    y = api.dequantize("q8_0", packed)
    if not np.array_equal(y, expected):
        raise MisbehaviorError("a damaged cache entry gave a wrong result")
    return "rebuilt or reused, correct"


SURFACES = {
    "gguf": case_gguf,
    "ir": case_ir,
    "eager": case_eager,
    "gptq": case_gptq,
    "cache": case_cache,
}


# --- the fork loop -----------------------------------------------------------------------------


def _child(surface: str, seed: int, case: int, work: Path, report: int) -> None:
    status = 0
    try:
        rng = random.Random(f"{seed}:{surface}:{case}")
        detail = SURFACES[surface](rng, work)
    except MisbehaviorError as e:
        status, detail = BAD, str(e)
    except BaseException as e:  # noqa: BLE001 - anything escaping the case is a finding
        status = BAD
        detail = f"uncaught {type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"
    os.write(report, detail.encode(errors="replace")[:4000])
    os.close(report)
    sys.stdout.flush()
    os._exit(status)


def _warm_cache(cache_dir: Path) -> None:
    """Fill the cache the cache surface damages (in a child: the parent runs no compiled code)."""
    pid = os.fork()
    if pid == 0:
        try:
            from quantir.runtime import api

            api.dequantize("q8_0", _eager_inputs(random.Random(0)))
            os._exit(0)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit("could not warm the compile cache")


def run_case(surface: str, seed: int, case: int, timeout: float, scratch: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"{surface}{case}-", dir=scratch))
    cache_dir = scratch / "cache-seed"
    if surface == "cache":  # each case damages its own copy of the warmed cache
        import shutil

        own = work / "cache"
        shutil.copytree(cache_dir, own)
        os.environ["QUANTIR_CACHE_DIR"] = str(own)
    else:
        os.environ["QUANTIR_CACHE_DIR"] = str(scratch / "cache-shared")
    read_end, write_end = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(surface, seed, case, work, write_end)
    os.close(write_end)
    outcome = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            outcome = "hang"
            break
        time.sleep(0.005)
    with os.fdopen(read_end, "rb") as f:
        detail = f.read().decode(errors="replace")
    if outcome is None:
        if os.WIFSIGNALED(status):
            outcome = "crash"
            detail = f"killed by signal {os.WTERMSIG(status)}; {detail}"
        elif os.WEXITSTATUS(status) == 0:
            outcome = "ok"
        else:
            outcome = "bad"
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return {
        "surface": surface,
        "case": case,
        "seed": seed,
        "outcome": outcome,
        "seconds": round(time.monotonic() - start, 3),
        "detail": detail,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("surface", choices=sorted(SURFACES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--first", type=int, default=0, help="number of the first case")
    parser.add_argument("--only", type=int, default=None, help="run this one case")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)
    # Import everything a case uses once, before forking (children start warm).
    import quantir.compiler.tools.quantir_opt  # noqa: F401
    import quantir.runtime.api  # noqa: F401
    import quantir.runtime.cli  # noqa: F401
    import quantir.runtime.gguf  # noqa: F401
    import quantir.runtime.gptq  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="quantir-fuzz-") as tmp:
        scratch = Path(tmp)
        if args.surface == "cache":
            os.environ["QUANTIR_CACHE_DIR"] = str(scratch / "cache-seed")
            _warm_cache(scratch / "cache-seed")
        cases = [args.only] if args.only is not None else range(args.first, args.first + args.cases)
        start = time.monotonic()
        for case in cases:
            if args.seconds is not None and time.monotonic() - start > args.seconds:
                break
            result = run_case(args.surface, args.seed, case, args.timeout, scratch)
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
