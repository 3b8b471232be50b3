"""The import layering: quantir.dialects <- quantir.compiler <- quantir.runtime.

Each package may import the ones below it and never the ones above:
`quantir.dialects` imports neither the compiler nor the runtime, and
`quantir.compiler` never imports the runtime. The check reads every module's
syntax tree, so it sees imports at any depth (function bodies,
`if TYPE_CHECKING:` blocks, try/except) and `importlib.import_module` /
`__import__` calls whose module name is a literal (or an f-string with a
literal prefix), not just the imports that run at load time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first: a package may import the packages before it in this list.
LAYERS = ("dialects", "compiler", "runtime")


def _layer(module: str) -> int | None:
    """The layer of an absolute module name, None outside quantir's packages."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "quantir" and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return None


def _package_of(relpath: Path) -> list[str]:
    """The package a file's relative imports start from, e.g. compiler/graph/ops.py ->
    ["quantir", "compiler", "graph"] (an __init__.py is its own package)."""
    return ["quantir", *relpath.parent.parts]


def _absolute(node: ast.ImportFrom, package: list[str]) -> str:
    if node.level == 0:
        return node.module or ""
    base = package[: len(package) - (node.level - 1)]  # level 1: the file's own package
    return ".".join([*base, *([node.module] if node.module else [])])


def _literal_prefix(arg: ast.expr) -> str | None:
    """A call argument's module name: a string literal, or an f-string's literal start."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values:
        first = arg.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def imported_modules(tree: ast.AST, package: list[str]) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `tree`, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            yield node.lineno, module
            if module == "quantir":  # `from quantir import runtime`: the names are packages
                for alias in node.names:
                    yield node.lineno, f"quantir.{alias.name}"
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            name = _literal_prefix(node.args[0])
            if name is not None:
                yield node.lineno, name


def upward_imports(source: str, relpath: Path) -> list[str]:
    """One "file:line: ..." line for each import in `source` of a package above the
    file's own (`relpath`: the file's path relative to the repository root)."""
    own = LAYERS.index(relpath.parts[0])
    tree = ast.parse(source, filename=str(relpath))
    found = []
    for line, module in imported_modules(tree, _package_of(relpath)):
        layer = _layer(module)
        if layer is not None and layer > own:
            found.append(
                f"{relpath}:{line}: quantir.{LAYERS[own]} imports {module} "
                f"(quantir.{LAYERS[layer]} is above it)"
            )
    return sorted(set(found), key=lambda text: (text.split(":")[0], int(text.split(":")[1])))


def test_no_package_imports_a_package_above_it() -> None:
    problems = []
    for folder in LAYERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relpath = path.relative_to(ROOT)
            problems += upward_imports(path.read_text(encoding="utf-8"), relpath)
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_every_code_folder_has_python_files() -> None:
    # A renamed folder must not make the check above vacuous.
    for folder in LAYERS:
        assert any((ROOT / folder).rglob("*.py")), folder


# -- the checker itself ---------------------------------------------------------

SYNTHETIC = """\
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from quantir.compiler.graph.types import TensorType
from quantir.dialects.encoding import QuantizationEncoding

if TYPE_CHECKING:
    from quantir.runtime.program import Program


def run(source):
    from quantir.runtime.jit import compile_source

    return compile_source(source, "cpu")


def load():
    import quantir.runtime.cuda
    from quantir import runtime
    from ...runtime import api

    importlib.import_module("quantir.runtime.cpu_threads")
    return __import__(f"quantir.runtime.{load.__name__}")
"""


def test_the_checker_flags_upward_imports_at_any_depth() -> None:
    problems = upward_imports(SYNTHETIC, Path("compiler/graph/synthetic.py"))
    lines = {int(p.split(":")[1]): p for p in problems}
    assert sorted(lines) == [10, 14, 20, 21, 22, 24, 25], problems
    assert lines[10].startswith("compiler/graph/synthetic.py:10: quantir.compiler imports ")
    assert "quantir.runtime.program" in lines[10]  # inside `if TYPE_CHECKING:`
    assert "quantir.runtime.jit" in lines[14]  # inside a function body
    assert "imports quantir.runtime " in lines[22]  # `from ...runtime import api`, resolved
    assert "quantir.runtime.cpu_threads" in lines[24]  # importlib, literal name


def test_the_checker_allows_imports_of_lower_layers() -> None:
    assert upward_imports(SYNTHETIC, Path("runtime/synthetic.py")) == []
    flagged = upward_imports(SYNTHETIC, Path("dialects/synthetic.py"))
    assert any("imports quantir.compiler.graph.types" in p for p in flagged)
