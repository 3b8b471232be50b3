"""`quantir-opt --verify-diagnostics`: MLIR's `expected-*` annotations.

A run passes (status 0) only when every diagnostic matches an annotation of
its kind on its line and every annotation is matched; anything else is one
`FILE:LINE: error: ...` line per mismatch and status 1. The tool runs in a
subprocess, as lit runs it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quantir.compiler.tools.expected_diagnostics import (
    AnnotationError,
    Diagnostic,
    check_diagnostics,
    parse_expectations,
)

BAD_LAUNCH = "  qrt.launch @k(%a) range(%n) {threads_per_block = 256 : i64} : memref<?xf32>"
LAUNCH_MESSAGE = "threads_per_block and items_per_block go together"
BAD_ENCODING = '  %w = quant.weight "w" #quant.encoding<q9_k> [8, 512] : tensor<8x288xui8>'


def function(*body: str) -> str:
    return "\n".join(
        ["func.func @f(%a: memref<?xf32>, %n: index) {", *body, "  func.return", "}", ""]
    )


def verify(tmp_path: Path, text: str, *extra: str) -> subprocess.CompletedProcess:
    src = tmp_path / "case.mlir"
    src.write_text(text)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "quantir.compiler.tools.quantir_opt",
            str(src),
            "--verify-diagnostics",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "annotated",
    [
        [f"  // expected-error@+1 {{{{{LAUNCH_MESSAGE}}}}}", BAD_LAUNCH],
        [BAD_LAUNCH, f"  // expected-error@-1 {{{{{LAUNCH_MESSAGE}}}}}"],
        [BAD_LAUNCH, f"  // expected-error@above {{{{{LAUNCH_MESSAGE}}}}}"],
        [f"  // expected-error@below {{{{{LAUNCH_MESSAGE}}}}}", BAD_LAUNCH],
        [BAD_LAUNCH + f" // expected-error {{{{{LAUNCH_MESSAGE}}}}}"],
    ],
    ids=["plus", "minus", "above", "below", "same-line"],
)
def test_matched_verifier_errors_pass(tmp_path: Path, annotated: list[str]) -> None:
    result = verify(tmp_path, function(*annotated))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_missing_expectation_fails(tmp_path: Path) -> None:
    # The annotation wants an error the file does not produce.
    text = function("  // expected-error@+1 {{no such error}}", "  %c = arith.constant 0 : index")
    result = verify(tmp_path, text)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f'{tmp_path / "case.mlir"}:2: error: expected error "no such error" was not produced '
        "(on line 3)"
    )
    assert "Traceback" not in result.stderr


def test_the_wrong_text_fails_twice(tmp_path: Path) -> None:
    # Unmatched expectation and unexpected error are both reported.
    result = verify(tmp_path, function("  // expected-error@+1 {{go apart}}", BAD_LAUNCH))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"{tmp_path / 'case.mlir'}:3:3: error: unexpected error: qrt.launch")
    assert lines[1].endswith('error: expected error "go apart" was not produced (on line 3)')


def test_the_wrong_line_fails(tmp_path: Path) -> None:
    result = verify(
        tmp_path, function(f"  // expected-error@+2 {{{{{LAUNCH_MESSAGE}}}}}", BAD_LAUNCH)
    )
    assert result.returncode == 1
    assert "unexpected error" in result.stderr and "was not produced (on line 4)" in result.stderr


def test_the_wrong_kind_fails(tmp_path: Path) -> None:
    result = verify(
        tmp_path, function(f"  // expected-warning@+1 {{{{{LAUNCH_MESSAGE}}}}}", BAD_LAUNCH)
    )
    assert result.returncode == 1
    assert "expected warning" in result.stderr and "unexpected error" in result.stderr


def test_an_unannotated_error_fails(tmp_path: Path) -> None:
    result = verify(tmp_path, function(BAD_LAUNCH))
    assert result.returncode == 1
    assert "unexpected error: qrt.launch: threads_per_block" in result.stderr


def test_parse_errors_are_diagnostics_too(tmp_path: Path) -> None:
    ok = function("  // expected-error@+1 {{Expected `q4_0`}}", BAD_ENCODING)
    assert verify(tmp_path, ok).returncode == 0
    assert verify(tmp_path, function(BAD_ENCODING)).returncode == 1


def test_split_input_file_checks_every_chunk(tmp_path: Path) -> None:
    good = function(f"  // expected-error@+1 {{{{{LAUNCH_MESSAGE}}}}}", BAD_LAUNCH)
    parse = function("  // expected-error@+1 {{Expected `q4_0`}}", BAD_ENCODING)
    # Two errors in one chunk, two annotations.
    two = function(
        f"  // expected-error@+1 {{{{{LAUNCH_MESSAGE}}}}}",
        BAD_LAUNCH,
        f"  // expected-error@+1 {{{{{LAUNCH_MESSAGE}}}}}",
        BAD_LAUNCH,
    )
    text = "\n// -----\n".join([good, parse, two])
    result = verify(tmp_path, text, "--split-input-file")
    assert result.returncode == 0, result.stderr
    # The third chunk's second error without its own annotation: its line is reported.
    chunks = [
        good,
        parse,
        function(f"  // expected-error@+1 {{{{{LAUNCH_MESSAGE}}}}}", *[BAD_LAUNCH] * 2),
    ]
    broken = "\n// -----\n".join(chunks)
    result = verify(tmp_path, broken, "--split-input-file")
    assert result.returncode == 1
    line = len(broken.splitlines()) - 2  # the last BAD_LAUNCH, above `func.return` and `}`
    assert result.stderr.strip().splitlines() == [
        f"{tmp_path / 'case.mlir'}:{line}:3: error: unexpected error: qrt.launch: "
        "threads_per_block and items_per_block go together (GPU launches)"
    ]


def test_a_malformed_annotation_is_named(tmp_path: Path) -> None:
    result = verify(tmp_path, function("  // expected-error@+1 missing braces", BAD_LAUNCH))
    assert result.returncode == 1
    assert "line 2: malformed annotation" in result.stderr


def test_annotation_designators() -> None:
    text = "\n".join(
        [
            "a",  # 1
            "// expected-error@above {{one}}",  # 2 -> 1
            "// expected-note@below {{two}}",  # 3 -> 5
            "// expected-remark@-3 {{three}}",  # 4 -> 1 (x) ... relative: 4-3 = 1
            "b",  # 5
            "c // expected-warning {{four}}",  # 6 -> 6
            "// expected-error@unknown {{five}}",  # 7 -> None
        ]
    )
    found = [(e.kind, e.line, e.text) for e in parse_expectations(text, first_line=1)]
    assert found == [
        ("error", 1, "one"),
        ("note", 5, "two"),
        ("remark", 1, "three"),
        ("warning", 6, "four"),
        ("error", None, "five"),
    ]
    with pytest.raises(AnnotationError, match="has no line below"):
        parse_expectations("// expected-error@below {{x}}")


def test_matching_is_by_substring_kind_and_line() -> None:
    expectations = parse_expectations("x // expected-error {{part}}", first_line=10)
    assert check_diagnostics(expectations, [Diagnostic("error", 10, "a part of it")], "f") == []
    expectations = parse_expectations("x // expected-error {{part}}", first_line=10)
    failures = check_diagnostics(expectations, [Diagnostic("error", 11, "a part of it")], "f")
    assert failures == [
        "f:11: error: unexpected error: a part of it",
        'f:10: error: expected error "part" was not produced (on line 10)',
    ]
