"""The Python graph builder: the IR it produces, its checks, and compiled graphs' numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize
from xdsl.printer import Printer

from quantir.compiler.context import make_context
from quantir.compiler.diagnostics import parse_located
from quantir.compiler.graph import (
    DType,
    Graph,
    QuantizationConfig,
    QuantizationEncoding,
    TensorType,
    Weight,
    ops,
)
from quantir.runtime import DeviceUnavailableError, compile_graph
from quantir.runtime.buffers import BufferError
from quantir.runtime.gguf import open_gguf
from quantir.runtime.gptq import dequantize_gptq_reference, quantize_gptq_rtn
from quantir.runtime.weight_binding import MissingWeightError, WeightMismatchError

E = QuantizationEncoding
GGUF_FILE = Path(__file__).resolve().parents[1] / "data" / "gguf" / "tiny-llama-q4_k_m.gguf"
DATA = Path(__file__).resolve().parent / "data"


def canonical(text: str) -> str:
    """Parse with quantir's context, verify, drop value names, print."""
    module = parse_located(make_context(), text, "<text>")
    module.verify()
    for op in module.walk():
        for result in op.results:
            result.name_hint = None
        for region in op.regions:
            for block in region.blocks:
                for arg in block.args:
                    arg.name_hint = None
    import io

    out = io.StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


def q(name: str, encoding: QuantizationEncoding, n: int, k: int) -> Weight:
    return Weight(name, DType.uint8, [n, k], quantization_encoding=encoding)


# -- the same IR as a hand-written file ---------------------------------------

FFN_TEXT = (DATA / "ffn.mlir").read_text()


def build_ffn() -> Graph:
    with Graph("ffn", input_types=[TensorType(DType.float32, ["batch", 256])]) as g:
        x = g.inputs[0]
        norm = g.add_weight(Weight("blk.0.ffn_norm.weight", DType.float32, [256]))
        gate = g.add_weight(q("blk.0.ffn_gate.weight", E.Q4_K, 288, 256))
        up = g.add_weight(q("blk.0.ffn_up.weight", E.Q4_K, 288, 256))
        down = g.add_weight(q("blk.0.ffn_down.weight", E.Q5_0, 256, 288))
        xn = x * norm
        h = ops.qmatmul(E.Q4_K, None, xn, gate) * ops.qmatmul("q4_k", None, xn, up)
        r = x + ops.qmatmul(E.Q5_0, None, h, down)
        head = g.add_weight(q("output.weight", E.Q6_K, 32, 256))
        g.output(ops.qmatmul(E.Q6_K, None, r, head))
    return g


def test_gguf_mlp_is_the_same_ir_as_the_text_file():
    g = build_ffn()
    assert canonical(g.to_mlir()) == canonical(FFN_TEXT)
    assert str(g) == g.to_mlir()
    # The builder's own text re-parses to itself (names included).
    assert canonical(str(g)) == canonical(g.to_mlir())
    assert g.module.ops.first.sym_name.data == "ffn"


GPTQ_CONFIG = QuantizationConfig("gptq", bits=4, group_size=64, desc_act=False, sym=True)
GPTQ_TEXT = (DATA / "gptq_layer.mlir").read_text()


def build_gptq_layer() -> Graph:
    with Graph("gptq_layer", input_types=[TensorType(DType.float32, ["n", 256])]) as g:
        weight = Weight(
            "layer",
            DType.int32,
            [64, 256],
            quantization_encoding=E.GPTQ,
            quantization_config=GPTQ_CONFIG,
        )
        parts = g.add_weight(weight)
        assert isinstance(parts, tuple) and len(parts) == 4
        bias = g.add_weight(Weight("layer.bias", DType.float32, [64]))
        y = ops.qmatmul(E.GPTQ, GPTQ_CONFIG, g.inputs[0], *parts) + bias
        g.output(y, ops.dequantize(E.GPTQ, parts, GPTQ_CONFIG))
    return g


def test_gptq_layer_is_the_same_ir_as_the_text_file():
    g = build_gptq_layer()
    assert canonical(g.to_mlir()) == canonical(GPTQ_TEXT)
    assert [p.shape for p in g.weights["layer"]] == [[32, 64], [4, 8], [4, 64], [256]]
    assert [t.shape for t in g.output_types] == [("n", 64), (64, 256)]


