"""The package layout: compiler/, dialects/ and runtime/ install as
quantir.compiler, quantir.dialects and quantir.runtime, and nothing installs
under a generic top-level name (`compiler`, `runtime`, ...).

setuptools installs only the packages listed in pyproject.toml (an editable
install finds unlisted sub-packages through the folder mapping, a wheel does
not), so the list must name every folder that has an __init__.py.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("compiler", "dialects", "runtime")


def setuptools_table() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def packages_on_disk() -> set[str]:
    found = set()
    for folder in CODE_FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            found.add("quantir." + ".".join(rel.parts))
    return found


def test_code_folders_map_under_the_quantir_namespace() -> None:
    assert setuptools_table()["package-dir"] == {
        f"quantir.{folder}": folder for folder in CODE_FOLDERS
    }


def test_every_package_folder_is_listed() -> None:
    listed = set(setuptools_table()["packages"])
    missing = sorted(packages_on_disk() - listed)
    assert not missing, (
        f"folders with __init__.py missing from [tool.setuptools] packages: {missing}"
    )


def test_every_listed_package_is_a_folder_with_init() -> None:
    listed = setuptools_table()["packages"]
    assert len(listed) == len(set(listed)), "a package is listed twice"
    stale = sorted(set(listed) - packages_on_disk())
    assert not stale, f"listed packages without a folder holding __init__.py: {stale}"
    assert all(name.startswith("quantir.") for name in listed)


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    # -I: no PYTHONPATH, no script directory on sys.path; cwd outside the repo
    # so the repo's folders cannot be imported by accident.
    return subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("name", ["compiler", "dialects", "runtime", "tools", "transforms"])
def test_no_generic_top_level_names(name: str, tmp_path: Path) -> None:
    result = run_python(f"import {name}", tmp_path)
    assert result.returncode != 0, f"`import {name}` works: a generic name is installed"
    assert f"No module named '{name}'" in result.stderr


def test_the_quantir_names_import_from_anywhere(tmp_path: Path) -> None:
    result = run_python(
        "import quantir.compiler.tools.quantir_opt, quantir.dialects.quant, "
        "quantir.runtime.gguf; print(quantir.dialects.quant.__file__)",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).parent.name == "dialects"
