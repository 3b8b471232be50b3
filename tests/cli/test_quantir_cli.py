"""The `quantir` command: inspect and quantize."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import quantize as gguf_quantize

import quantir.runtime.gguf.convert as convert
from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime.cli import main
from quantir.runtime.gguf import TensorToWrite, open_gguf, write_gguf
from quantir.runtime.quantize import quantize

E = QuantizationEncoding
T = GGMLQuantizationType
DATA = Path(__file__).resolve().parents[1] / "data" / "gguf"
Q4_K_M = DATA / "tiny-llama-q4_k_m.gguf"
MINI_F32 = DATA / "mini-f32.gguf"
# llama-quantize --pure output for each encoding (see tests/data/gguf/README.md).
PURE_FILES = {
    E.Q4_0: "Q4_0",
    E.Q4_1: "Q4_1",
    E.Q5_0: "Q5_0",
    E.Q5_1: "Q5_1",
    E.Q8_0: "Q8_0",
    E.Q2_K: "Q2_K",
    E.Q3_K: "Q3_K_S",
    E.Q4_K: "Q4_K_S",
    E.Q5_K: "Q5_K_S",
    E.Q6_K: "Q6_K",
}
# gguf-py quantizes these bit-identically to ggml: a stand-in quantizer for
# tests of the conversion itself.
STAND_IN_ENCODINGS = (E.Q4_0, E.Q4_1, E.Q5_0, E.Q5_1, E.Q8_0)


def stand_in_quantizer(encoding, rows):
    return gguf_quantize(rows, T[encoding.value])


@pytest.fixture
def use_stand_in(monkeypatch):
    monkeypatch.setattr(convert, "load_quantizer", lambda: stand_in_quantizer)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str, status: int = 1) -> None:
    assert code == status, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("quantir: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def assert_same_tensors(ours: Path, reference: Path) -> None:
    a, b = open_gguf(ours), open_gguf(reference)
    assert sorted(t.name for t in a.tensors) == sorted(t.name for t in b.tensors)
    for ref in b.tensors:
        got = a.tensor(ref.name)
        assert (got.name, got.type_name, got.shape) == (ref.name, ref.type_name, ref.shape)
        assert np.array_equal(got.raw_bytes, ref.raw_bytes), ref.name
    # Same keys, order, values and GGUF types as llama-quantize writes.
    assert [(k, a.metadata.typed(k)) for k in a.metadata] == [
        (k, b.metadata.typed(k)) for k in b.metadata
    ]


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple, bytes]]) -> None:
    """A .safetensors file from (dtype, shape, raw bytes) triples."""
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))


# --- inspect -------------------------------------------------------------------


def test_inspect_lists_tensors_under_a_summary(capsys):
    code, out, err = run(capsys, "inspect", Q4_K_M)
    assert code == 0 and err == ""
    assert re.search(r"^format:\s+GGUF v3 \(alignment 32\)$", out, re.M)
    assert re.search(r"^arch:\s+llama$", out, re.M)
    assert re.search(r"^tensors:\s+21, 528\.31 KiB \(540992 bytes\)$", out, re.M)
    assert re.search(r"^types:\s+q4_k 12, f32 5, q6_k 2, q5_0 1, q8_0 1$", out, re.M)
    assert re.search(r"^metadata:\s+17 keys$", out, re.M)
    assert re.search(r"^blk\.0\.ffn_down\.weight\s+q5_0\s+\[256, 288\]\s+50688$", out, re.M)
    assert re.search(r"^blk\.1\.ffn_down\.weight\s+q8_0\s+\[256, 288\]\s+78336$", out, re.M)
    assert re.search(r"^output_norm\.weight\s+f32\s+\[256\]\s+1024$", out, re.M)
    for t in open_gguf(Q4_K_M).tensors:
        assert t.name in out


def test_inspect_json_matches_the_reader(capsys):
    code, out, _ = run(capsys, "inspect", "--json", Q4_K_M)
    assert code == 0
    doc = json.loads(out)
    model = open_gguf(Q4_K_M)
    assert doc["summary"]["tensor_count"] == 21
    assert doc["summary"]["total_bytes"] == model.total_tensor_bytes
    assert doc["summary"]["type_counts"] == {"q4_k": 12, "f32": 5, "q6_k": 2, "q5_0": 1, "q8_0": 1}
    assert [(r["name"], r["ggml_type"], r["shape"], r["nbytes"]) for r in doc["tensors"]] == [
        (t.name, t.type_name, list(t.shape), t.nbytes) for t in model.tensors
    ]
    assert doc["metadata"]["general.file_type"] == 15
    tokens = doc["metadata"]["tokenizer.ggml.tokens"]
    assert tokens["array_length"] == 32 and tokens["first"][:2] == ["<t0>", "<t1>"]


def test_inspect_metadata_listing(capsys):
    code, out, _ = run(capsys, "inspect", "--metadata", Q4_K_M)
    assert code == 0
    assert "llama.block_count = 2\n" in out
    assert 'general.architecture = "llama"\n' in out
    assert re.search(r'^tokenizer\.ggml\.tokens = \["<t0>", .*, \.\.\. \(32 items\)\]$', out, re.M)


def test_inspect_marks_unsupported_types(tmp_path, capsys):
    path = tmp_path / "iq.gguf"
    raw = np.zeros((2, GGML_QUANT_SIZES[T.IQ2_XXS][1]), np.uint8)
    write_gguf(path, [TensorToWrite("w", T.IQ2_XXS, (2, 256), raw)], arch="llama")
    code, out, _ = run(capsys, "inspect", path)
    assert code == 0
    assert re.search(r"^w\s+iq2_xxs \(unsupported\)\s+\[2, 256\]\s+132$", out, re.M)


def test_inspect_safetensors_through_the_gptq_module(tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    write_safetensors(
        path,
        {
            "lm_head.weight": ("F16", (4, 8), np.ones((4, 8), np.float16).tobytes()),
            "norm.weight": ("F32", (8,), np.ones(8, np.float32).tobytes()),
        },
    )
    code, out, err = run(capsys, "inspect", path)
    assert code == 0, err
    assert re.search(r"^format:\s+safetensors checkpoint$", out, re.M)
    # The type column is the gptq module's label (the dtype for plain tensors).
    assert re.search(r"^lm_head\.weight\s+\S+\s+\[4, 8\]\s+64$", out, re.M)
    assert re.search(r"^norm\.weight\s+\S+\s+\[8\]\s+32$", out, re.M)
    assert re.search(r"^tensors:\s+2, 96 B \(96 bytes\)$", out, re.M)


def test_inspect_checkpoint_without_the_gptq_module(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "quantir.runtime.gptq", None)  # import fails
    code, _, err = run(capsys, "inspect", tmp_path)
    assert_one_line_error(code, err, "quantir.runtime.gptq", str(tmp_path))


def test_inspect_errors_are_one_line(tmp_path, capsys):
    not_gguf = tmp_path / "notes.txt"
    not_gguf.write_text("hello world, not a model\n")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(Q4_K_M.read_bytes()[:5000])
    cases = [
        (tmp_path / "missing.gguf", "no such file"),
        (not_gguf, "not a GGUF file"),
        (truncated, "truncated"),
    ]
    for path, fragment in cases:
        code, out, err = run(capsys, "inspect", path)
        assert out == ""
        assert_one_line_error(code, err, str(path), fragment)


def test_usage_errors_and_help(capsys):
    code, _, err = run(capsys)
    assert_one_line_error(code, err, "COMMAND", status=2)
    code, _, err = run(capsys, "quantize", MINI_F32, "x.gguf", "--encoding", "q9_9")
    assert_one_line_error(code, err, "unknown GGUF encoding 'q9_9'", status=2)
    code, _, err = run(capsys, "quantize", MINI_F32, "x.gguf", "--encoding", "gptq")
    assert_one_line_error(code, err, "gptq", status=2)
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "inspect" in out and "quantize" in out


def test_console_script_and_module_entry_points(tmp_path):
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="quantir")
    assert script.value == "quantir.runtime.cli:main"
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 40)
    proc = subprocess.run(
        [sys.executable, "-m", "quantir.runtime.cli", "inspect", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert_one_line_error(proc.returncode, proc.stderr, "version")


# --- quantize --------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(PURE_FILES), ids=lambda e: e.name)
def test_quantize_matches_llama_quantize_pure(tmp_path, capsys, encoding):
    """Types, fallbacks, bytes and metadata equal `llama-quantize --pure`'s output."""
    out_path = tmp_path / "out.gguf"
    code, out, err = run(capsys, "quantize", MINI_F32, out_path, "--encoding", encoding.name)
    assert code == 0, err
    assert_same_tensors(out_path, DATA / f"mini-pure-{PURE_FILES[encoding]}.gguf")
    assert out.startswith(f"wrote {out_path}: 7 tensors")
    # Every fallback is reported on stderr, one note per tensor.
    notes = [line for line in err.splitlines() if line.startswith("quantir: note: ")]
    fallbacks = 2 if encoding.elements_per_block == 256 else 1
    assert len(notes) == fallbacks
    assert any("blk.0.ffn_up.weight: K=100" in n and "f16" in n for n in notes)


