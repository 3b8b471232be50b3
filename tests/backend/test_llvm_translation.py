"""The LLVM translation's dispatch: one handler per op class, from small tables.

(What each op translates to is checked by tests/filecheck/backend and by the
kernel tests, which run the generated code.)
"""

from __future__ import annotations

import pytest
from xdsl.dialects import math
from xdsl.parser import Parser

from quantir.compiler.backend import cpu_codegen
from quantir.compiler.backend.llvm.amx import AMX_HANDLERS
from quantir.compiler.backend.llvm.arith import ARITH_HANDLERS
from quantir.compiler.backend.llvm.context import FunctionContext
from quantir.compiler.backend.llvm.control_flow import CONTROL_FLOW_HANDLERS
from quantir.compiler.backend.llvm.intrinsics import INTRINSIC_HANDLERS, overloaded_intrinsic
from quantir.compiler.backend.llvm.memref import MEMREF_HANDLERS
from quantir.compiler.backend.llvm.types import llvm_type
from quantir.compiler.backend.llvm.vector import VECTOR_HANDLERS
from quantir.compiler.backend.llvm_translation import (
    OP_HANDLERS,
    TranslationError,
    translate_module,
)
from quantir.compiler.context import make_context

TABLES = {
    "amx": AMX_HANDLERS,
    "arith": ARITH_HANDLERS,
    "control flow": CONTROL_FLOW_HANDLERS,
    "intrinsics": INTRINSIC_HANDLERS,
    "memref": MEMREF_HANDLERS,
    "vector": VECTOR_HANDLERS,
}


def test_the_tables_are_disjoint_and_combined() -> None:
    seen: dict[type, str] = {}
    for part, table in TABLES.items():
        for op in table:
            assert op not in seen, f"{op.name} is in both {seen[op]} and {part}"
            seen[op] = part
    assert OP_HANDLERS.keys() == seen.keys()


EXP_KERNEL = """
func.func @exp(%lo: index, %hi: index, %x: memref<4xf32>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %v = memref.load %x[%c0] : memref<4xf32>
  %e = math.exp %v : f32
  memref.store %e, %x[%c0] : memref<4xf32>
  func.return
}
"""


def _translate(source: str) -> str:
    module = Parser(make_context(), source).parse_module()
    ir_module, _ = translate_module(module, cpu_codegen.target_info())
    return str(ir_module)


def test_an_op_without_a_handler_is_a_translation_error() -> None:
    assert math.ExpOp not in OP_HANDLERS
    with pytest.raises(TranslationError, match="'math.exp' has no LLVM translation"):
        _translate(EXP_KERNEL)


def test_a_new_op_is_one_entry_and_one_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    def exp(op: math.ExpOp, ctx: FunctionContext) -> None:
        t = llvm_type(op.result.type)
        fn = overloaded_intrinsic(ctx, "llvm.exp", t, [t])
        ctx.set(op.result, ctx.builder.call(fn, [ctx.get(op.operand)]))

    monkeypatch.setitem(OP_HANDLERS, math.ExpOp, exp)
    text = _translate(EXP_KERNEL)
    assert 'declare float @"llvm.exp.f32"(float' in text
    assert 'call float @"llvm.exp.f32"' in text
