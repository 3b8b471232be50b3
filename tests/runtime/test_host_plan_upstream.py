"""The host plan reads the upstream host functions the pipelines end with.

A launch is an `scf.parallel` marked `qrt.launch` that calls its kernel
(convert-qrt-to-upstream); a check is `cf.assert`.
"""

from __future__ import annotations

import pytest
from xdsl.dialects import func

from quantir.compiler.pipeline import lower
from quantir.dialects.qrt import KERNEL_ATTR
from quantir.runtime.host_plan import HostPlan, PlanError
from quantir.runtime.jit import parse_source

GRAPH = """
func.func @f(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = qnn.add %a, %b : (tensor<?x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  func.return %y : tensor<?x64xf32>
}
"""


def _host(target: str) -> func.FuncOp:
    lowered = lower(parse_source(GRAPH), target)
    return next(
        f for f in lowered.ops if isinstance(f, func.FuncOp) and KERNEL_ATTR not in f.attributes
    )


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_launch_loops_and_asserts_become_steps(target: str) -> None:
    plan = HostPlan.build(_host(target))
    kinds = [s.kind for s in plan.steps]
    assert "check" in kinds and kinds.count("launch") == 1
    (launch,) = [s for s in plan.steps if s.kind == "launch"]
    kernel, args, _range, tpb, ipb = launch.args
    assert kernel == "f_kernel0" and len(args) == 3
    assert (tpb, ipb) == ((0, 0) if target == "cpu" else (256, 256))
    check = next(s for s in plan.steps if s.kind == "check")
    assert "differ" in check.args[1]


def test_a_launch_loop_must_call_one_kernel() -> None:
    host = _host("cpu")
    loop = next(op for op in host.walk() if op.attributes.get("qrt.launch") is not None)
    call = next(op for op in loop.walk() if isinstance(op, func.CallOp))
    call.detach()
    call.erase()
    with pytest.raises(PlanError, match="call one kernel"):
        HostPlan.build(host)
