"""The parts of the LLVM translation, one module per group of ops.

Each part maps op classes to handlers in one table (`ARITH_HANDLERS`,
`MEMREF_HANDLERS`, `CONTROL_FLOW_HANDLERS`, `VECTOR_HANDLERS`,
`INTRINSIC_HANDLERS`); `quantir.compiler.backend.llvm_translation` combines
the tables and translates functions. `types` maps MLIR types to LLVM types and
`context` holds what a handler works with.
"""
