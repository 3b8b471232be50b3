"""docs/ stays in step with the code.

- every QuantizationEncoding member has a section in docs/block-formats.md,
  whose summary table agrees with the block sizes and fp16 field offsets in
  the code;
- every op and attribute of the quant, qnn, qrt, amx and (vector-capable) arith
  dialects is named in docs/ir.md;
- every `mlir` example in docs/ parses and verifies with quantir's context
  (a block may hold several modules separated by `// -----`; an excerpt cut
  from real output is marked `<!-- abridged -->` on the line before its fence
  and is not parsed);
- links between the pages point at pages that exist;
- nothing in the repository cites a contract file outside it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from xdsl.ir import Dialect
from xdsl.parser import Parser

from quantir.compiler.context import make_context
from quantir.dialects.amx import Amx
from quantir.dialects.arith_vector import VectorArith
from quantir.dialects.encoding import QuantizationEncoding
from quantir.dialects.qnn import Qnn
from quantir.dialects.qrt import Qrt
from quantir.dialects.quant import Quant
from quantir.dialects.upstream_ops import MemRefPrefetchOp, SubgroupReduceOp

# The upstream ops quantir defines because xDSL lacks them.
UPSTREAM_OPS = Dialect("upstream_ops", [MemRefPrefetchOp, SubgroupReduceOp])

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ABRIDGED = "<!-- abridged -->"
MLIR_FENCE = re.compile(r"^```mlir\n(.*?)^```", re.S | re.M)
SPLIT = "// -----"


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def mlir_examples() -> list[tuple[str, str]]:
    """(location, module text) of every checked `mlir` example in docs/."""
    examples = []
    for md in sorted(DOCS.glob("*.md")):
        text = md.read_text(encoding="utf-8")
        for fence in MLIR_FENCE.finditer(text):
            preceding = text[: fence.start()].rstrip().splitlines()
            if preceding and preceding[-1].strip() == ABRIDGED:
                continue
            line = text.count("\n", 0, fence.start()) + 2
            for i, module in enumerate(fence.group(1).split(SPLIT)):
                examples.append((f"{md.name}:{line}" + (f"#{i}" if i else ""), module))
    return examples


def test_every_encoding_has_a_block_format_section() -> None:
    text = page("block-formats.md")
    headings = set(re.findall(r"^## (\S+)\s*$", text, re.M))
    missing = [e.value for e in QuantizationEncoding if e.value not in headings]
    assert not missing, f"docs/block-formats.md has no '## <name>' section for {missing}"


def summary_rows() -> dict[str, list[str]]:
    """The cells of block-formats.md's summary table, by encoding name."""
    rows = {}
    for line in page("block-formats.md").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| Q") and len(cells) == 5:
            rows[cells[0]] = cells
    return rows


@pytest.mark.parametrize(
    "encoding", [e for e in QuantizationEncoding if e.is_gguf], ids=lambda e: e.name
)
def test_block_format_summary_matches_the_code(encoding: QuantizationEncoding) -> None:
    """Elements, bytes and fp16 field offsets as the encoding API and the lowering have them."""
    from quantir.compiler.encodings import layout_for

    name, elements, nbytes, _, fields = summary_rows()[encoding.value]
    assert (int(elements), int(nbytes)) == (encoding.elements_per_block, encoding.block_size)
    for field, offset in layout_for(encoding).fp16_fields.items():
        assert re.search(rf"(?<!\w){field}@{offset}(?!\d)", fields), (name, field, offset)


@pytest.mark.parametrize(
    "dialect", [Quant, Qnn, Qrt, Amx, VectorArith, UPSTREAM_OPS], ids=lambda d: d.name
)
def test_every_op_and_attribute_is_in_the_ir_reference(dialect: Dialect) -> None:
    text = page("ir.md")
    names = [op.name for op in dialect.operations] + [a.name for a in dialect.attributes]
    missing = [
        name for name in names if not re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", text)
    ]
    assert not missing, f"docs/ir.md does not name {missing}"


def test_the_docs_have_examples() -> None:
    where = {location.split(":")[0] for location, _ in mlir_examples()}
    assert "ir.md" in where and "pipeline.md" in where


@pytest.mark.parametrize(("location", "module"), mlir_examples(), ids=lambda v: v)
def test_mlir_example_parses_and_verifies(location: str, module: str) -> None:
    parsed = Parser(make_context(), module, location).parse_module()
    parsed.verify()


def test_links_between_pages_resolve() -> None:
    for md in sorted(DOCS.glob("*.md")):
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", md.read_text()):
            assert (md.parent / target).is_file(), f"{md.name} links to missing {target}"


def test_readme_links_the_docs() -> None:
    assert "docs/README.md" in (ROOT / "README.md").read_text(encoding="utf-8")


# Built from parts so that this file does not match itself.
_OUTSIDE_CONTRACT = re.compile(r"\b" + "SP" + r"EC\b")
_SKIPPED_DIRS = {".git", ".venv", "__pycache__", "Output", "build", "dist"}
_TEXT_SUFFIXES = {".py", ".md", ".mlir", ".toml", ".cfg", ".txt", ".json", ".yml", ".yaml"}


def test_nothing_cites_a_contract_outside_the_repository() -> None:
    offenders = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in _SKIPPED_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.suffix not in _TEXT_SUFFIXES or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE_CONTRACT.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "cite docs/ or a module docstring instead:\n" + "\n".join(offenders)
