# lit configuration for quantir's FileCheck tests (run: `lit -sv tests/filecheck`).
#
# RUN lines name the tools plainly (`quantir-opt ... | filecheck %s`). The
# tools are looked up on PATH (an activated venv, or venv/bin on PATH, as in
# CI) and else next to the Python that runs lit, which in a venv without
# activation is venv/bin. Each name is replaced by the absolute path of the
# tool found, so a test never silently runs some other installation's copy.
# ruff: noqa: F821 (lit injects `config` and `lit_config`)

import os
import re
import shlex
import shutil
import sys

import lit.formats

config.name = "quantir"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(os.path.abspath(__file__))
config.excludes = ["Output"]

_python_bin = os.path.dirname(sys.executable)
_search_path = os.pathsep.join(
    [config.environment.get("PATH", os.environ.get("PATH", "")), _python_bin]
)


def _find_tool(name):
    found = shutil.which(name, path=_search_path)
    if found is None:
        return None
    return shlex.quote(os.path.abspath(found))


_tools = {
    "quantir-opt": _find_tool("quantir-opt"),
    "filecheck": _find_tool("filecheck"),
    "xdsl-opt": _find_tool("xdsl-opt"),
}
if _tools["quantir-opt"] is None:
    # Not installed as a console script: run the module with this Python.
    _tools["quantir-opt"] = f"{shlex.quote(sys.executable)} -m quantir.compiler.tools.quantir_opt"
if _tools["filecheck"] is None:
    lit_config.fatal(
        "filecheck not found on PATH or next to "
        + sys.executable
        + ": install the test extras (pip install -e '.[test]')"
    )

for _name, _command in _tools.items():
    if _command is None:
        continue
    # Whole words only: `quantir-opt-errors.mlir` or a path through
    # tests/filecheck/ must stay as they are.
    config.substitutions.append(
        (r"(?<![\w./-])" + re.escape(_name) + r"(?![\w.-])", _command.replace("\\", "\\\\"))
    )

config.substitutions.append(("%python", shlex.quote(sys.executable)))

# Optional external tools: a test that needs one says `REQUIRES: <tool>` and is
# reported UNSUPPORTED where the tool is missing.
for _optional in ("ptxas",):
    if shutil.which(_optional, path=_search_path) is not None:
        config.available_features.add(_optional)
