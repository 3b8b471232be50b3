"""The README's snippets and commands run as written.

Python blocks run in order in one namespace, from the checkout (they read
examples/); a line `NAME = ...` (the README's "bring your own") gets a small
stand-in. Shell blocks run line by line with the venv's bin on PATH, in a
scratch directory holding the checkout's examples/ and .venv and stand-ins
for the files the README names as placeholders; segments that create the
venv, install or run the test suites are left out (CI runs exactly those,
.ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"^(\s*)(\w+) = \.\.\.(.*)$", re.MULTILINE)
SETUP = re.compile(r"^(python3 -m venv|\.venv/bin/pip |PATH=\S* lit |\.venv/bin/pytest)")


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == language]


def _gptq_layer():
    from quantir.runtime.gptq.rtn import quantize_gptq_rtn

    w = np.random.default_rng(0).standard_normal((64, 128)).astype(np.float32)
    return quantize_gptq_rtn(w, 4, 32, name="model.layers.0.mlp.up_proj")


STAND_INS = {"layer": "_gptq_layer()"}


def test_python_snippets_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict = {"_gptq_layer": _gptq_layer}
    found = blocks("python")
    assert found, "the README has Python snippets"
    for body in found:

        def stand_in(match: re.Match) -> str:
            indent, name, _ = match.groups()
            assert name in STAND_INS, f"no stand-in for `{name} = ...`"
            return f"{indent}{name} = {STAND_INS[name]}"

        code = PLACEHOLDER.sub(stand_in, body)
        exec(compile(code, str(README), "exec"), namespace)
    # The snippets computed what they say.
    up = namespace["up"]
    assert namespace["w_f32"].shape == up.shape and np.array_equal(
        namespace["w_f32"], up.to_float32()
    )
    assert namespace["packed"].shape == (288, 144)


def sh_commands() -> list[str]:
    commands = []
    for body in blocks("sh"):
        for line in body.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kept = [seg.strip() for seg in line.split("&&") if not SETUP.match(seg.strip())]
            commands += [seg for seg in kept if seg]
    return commands


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the checkout's examples and venv, and the placeholder files."""
    from gguf import GGUFWriter

    from quantir.runtime.gptq.writer import save_gptq_checkpoint

    where = tmp_path_factory.mktemp("readme")
    (where / "examples").symlink_to(ROOT / "examples")
    (where / ".venv").symlink_to(Path(sys.executable).parent.parent)
    writer = GGUFWriter(str(where / "model-f16.gguf"), "llama")
    weights = np.random.default_rng(0).standard_normal((8, 256)).astype(np.float16)
    writer.add_tensor("blk.0.ffn_up.weight", weights)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    layer = _gptq_layer()
    save_gptq_checkpoint(where / "path/to/gptq-checkpoint", [layer], layer.config)
    return where


def test_readme_names_its_shell_commands() -> None:
    commands = sh_commands()
    for tool in ("quantir-opt", "quantir-run", "quantir inspect", "quantir quantize"):
        assert any(tool in c for c in commands), tool


UPSTREAM_TOOL = re.compile(r"\b((?:mlir-opt|mlir-translate|llc|opt)-\d+)\b")


@pytest.mark.parametrize("command", sh_commands())
def test_shell_commands_run(command: str, scratch: Path) -> None:
    # The upstream round trip needs LLVM/MLIR's tools: skipped without them,
    # except in CI (.ci/run installs them and sets QUANTIR_REQUIRE_UPSTREAM=1).
    missing = [t for t in UPSTREAM_TOOL.findall(command) if shutil.which(t) is None]
    if missing and os.environ.get("QUANTIR_REQUIRE_UPSTREAM") != "1":
        pytest.skip(f"{', '.join(missing)} not installed")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", "-c", command], cwd=scratch, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (command, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert result.stdout.strip(), command