@pytest.mark.parametrize("encoding", STAND_IN_ENCODINGS, ids=lambda e: e.name)
def test_quantize_pipeline_with_a_stand_in_quantizer(tmp_path, capsys, use_stand_in, encoding):
    out_path = tmp_path / "out.gguf"
    code, _, err = run(capsys, "quantize", MINI_F32, out_path, "--encoding", encoding.name)
    assert code == 0, err
    assert_same_tensors(out_path, DATA / f"mini-pure-{PURE_FILES[encoding]}.gguf")


def test_quantize_plan_follows_llama_cpp():
    plan = convert.plan_tensor
    f32 = T.F32
    assert plan("blk.0.attn_q.weight", (64, 256), f32, E.Q4_K).target_type is T.Q4_K
    assert plan("blk.0.ffn_down.weight", (64, 288), f32, E.Q4_K).target_type is T.Q5_0
    assert plan("blk.0.ffn_down.weight", (64, 288), f32, E.Q5_K).target_type is T.Q5_1
    assert plan("blk.0.ffn_down.weight", (64, 288), f32, E.Q6_K).target_type is T.Q8_0
    assert plan("blk.0.ffn_down.weight", (64, 288), f32, E.Q2_K).target_type is T.Q4_0
    assert plan("blk.0.ffn_down.weight", (64, 288), f32, E.Q3_K).target_type is T.Q4_0
    assert plan("w.weight", (64, 100), f32, E.Q4_K).target_type is T.F16
    assert plan("w.weight", (64, 100), f32, E.Q8_0).target_type is T.F16
    assert plan("w.weight", (64, 100), f32, E.Q8_0).note.startswith("K=100")
    assert plan("experts.weight", (4, 8, 256), f32, E.Q4_K).target_type is T.Q4_K
    # Kept as they are: 1-D, norms, routers, non-weights, integer tensors.
    assert plan("blk.0.attn_norm.weight", (256,), f32, E.Q4_K).target_type is f32
    assert plan("blk.0.attn_norm.weight", (256,), T.F16, E.Q4_K).target_type is T.F16
    assert plan("blk.0.ffn_gate_inp.weight", (8, 256), f32, E.Q4_K).target_type is f32
    assert plan("blk.0.post_norm.weight", (2, 256), f32, E.Q4_K).target_type is f32
    assert plan("rope_freqs", (2, 256), f32, E.Q4_K).target_type is f32
    assert plan("ids.weight", (2, 256), T.I32, E.Q4_K).target_type is T.I32
    with pytest.raises(convert.QuantizeError, match="already quantized"):
        plan("w.weight", (2, 256), T.Q4_K, E.Q8_0)


