"""Host plans as data (runtime/host_plan.py: plan_to_data / plan_from_data): a
compiled module's cache entry keeps its plans, so a new process loads a graph
without parsing host IR; plans read back are checked like any cache input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quantir.compiler import diagnostics
from quantir.compiler.pipeline import lower
from quantir.runtime import jit
from quantir.runtime.host_plan import plan_from_data, plan_to_data
from quantir.runtime.quantize import quantize

EXAMPLE = "examples/tiny_mlp.mlir"


def _plans(text: str, target: str = "cpu"):
    return jit.host_plans(lower(jit.parse_source(text), target))


GATHER = """
func.func @g(%w: tensor<?x288xui8>, %ids: tensor<?xi32>) -> tensor<?x512xf32> {
  %e = quant.gather #quant.encoding<q4_k> %w, %ids
      : (tensor<?x288xui8>, tensor<?xi32>) -> tensor<?x512xf32>
  func.return %e : tensor<?x512xf32>
}
"""


@pytest.mark.parametrize("target", ["cpu", "gpu"])
@pytest.mark.parametrize("source", ["example", "gather"])
def test_plans_round_trip_through_json(target, source):
    if source == "example":
        with open(EXAMPLE) as f:
            plans = _plans(f.read(), target)
    else:
        plans = _plans(GATHER, target)
        assert any(a.row_indices_of for a in plans["g"].args)
    assert plans
    for plan in plans.values():
        assert not isinstance(plan, str)
        data = json.loads(json.dumps(plan_to_data(plan)))
        again = plan_from_data(data)
        assert again == plan
        assert plan_to_data(again) == data


def _example_data():
    with open(EXAMPLE) as f:
        (plan,) = _plans(f.read()).values()
    return plan_to_data(plan)


def _edit_steps(edit):
    data = _example_data()
    data["steps"] = [edit(list(s)) for s in data["steps"]]
    return data


BAD = {
    "not-a-dict": lambda: [],
    "missing-field": lambda: {k: v for k, v in _example_data().items() if k != "steps"},
    "negative-registers": lambda: _example_data() | {"registers": -1},
    "fewer-registers-than-args": lambda: _example_data() | {"registers": 1},
    "bool-register": lambda: _edit_steps(lambda s: s if s[0] != "free" else [s[0], s[1], [True]]),
    "register-out-of-range": lambda: _edit_steps(
        lambda s: s if s[0] != "free" else [s[0], s[1], [10**6]]
    ),
    "unknown-kind": lambda: _edit_steps(lambda s: ["exec", *s[1:]]),
    "unknown-function": lambda: _edit_steps(
        lambda s: s if s[0] not in ("binop", "cmp") else [s[0], s[1], [{"fn": "system"}, *s[2][1:]]]
    ),
    "wrong-arity": lambda: _edit_steps(lambda s: [s[0], s[1], s[2][:-1]]),
    "bad-dtype": lambda: (
        _example_data()
        | {"args": [[0, "input", {"buffer": [["object"], [-1, 256]]}, 0, "", "", [], "x", []]]}
    ),
    "int-step-given-a-tuple": lambda: (
        _example_data() | {"steps": [["int", 0, [{"t": [{"t": [{"t": []}]}]}]]]}
    ),
}


@pytest.mark.parametrize("how", list(BAD))
def test_malformed_plan_data_is_refused(how):
    data = BAD[how]()
    with pytest.raises(ValueError):
        plan_from_data(data)


def test_a_register_must_be_written_before_it_is_read():
    data = _example_data()
    last = data["steps"][-1]
    # Move the last step (it reads registers written before it) to the front.
    data["steps"] = [last, *data["steps"][:-1]]
    with pytest.raises(ValueError, match="undefined register"):
        plan_from_data(data)


def test_a_cached_module_loads_without_parsing_ir(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "_memory", {})
    monkeypatch.setattr(jit, "_keys", {})
    packed = quantize("q8_0", np.ones((4, 64), np.float32))
    from quantir.runtime import api

    expected = api.dequantize("q8_0", packed)
    monkeypatch.setattr(jit, "_memory", {})

    def no_parsing(*args, **kwargs):
        raise AssertionError("a cached module parsed IR")

    monkeypatch.setattr(diagnostics, "parse_located", no_parsing)
    monkeypatch.setattr(jit, "parse_located", no_parsing)
    assert np.array_equal(api.dequantize("q8_0", packed), expected)
