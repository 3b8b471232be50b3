"""Mutation fuzzing of the five input surfaces (issue 10), in CI and in campaigns.

Each surface runs tests/fuzz/worker.py in a subprocess, which forks one
child per case with a timeout: a crash, a hang, a traceback or a wrong
result fails the test and names the case to reproduce
(`python tests/fuzz/worker.py SURFACE --seed S --only CASE`). CI runs a few
seeded cases per surface (well under a minute in all); a campaign runs
more with fresh seeds:

    pytest -m fuzz tests/fuzz --fuzz-cases 2000 --fuzz-seed 7
    python benchmarks/fuzz.py --minutes 20   # all surfaces, counts per surface
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parent / "worker.py"
SURFACES = ["gguf", "ir", "eager", "gptq", "cache"]


@pytest.mark.fuzz
@pytest.mark.parametrize("surface", SURFACES)
def test_fuzz_surface(surface, request, tmp_path):
    cases = request.config.getoption("--fuzz-cases")
    seed = request.config.getoption("--fuzz-seed")
    env_cache = {"QUANTIR_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, str(WORKER), surface, "--seed", str(seed), "--cases", str(cases)],
        capture_output=True,
        text=True,
        timeout=120 + 30 * cases,
        env={**os.environ, **env_cache},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(records) == cases, result.stdout[-2000:] + result.stderr[-2000:]
    findings = [r for r in records if r["outcome"] != "ok"]
    assert not findings, "\n".join(
        f"{r['outcome']}: python tests/fuzz/worker.py {surface} --seed {seed} --only {r['case']}"
        f"\n  {r['detail'][:1500]}"
        for r in findings
    )


# Cases campaigns found, fixed since: (surface, seed, case), run as they were.
FOUND = [
    ("cache", 1796074798, 830),  # host IR without the function the caller runs
    ("cache", 1796074798, 1090),
    ("cache", 1796075738, 60),  # an output's dynamic dimension with no source
]


@pytest.mark.parametrize("surface, seed, case", FOUND)
def test_fuzz_findings_stay_fixed(surface, seed, case, tmp_path):
    result = subprocess.run(
        [sys.executable, str(WORKER), surface, "--seed", str(seed), "--only", str(case)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QUANTIR_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert record["outcome"] == "ok", record["detail"]