def test_quantize_safetensors_input(tmp_path, capsys, use_stand_in):
    rng = np.random.default_rng(1)
    embed = rng.standard_normal((8, 256)).astype(np.float32)
    head = rng.standard_normal((4, 64)).astype(np.float32)
    head_bf16 = (head.view(np.uint32) >> 16).astype(np.uint16)  # truncated to bfloat16
    norm = np.ones(64, np.float16)
    src = tmp_path / "model.safetensors"
    write_safetensors(
        src,
        {
            "model.embed_tokens.weight": ("F32", embed.shape, embed.tobytes()),
            "lm_head.weight": ("BF16", head.shape, head_bf16.tobytes()),
            "model.norm.weight": ("F16", norm.shape, norm.tobytes()),
        },
    )
    out_path = tmp_path / "model.gguf"
    code, out, err = run(
        capsys, "quantize", src, out_path, "--encoding", "q8_0", "--arch", "mymodel"
    )
    assert code == 0, err
    model = open_gguf(out_path)
    assert model.architecture == "mymodel"
    assert model.metadata["general.file_type"] == 7  # LLAMA_FTYPE_MOSTLY_Q8_0
    assert {t.name: t.type_name for t in model.tensors} == {
        "model.embed_tokens.weight": "Q8_0",
        "lm_head.weight": "Q8_0",
        "model.norm.weight": "F16",
    }
    assert np.array_equal(
        model.tensor("model.embed_tokens.weight").data, gguf_quantize(embed, T.Q8_0)
    )
    head_values = (head_bf16.astype(np.uint32) << 16).view(np.float32)
    assert np.array_equal(model.tensor("lm_head.weight").data, gguf_quantize(head_values, T.Q8_0))
    assert np.array_equal(model.tensor("model.norm.weight").data, norm)