def test_input_names_and_forward_form():
    def forward(a, b):
        return a * b + a

    t = TensorType(DType.float32, ["batch", 8])
    g = Graph("f", forward, input_types=[t, t], input_names=["a", "b"])
    text = g.to_mlir()
    assert "func.func @f(%a: tensor<?x8xf32>, %b: tensor<?x8xf32>)" in text
    assert canonical(text) == canonical(
        "func.func @f(%a: tensor<?x8xf32>, %b: tensor<?x8xf32>) -> tensor<?x8xf32> {\n"
        "  %0 = qnn.mul %a, %b : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>\n"
        "  %1 = qnn.add %0, %a : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>\n"
        "  func.return %1 : tensor<?x8xf32>\n}\n"
    )


def test_values_keep_symbolic_shapes_and_dtypes():
    with Graph("g", input_types=[TensorType(DType.float32, ["batch", "seq", 256])]) as g:
        x = g.inputs[0]
        assert x.shape == ["batch", "seq", 256] and x.dtype is DType.float32 and x.rank == 3
        w = g.add_weight(q("w", E.Q4_0, 64, 256))
        assert w.shape == [64, 256 // 32 * 18] and w.dtype is DType.uint8
        y = ops.qmatmul(E.Q4_0, None, x, w)
        assert y.shape == ["batch", "seq", 64]
        f = g.add_weight(Weight("f", DType.float32, [64, 16]))
        z = y @ f
        assert z.shape == ["batch", "seq", 16]
        d = ops.dequantize(E.Q4_0, w)
        assert d.shape == [64, 256]
        assert Graph.current() is g
        g.output(z, d)
    assert "tensor<?x?x16xf32>" in g.to_mlir()
    with pytest.raises(LookupError):
        Graph.current()


def test_adding_the_same_weight_twice_returns_the_same_value():
    with Graph("g", input_types=[TensorType(DType.float32, [2, 256])]) as g:
        a = g.add_weight(q("w", E.Q4_K, 32, 256))
        assert g.add_weight(q("w", E.Q4_K, 32, 256)) is a
        with pytest.raises(ValueError, match="already has a weight named 'w'"):
            g.add_weight(q("w", E.Q6_K, 32, 256))


# -- build-time errors -----------------------------------------------------------


@pytest.fixture
def graph():
    types = [
        TensorType(DType.float32, ["batch", 256]),
        TensorType(DType.float32, ["seq", 256]),
        TensorType(DType.float32, [3, 100]),
    ]
    with Graph("g", input_types=types) as g:
        yield g


def test_qmatmul_k_mismatch(graph):
    w = graph.add_weight(q("w", E.Q4_K, 32, 512))
    with pytest.raises(ValueError, match=r"lhs has K=256 but the packed weight .* K=512"):
        ops.qmatmul(E.Q4_K, None, graph.inputs[0], w)
    with pytest.raises(ValueError, match="not a multiple of 256"):
        ops.qmatmul(E.Q4_K, None, graph.inputs[2], w)


def test_qmatmul_encoding_and_config_errors(graph):
    x = graph.inputs[0]
    w = graph.add_weight(q("w", E.Q4_K, 32, 256))
    with pytest.raises(ValueError, match="weight 'w' is declared Q4_K, not Q6_K"):
        ops.qmatmul(E.Q6_K, None, x, w)
    with pytest.raises(ValueError, match="takes no config"):
        ops.qmatmul(E.Q4_K, GPTQ_CONFIG, x, w)
    with pytest.raises(ValueError, match="one packed weight operand, got 2"):
        ops.qmatmul(E.Q4_K, None, x, w, w)
    with pytest.raises(ValueError, match="must be uint8 bytes .* use ops.matmul"):
        ops.qmatmul(E.Q4_K, None, x, x)
    with pytest.raises(ValueError, match="lhs must be float32, got uint8"):
        ops.qmatmul(E.Q4_K, None, w, w)
    with pytest.raises(ValueError, match="unknown quantization encoding"):
        ops.qmatmul("q9_k", None, x, w)


def test_gptq_operand_errors(graph):
    x = graph.inputs[0]
    weight = Weight(
        "layer",
        DType.int32,
        [64, 256],
        quantization_encoding=E.GPTQ,
        quantization_config=GPTQ_CONFIG,
    )
    qw, qz, s, gi = graph.add_weight(weight)
    with pytest.raises(ValueError, match="GPTQ needs config=QuantizationConfig"):
        ops.qmatmul(E.GPTQ, None, x, qw, qz, s, gi)
    other = QuantizationConfig("gptq", bits=4, group_size=128, sym=True)
    with pytest.raises(ValueError, match="differs from the one weight 'layer' was declared with"):
        ops.qmatmul(E.GPTQ, other, x, qw, qz, s, gi)
    with pytest.raises(ValueError, match="order qweight, qzeros, scales, g_idx"):
        ops.qmatmul(E.GPTQ, GPTQ_CONFIG, x, qz, qw, s, gi)
    with pytest.raises(ValueError, match="takes four packed tensors"):
        ops.qmatmul(E.GPTQ, GPTQ_CONFIG, x, qw, qz, s)
    with pytest.raises(ValueError, match="checkpoint_format 'gptq_v2' differs"):
        ops.qmatmul(E.GPTQ, GPTQ_CONFIG, x, qw, qz, s, gi, checkpoint_format="gptq_v2")
    with pytest.raises(TypeError, match="the four tensors"):
        ops.dequantize(E.GPTQ, qw, GPTQ_CONFIG)
    # K of x must be the layer's K (g_idx's length).
    x300 = graph.inputs[2]
    with pytest.raises(ValueError, match="K .* is 100 but g_idx's length is 256"):
        ops.qmatmul(E.GPTQ, GPTQ_CONFIG, x300, qw, qz, s, gi)


def test_float_op_shape_errors(graph):
    x, y, z = graph.inputs
    w = graph.add_weight(Weight("w", DType.float32, [128, 16]))
    with pytest.raises(
        ValueError,
        match=r"ops.matmul: lhs is \[batch, 256\] but rhs is "
        r"\[128, 16\]: K must match",
    ):
        ops.matmul(x, w)
    with pytest.raises(ValueError, match="rhs must be 2-D"):
        ops.matmul(x, graph.add_weight(Weight("v", DType.float32, [256])))
    packed = graph.add_weight(q("p", E.Q4_K, 16, 256))
    with pytest.raises(ValueError, match="rhs must be float32.*use ops.qmatmul"):
        ops.matmul(x, packed)
    with pytest.raises(ValueError, match="batch in one and seq in the other.*only matches itself"):
        x + y
    with pytest.raises(ValueError, match="cannot broadcast"):
        x * z
    with pytest.raises(ValueError, match="3 in one and batch in the other"):
        ops.add(graph.add_weight(Weight("c", DType.float32, [3, 256])), x)


def test_broadcasting_rules(graph):
    x = graph.inputs[0]
    row = graph.add_weight(Weight("row", DType.float32, [1, 256]))
    vec = graph.add_weight(Weight("vec", DType.float32, [256]))
    assert (x + row).shape == ["batch", 256]
    assert (row * x).shape == ["batch", 256]
    assert (vec + x).shape == ["batch", 256]
    col = graph.add_weight(Weight("col", DType.float32, [4, 1, 256]))
    with pytest.raises(ValueError, match="only the lower-rank operand broadcasts"):
        col + graph.add_weight(Weight("m", DType.float32, [5, 256]))


def test_operand_kind_and_graph_errors(graph):
    x = graph.inputs[0]
    with pytest.raises(TypeError, match="they have no constants"):
        x + 1.0
    with pytest.raises(TypeError, match="they have no constants"):
        2 * x
    with pytest.raises(TypeError, match="operands for \\+: ndarray and TensorValue"):
        np.ones(256, np.float32) + x
    with pytest.raises(TypeError, match="must be a TensorValue"):
        ops.add(x, np.ones(256, np.float32))
    with pytest.raises(TypeError, match="no truth value"):
        bool(x)
    with Graph("other", input_types=[TensorType(DType.float32, ["batch", 256])]) as other:
        with pytest.raises(ValueError, match="different graphs"):
            x + other.inputs[0]
        with pytest.raises(ValueError, match="belongs to graph 'g'"):
            other.output(x)


def test_graph_lifecycle_errors():
    t = TensorType(DType.float32, [2, 4])
    g = Graph("g", input_types=[t])
    with pytest.raises(ValueError, match="has no output yet"):
        g.to_mlir()
    with pytest.raises(ValueError, match="at least one output"):
        g.output()
    y = g.inputs[0] * g.inputs[0]
    g.output(y)
    with pytest.raises(ValueError, match="is complete"):
        g.inputs[0] + y
    with pytest.raises(ValueError, match="is complete"):
        g.add_weight(Weight("w", DType.float32, [4]))
    with pytest.raises(ValueError, match="is complete"):
        g.output(y)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Graph("1bad"), "Graph name must be an identifier"),
        (lambda: TensorType(DType.float32, [0, 4]), "must be positive"),
        (lambda: TensorType(DType.float32, ["a b"]), "symbolic dimension is an identifier"),
        (lambda: TensorType(DType.bfloat16, [4]), "DType.bfloat16 is not supported"),
        (lambda: TensorType(DType.float32, "batch"), "must be a list of dimensions"),
        (lambda: Graph("g", input_types=[TensorType(DType.float32, [])]), "is a scalar"),
        (
            lambda: Graph("g", input_types=[TensorType(DType.float32, [4])], input_names=["x_1"]),
            "not a valid value name",
        ),
        (
            lambda: Graph(
                "g", input_types=[TensorType(DType.float32, [4])] * 2, input_names=["x", "x"]
            ),
            "repeat a name",
        ),
    ],
)
def test_construction_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- compiled graphs compute the right numbers ---------------------------------


