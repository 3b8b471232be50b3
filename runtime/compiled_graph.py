"""Compiling graphs for a device, and calling the result on numpy arrays.

    compiled = compile_graph(graph, device="cpu", threads=4)
    y, = compiled(x, weights={"w": packed})     # or an open GGUF model, a GPTQ checkpoint

`compile_graph` takes a `quantir.compiler.graph.Graph`; `compile_on_device`
takes IR (text or a module) and returns the loaded `Program` of one function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from quantir.compiler.graph.types import TensorType, format_shape
from quantir.compiler.pipeline import default_pipeline
from quantir.dialects.errors import QuantirError
from quantir.runtime.buffers import BufferError
from quantir.runtime.cpu_threads import resolve_threads
from quantir.runtime.device_names import parse_device
from quantir.runtime.gguf import GGUFModel
from quantir.runtime.jit import CompiledModule, compile_source, in_memory, load_program
from quantir.runtime.program import Program
from quantir.runtime.weight_binding import (
    WeightDeclaration,
    as_weight_sources,
    bind_weights,
    weight_declarations,
)

if TYPE_CHECKING:
    from quantir.compiler.graph.builder import Graph

__all__ = ["CompiledGraph", "DeviceUnavailableError", "compile_graph", "compile_on_device"]


class DeviceUnavailableError(RuntimeError, QuantirError):
    """The requested device cannot be used here (no GPU runtime, no GPU, no driver)."""


def _gpu_unavailable(device: str, reason: object) -> DeviceUnavailableError:
    return DeviceUnavailableError(f"device {device!r} is not available: {reason}")


def compile_on_device(
    source: str | ModuleOp,
    function: str | None = None,
    *,
    device: str = "cpu",
    threads: int | None = None,
    pipeline: str | None = None,
    exact: bool = False,
    name: str = "<graph>",
) -> Program:
    """Compile `source` for `device` ("cpu", "cuda", "cuda:N") and load `function`.

    `exact` compiles quantized matmuls on the exact float path instead of the
    CPU's default int8-activation path (see `quantir.compiler.pipeline.default_pipeline`);
    it cannot be combined with an explicit `pipeline`.

    Raises ValueError for a malformed device string, DeviceUnavailableError
    when the GPU runtime or a GPU is missing, and the compiler's UserError
    for IR it rejects.
    """
    threads = resolve_threads(threads)
    memo = (source, function, device, threads, pipeline, exact)
    if isinstance(source, str) and (hit := _LOADED.get(memo)) is not None:
        program, compiled, loaded = hit
        if loaded() is compiled:  # still the module in memory (a cleared cache recompiles)
            return program  # an eager call's fixed cost: nothing to work out again
    kind, index = parse_device(device)
    if exact:
        if pipeline is not None:
            raise ValueError(f"exact=True chooses the pipeline; got pipeline={pipeline!r} too")
        pipeline = default_pipeline(kind, exact=True)
    if kind == "cpu":
        compiled = compile_source(source, "cpu", name=name, pipeline=pipeline)
        program = load_program(compiled, function, threads=threads)
        if isinstance(source, str) and len(_LOADED) < 1024:
            loaded = functools.partial(in_memory, source, "cpu", pipeline=pipeline)
            _LOADED[memo] = (program, compiled, loaded)
        return program
    try:
        from quantir.runtime.cuda import GpuDevice
    except ImportError as e:
        raise _gpu_unavailable(device, f"quantir's GPU runtime is not installed ({e})") from None
    # Find the GPU before compiling: its architecture decides the PTX, and a
    # machine without one should fail at once, not after a compile.
    try:
        gpu = GpuDevice.get(index)
    except (RuntimeError, OSError) as e:
        raise _gpu_unavailable(device, e) from None
    try:
        compiled = compile_source(source, "gpu", gpu_arch=gpu.arch, name=name, pipeline=pipeline)
    except ImportError as e:
        raise _gpu_unavailable(device, f"quantir's GPU code generator is missing ({e})") from None
    return load_program(compiled, function, device=gpu.bind(compiled.ptx))


_LOADED: dict[tuple, tuple[Program, CompiledModule, Callable[[], CompiledModule | None]]] = {}
"""CPU programs compile_on_device loaded, by its arguments (source text
included), with the module they came from and how to find the module in
memory now: the memo holds only while that is the same module."""


def _function(module: ModuleOp, name: str) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            return op
    raise ValueError(f"no function @{name} in the module")


class CompiledGraph:
    """A compiled graph function: ``compiled(*inputs, weights=...) -> [outputs]``.

    ``weights`` is a mapping of weight name -> numpy array (the packed uint8
    bytes for GGUF weights; a GPTQLinear, a (qweight, qzeros, scales, g_idx)
    tuple or a mapping of those names for GPTQ), an open GGUF model
    (``open_gguf``), a GPTQ checkpoint (``load_gptq_checkpoint``), or a list
    of those. Every input and weight is checked before anything runs; a
    mismatch raises a ValueError (BufferError, WeightMismatchError,
    MissingWeightError) that names it.
    """

    def __init__(
        self,
        program: Program,
        name: str,
        input_types: Sequence[TensorType],
        output_types: Sequence[TensorType],
        declarations: Sequence[WeightDeclaration],
        device: str,
    ) -> None:
        self.program = program
        self.name = name
        self.input_types = tuple(input_types)
        self.output_types = tuple(output_types)
        self.weight_declarations = tuple(declarations)
        self.device = device
        # The GGUF model bound last and its binding: a model passed call after
        # call (a decode loop) is bound once. Its tensors are views of the
        # read-only mapping, valid as long as they are held.
        self._last_model: tuple[object, dict[str, object]] = (None, {})

    @property
    def weight_names(self) -> list[str]:
        return [d.name for d in self.weight_declarations]

    def _check_inputs(self, inputs: Sequence[object]) -> None:
        if len(inputs) != len(self.input_types):
            raise BufferError(
                f"graph {self.name!r} takes {len(self.input_types)} input(s), got {len(inputs)}"
            )
        bound: dict[str, tuple[int, int, int]] = {}  # symbol -> (size, input, dimension)
        for i, (array, t) in enumerate(zip(inputs, self.input_types, strict=True)):
            if not isinstance(array, np.ndarray):
                raise BufferError(
                    f"graph {self.name!r} input {i}: expected a numpy array, "
                    f"got {type(array).__name__}"
                )
            if array.ndim != t.rank:
                raise BufferError(
                    f"graph {self.name!r} input {i}: expected {t.rank} dimensions "
                    f"{format_shape(t.shape)}, got shape {list(array.shape)}"
                )
            for d, (want, got) in enumerate(zip(t.shape, array.shape, strict=True)):
                if not isinstance(want, str):
                    continue  # static sizes are checked by the program
                if want in bound and bound[want][0] != got:
                    size, j, e = bound[want]
                    raise BufferError(
                        f"graph {self.name!r} input {i}: dimension {d} is {want!r} = {got}, "
                        f"but input {j} dimension {e} set {want!r} = {size}"
                    )
                bound.setdefault(want, (got, i, d))

    def bind_weights(self, weights: object = None) -> dict[str, object]:
        """Check `weights` against the graph's declarations; return the bound mapping."""
        return bind_weights(self.weight_declarations, as_weight_sources(weights))

    def __call__(self, *inputs: np.ndarray, weights: object = None) -> list[np.ndarray]:
        self._check_inputs(inputs)
        if isinstance(weights, GGUFModel) and self._last_model[0] is weights:
            bound = self._last_model[1]  # a mapped file's tensors do not change
        else:
            bound = self.bind_weights(weights)
            if isinstance(weights, GGUFModel):
                self._last_model = (weights, bound)
        return self.program(list(inputs), bound)

    execute = __call__

    def __repr__(self) -> str:
        return f"CompiledGraph({self.name!r}, device={self.device!r})"


def compile_graph(
    graph: Graph,
    device: str = "cpu",
    threads: int | None = None,
    *,
    pipeline: str | None = None,
    exact: bool = False,
) -> CompiledGraph:
    """Compile `graph` for `device` ("cpu", "cuda:N") and return a callable.

    ``compiled(*arrays, weights={name: array, ...})`` returns the outputs as
    a list of numpy arrays; see `CompiledGraph`. `threads` sets the CPU
    thread count (default: QUANTIR_NUM_THREADS, else every core); `pipeline`
    replaces the device's named pipeline; `exact` keeps quantized matmuls on
    the exact float path (the CPU default quantizes x to int8 blocks).
    """
    module = graph.module
    function = _function(module, graph.name)
    declarations = weight_declarations(function)
    program = compile_on_device(
        module,
        graph.name,
        device=device,
        threads=threads,
        pipeline=pipeline,
        exact=exact,
        name=f"<graph {graph.name}>",
    )
    return CompiledGraph(
        program, graph.name, graph.input_types, graph.output_types, declarations, device
    )
