"""The xDSL context quantir's tools and runtime compile in."""

from __future__ import annotations

from xdsl.context import Context


def load_quantir_dialects(ctx: Context) -> Context:
    """Load every dialect quantir's pipeline produces or consumes into `ctx`.

    `arith` is loaded in its vector-capable form (quantir.dialects.arith_vector),
    `memref` and `gpu` with the upstream ops xDSL lacks
    (quantir.dialects.upstream_ops), unless the context already has xDSL's
    own, in which case quantir's IR still verifies (ops are built from
    quantir's classes) but cannot be re-parsed in that context.
    """
    from xdsl.dialects import builtin, cf, func, math, scf, vector

    from quantir.dialects.amx import Amx
    from quantir.dialects.arith_vector import VectorArith
    from quantir.dialects.qnn import Qnn
    from quantir.dialects.qrt import Qrt
    from quantir.dialects.quant import Quant
    from quantir.dialects.upstream_ops import GPUWithSubgroupReduce, MemRefWithPrefetch

    for dialect in (
        builtin.Builtin,
        func.Func,
        VectorArith,
        scf.Scf,
        cf.Cf,
        MemRefWithPrefetch,
        vector.Vector,
        math.Math,
        GPUWithSubgroupReduce,
        Quant,
        Qnn,
        Qrt,
        Amx,
    ):
        if dialect.name not in ctx.registered_dialect_names:
            ctx.load_dialect(dialect)
        elif all(d.name != dialect.name for d in ctx.loaded_dialects):
            ctx.load_registered_dialect(dialect.name)
    return ctx


def make_context() -> Context:
    return load_quantir_dialects(Context())