@pytest.fixture(scope="module")
def model():
    return open_gguf(GGUF_FILE)


def reference_ffn(x: np.ndarray, model) -> np.ndarray:
    def w(name):
        t = model.tensor(name)
        if t.encoding is None:
            return np.asarray(t.data)
        return gguf_dequantize(np.asarray(t.data), GGMLQuantizationType[t.type_name])

    xn = x * w("blk.0.ffn_norm.weight")
    h = (xn @ w("blk.0.ffn_gate.weight").T) * (xn @ w("blk.0.ffn_up.weight").T)
    r = x + h @ w("blk.0.ffn_down.weight").T
    return r @ w("output.weight").T


def test_compiled_gguf_graph_matches_numpy(model):
    # Exact float matmuls: the checks below are at float32 rounding level (the
    # default int8 path has its own tests, tests/runtime/test_kernels_int8.py).
    compiled = compile_graph(build_ffn(), threads=2, exact=True)
    assert compiled.weight_names == [
        "blk.0.ffn_norm.weight",
        "blk.0.ffn_gate.weight",
        "blk.0.ffn_up.weight",
        "blk.0.ffn_down.weight",
        "output.weight",
    ]
    rng = np.random.default_rng(1)
    for rows in (1, 5):
        x = rng.standard_normal((rows, 256)).astype(np.float32)
        (y,) = compiled(x, weights=model)
        ref = reference_ffn(x.astype(np.float64), model)
        assert y.shape == (rows, 32) and y.dtype == np.float32
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    # A plain dict of arrays works too (the packed bytes of each tensor).
    arrays = {name: model.tensor(name).data for name in compiled.weight_names}
    (y2,) = compiled(x, weights=arrays)
    np.testing.assert_array_equal(y, y2)


