"""A fuzz campaign over quantir's five input surfaces (issue 10).

    python benchmarks/fuzz.py --minutes 20 [--seed S] [--log campaign.jsonl]

Runs tests/fuzz/worker.py for each surface in turn (gguf, ir, eager, gptq,
cache), in rounds of --batch cases, until the time is up; each case is a
forked child with a timeout, so a crash or hang is counted, never fatal.
The seed defaults to the current time (fresh cases each campaign) and is
printed. Prints cases and findings per surface; exits 1 if anything was
found. Reproduce a finding with the command it prints.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

WORKER = Path(__file__).resolve().parents[1] / "tests" / "fuzz" / "worker.py"
SURFACES = ["gguf", "ir", "eager", "gptq", "cache"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--batch", type=int, default=50, help="cases per surface per round")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per case")
    parser.add_argument("--log", type=Path, default=None, help="append every case as JSON")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    print(f"seed {seed}, {args.minutes:g} minutes", flush=True)
    deadline = time.monotonic() + args.minutes * 60
    counts: dict[str, collections.Counter] = {s: collections.Counter() for s in SURFACES}
    seconds = collections.Counter()
    findings = []
    next_case = dict.fromkeys(SURFACES, 0)
    log = open(args.log, "a") if args.log else None
    while time.monotonic() < deadline:
        for surface in SURFACES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            proc = subprocess.run(
                [
                    sys.executable,
                    str(WORKER),
                    surface,
                    "--seed",
                    str(seed),
                    "--first",
                    str(next_case[surface]),
                    "--cases",
                    str(args.batch),
                    "--timeout",
                    str(args.timeout),
                    "--seconds",
                    str(max(left, 1)),
                ],
                capture_output=True,
                text=True,
            )
            done = 0
            for line in proc.stdout.splitlines():
                if not line.startswith("{"):
                    continue
                record = json.loads(line)
                done += 1
                counts[surface][record["outcome"]] += 1
                seconds[surface] += record["seconds"]
                if log:
                    log.write(line + "\n")
                if record["outcome"] != "ok":
                    findings.append(record)
            if proc.returncode != 0:
                counts[surface]["worker-failed"] += 1
                findings.append(
                    {
                        "surface": surface,
                        "case": next_case[surface],
                        "seed": seed,
                        "outcome": "worker-failed",
                        "detail": proc.stderr[-1500:],
                    }
                )
            next_case[surface] += max(done, 1)
    if log:
        log.close()
    print(f"{'surface':8} {'cases':>6} {'ok':>6} {'bad':>4} {'crash':>5} {'hang':>4}  seconds")
    for surface in SURFACES:
        c = counts[surface]
        total = sum(c.values())
        print(
            f"{surface:8} {total:6} {c['ok']:6} {c['bad']:4} {c['crash']:5} {c['hang']:4}"
            f"  {seconds[surface]:.0f}"
        )
    for f in findings:
        print(
            f"\n{f['outcome']}: python tests/fuzz/worker.py {f['surface']} --seed {f['seed']} "
            f"--only {f['case']}\n  {f['detail'][:1500]}"
        )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