def test_quantize_float16_and_float64_sources_round_like_float32(tmp_path, capsys):
    """Plain-float tensors reach the quantizer unconverted; the bytes match float32 input."""
    rng = np.random.default_rng(2)
    half = rng.standard_normal((4, 256)).astype(np.float16)
    double = rng.standard_normal((4, 256)) * 1e-3
    src = tmp_path / "model.safetensors"
    write_safetensors(
        src,
        {
            "a.weight": ("F16", half.shape, half.tobytes()),
            "b.weight": ("F64", double.shape, double.tobytes()),
        },
    )
    out_path = tmp_path / "model.gguf"
    code, _, err = run(capsys, "quantize", src, out_path, "--encoding", "q4_k")
    assert code == 0, err
    model = open_gguf(out_path)
    for name, values in (("a.weight", half), ("b.weight", double)):
        assert model.tensor(name).type_name == "Q4_K"
        assert np.array_equal(
            model.tensor(name).data, quantize(E.Q4_K, values.astype(np.float32))
        ), name


def test_quantize_refuses_to_overwrite_its_input(tmp_path, capsys, use_stand_in):
    src = tmp_path / "in.gguf"
    src.write_bytes(MINI_F32.read_bytes())
    link = tmp_path / "link.gguf"
    link.symlink_to(src)
    hard = tmp_path / "hard.gguf"
    os.link(src, hard)
    for target in (src, tmp_path / "." / "in.gguf", link, hard):
        code, _, err = run(capsys, "quantize", src, target, "--encoding", "q8_0")
        assert_one_line_error(code, err, "is the input file")
    assert src.read_bytes() == MINI_F32.read_bytes()


def test_quantize_user_errors(tmp_path, capsys, use_stand_in):
    cases = [
        (("quantize", tmp_path / "missing.gguf", tmp_path / "o.gguf"), "no such file"),
        (("quantize", tmp_path, tmp_path / "o.gguf"), "is a directory"),
        (("quantize", MINI_F32, tmp_path), "is a directory"),
        (("quantize", Q4_K_M, tmp_path / "o.gguf"), "already quantized (Q6_K)"),
        (("quantize", MINI_F32, tmp_path / "o.gguf", "--arch", "x"), "safetensors input only"),
    ]
    for argv, fragment in cases:
        code, _, err = run(capsys, *argv, "--encoding", "q8_0")
        assert_one_line_error(code, err, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_interrupted_quantize_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    out_path = tmp_path / "out.gguf"
    out_path.write_bytes(b"an older output")
    calls = []

    def interrupted(encoding, rows):
        calls.append(encoding)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return stand_in_quantizer(encoding, rows)

    monkeypatch.setattr(convert, "load_quantizer", lambda: interrupted)
    code, out, err = run(capsys, "quantize", MINI_F32, out_path, "--encoding", "q8_0")
    assert code == 130 and "interrupted" in err and out == ""
    assert len(calls) == 2
    assert out_path.read_bytes() == b"an older output"
    assert [p.name for p in tmp_path.iterdir()] == ["out.gguf"]


def test_sigterm_during_quantize_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    def terminated(encoding, rows):
        os.kill(os.getpid(), signal.SIGTERM)
        return stand_in_quantizer(encoding, rows)

    monkeypatch.setattr(convert, "load_quantizer", lambda: terminated)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = run(capsys, "quantize", MINI_F32, tmp_path / "out.gguf", "--encoding", "q8_0")
    assert code == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_misbehaving_quantizer_is_reported(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        convert, "load_quantizer", lambda: lambda encoding, rows: np.zeros((1, 3), np.uint8)
    )
    code, _, err = run(capsys, "quantize", MINI_F32, tmp_path / "o.gguf", "--encoding", "q8_0")
    assert_one_line_error(code, err, "token_embd.weight", "expected uint8 [16, 272]")
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_only_when_asked_or_on_a_terminal(tmp_path, capsys, use_stand_in):
    code, _, err = run(capsys, "quantize", MINI_F32, tmp_path / "a.gguf", "--encoding", "q8_0")
    assert code == 0 and "\r" not in err
    code, _, err = run(
        capsys, "quantize", MINI_F32, tmp_path / "b.gguf", "--encoding", "q8_0", "--progress"
    )
    assert code == 0
    assert "\r[" in err and "blk.0.ffn_down.weight" in err and "%" in err
    assert (
        open_gguf(tmp_path / "a.gguf").tensor("output.weight").raw_bytes.tobytes()
        == open_gguf(tmp_path / "b.gguf").tensor("output.weight").raw_bytes.tobytes()
    )