def test_compiled_graph_checks_inputs_and_weights(model):
    compiled = compile_graph(build_ffn(), threads=1)
    x = np.zeros((2, 256), np.float32)
    with pytest.raises(MissingWeightError, match='weight "blk.0.ffn_norm.weight" .* not given'):
        compiled(x)
    arrays = {name: model.tensor(name).data for name in compiled.weight_names}
    arrays["output.weight"] = np.zeros((32, 144), np.uint8)
    with pytest.raises(
        WeightMismatchError,
        match=r'"output.weight" is uint8 \[32, 144\] in '
        r"weights but the graph declares Q6_K \[32, 256\]",
    ):
        compiled(x, weights=arrays)
    with pytest.raises(BufferError, match="dimension 1 must be 256"):
        compiled(np.zeros((2, 255), np.float32), weights=model)
    with pytest.raises(BufferError, match="takes 1 input"):
        compiled(x, x, weights=model)


def test_symbolic_dimensions_are_checked_at_call_time():
    t1 = TensorType(DType.float32, ["batch", 8])
    g = Graph("pair", lambda a, b: a + b, input_types=[t1, t1])
    compiled = compile_graph(g, threads=1)
    a = np.arange(16, dtype=np.float32).reshape(2, 8)
    (y,) = compiled(a, 2 * a)
    np.testing.assert_array_equal(y, 3 * a)
    with pytest.raises(BufferError, match="'batch' = 3, but input 0 dimension 0 set 'batch' = 2"):
        compiled(a, np.zeros((3, 8), np.float32))


def test_gptq_graph_matches_reference(tmp_path):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((64, 256)).astype(np.float32) * 0.1
    bias = rng.standard_normal(64).astype(np.float32)
    layer = quantize_gptq_rtn(w, 4, 64, sym=True, name="layer", bias=bias)
    # Exact float matmul: checked at float32 rounding level below.
    compiled = compile_graph(build_gptq_layer(), threads=2, exact=True)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    w_ref = dequantize_gptq_reference(layer)
    weights = {"layer": layer, "layer.bias": layer.bias.astype(np.float32)}
    y, w_out = compiled(x, weights=weights)
    np.testing.assert_array_equal(w_out, w_ref)
    ref = x.astype(np.float64) @ w_ref.T.astype(np.float64) + layer.bias.astype(np.float64)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    # The four tensors as a tuple bind the same way.
    y2, _ = compiled(x, weights={"layer": layer.tensors(), "layer.bias": weights["layer.bias"]})
    np.testing.assert_array_equal(y, y2)


def test_dequantize_and_float_matmul_graph(model):
    with Graph("deq", input_types=[TensorType(DType.float32, ["n", 32])]) as g:
        head = g.add_weight(q("output.weight", E.Q6_K, 32, 256))
        w = ops.dequantize(E.Q6_K, head)
        g.output(w, g.inputs[0] @ w)
    w_out, y = compile_graph(g, threads=1)(np.eye(32, dtype=np.float32)[:3], weights=model)
    ref = gguf_dequantize(np.asarray(model.tensor("output.weight").data), GGMLQuantizationType.Q6_K)
    np.testing.assert_array_equal(w_out, ref)  # bit-identical to gguf-py / ggml
    np.testing.assert_array_equal(y, ref[:3])


def test_compile_errors(monkeypatch):
    # A graph that only passes its input through still compiles (to a copy).
    g = Graph("passthrough", lambda x: x, input_types=[TensorType(DType.float32, [2, 4])])
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    (same,) = compile_graph(g)(x)
    np.testing.assert_array_equal(same, x)
    assert not np.shares_memory(same, x)
    g2 = Graph("sq", lambda x: x * x, input_types=[TensorType(DType.float32, [2, 4])])
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        compile_graph(g2, device="tpu")
    # Without quantir's GPU runtime, a GPU device is a clear error (not an ImportError).
    monkeypatch.setitem(sys.modules, "quantir.runtime.cuda", None)
    with pytest.raises(DeviceUnavailableError, match="'cuda:0' is not available: quantir's GPU"):
        compile_graph(g2, device="cuda:0")


# -- gather: token embeddings ----------------------------------------------------


def build_embed_and_tied_head() -> Graph:
    """Embed token ids with the Q4_K table and score them with the same table (tied)."""
    types = [TensorType(DType.int32, ["seq"])]
    with Graph("embed", input_types=types, input_names=["ids"]) as g:
        table = g.add_weight(q("token_embd.weight", E.Q4_K, 32, 256))
        x = ops.gather(E.Q4_K, table, g.inputs[0])
        g.output(x, ops.qmatmul(E.Q4_K, None, x, table))
    return g


def test_gather_builds_the_ir_of_the_text_form():
    text = build_embed_and_tied_head().to_mlir()
    assert (
        "quant.gather #quant.encoding<q4_k> %0, %ids : (tensor<32x144xui8>, tensor<?xi32>) "
        "-> tensor<?x256xf32>" in text
    )


def test_compiled_gather_with_a_tied_head(model):
    compiled = compile_graph(build_embed_and_tied_head(), threads=2, exact=True)
    ids = np.array([7, 0, 31, 7], np.int32)
    x, logits = compiled(ids, weights=model)
    table = gguf_dequantize(
        np.asarray(model.tensor("token_embd.weight").data), GGMLQuantizationType.Q4_K
    )
    np.testing.assert_array_equal(x.view(np.uint32), table[ids].view(np.uint32))
    ref = table[ids].astype(np.float64) @ table.T.astype(np.float64)
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(
        BufferError,
        match=r"@embed input ids: index 32 at position 1 is past the last row \(31\); indices "
        r"must be in \[0, 32\) for the 32 rows of weight 'token_embd.weight'",
    ):
        compiled(np.array([1, 32], np.int32), weights=model)
    with pytest.raises(BufferError, match="input ids: expected dtype int32 or uint32, got int64"):
        compiled(np.array([1], np.int64), weights=model)


def test_gather_operand_errors(graph):
    table = graph.add_weight(q("t", E.Q4_K, 32, 256))
    with Graph("ids", input_types=[TensorType(DType.int64, [2, "seq"])]) as other:
        pass
    x = graph.inputs[0]
    with pytest.raises(ValueError, match=r"ops.gather\(q4_k\): indices must be int32 or int64"):
        ops.gather(E.Q4_K, table, x)
    with pytest.raises(ValueError, match="weight 't' is declared Q4_K, not Q6_K"):
        ops.gather(E.Q6_K, table, x)
    with pytest.raises(ValueError, match="GPTQ tables are not supported"):
        ops.gather(E.GPTQ, table, x)
    with pytest.raises(ValueError, match="the packed weight must be uint8 bytes"):
        ops.gather(E.Q4_K, x, x)
    with pytest.raises(ValueError, match="operands come from different graphs"):
        ops.gather(E.Q4_K, table, other.inputs[0])
