"""A compiled graph function, ready to call on numpy arrays.

`Program` binds a `HostPlan` to the kernels compiled for it and to a device.
A call checks every input, weight and output buffer (dtype, shape, layout,
no overlap between outputs and anything else) before any compiled code runs,
then executes the plan: on the GPU step by step; on the CPU as a replay of
its launches, planned once per argument shapes (runtime/replay.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from quantir.compiler.backend.calling_convention import KernelSignature, kernel_argv
from quantir.runtime.buffers import (
    BufferError,
    BufferPool,
    aligned_empty,
    check_buffer,
    check_no_overlap,
    is_device_buffer,
    row_index_problem,
)
from quantir.runtime.host_plan import ArgSpec, HostPlan, Step
from quantir.runtime.replay import PlanningDevice, Replay, ReplayCache, build_replay


class ProgramDevice(Protocol):
    """Where a program's buffers live and its kernels run.

    `CpuProgramDevice` below; `cuda.GpuProgramDevice` on NVIDIA GPUs.
    """

    def to_device(self, array: np.ndarray) -> Any: ...
    def to_host(self, buffer: Any, out: np.ndarray) -> None: ...
    def alloc(self, shape: tuple[int, ...], dtype: str) -> Any: ...
    def free(self, buffer: Any) -> None: ...
    def copy(self, src: Any, dst: Any) -> None: ...
    def reshape(self, buffer: Any, shape: tuple[int, ...]) -> Any: ...
    def shape(self, buffer: Any) -> tuple[int, ...]: ...
    def launch(self, sig: KernelSignature, args: list, n: int, tpb: int, ipb: int) -> None: ...


class CpuProgramDevice:
    """The `ProgramDevice` of CPU programs: numpy buffers, kernels on a thread pool.

    Temporaries come from `pool` (one per compiled module, shared by its
    programs): what one call frees, the next call of the same shapes reuses.
    """

    def __init__(
        self,
        kernels,
        threads: int,
        pool: BufferPool | None = None,
        replays: ReplayCache | None = None,
    ):
        self.kernels = kernels
        self.threads = threads
        self.pool = pool if pool is not None else BufferPool()
        self.replays = replays if replays is not None else ReplayCache()

    def to_device(self, array: np.ndarray) -> np.ndarray:
        return array

    def to_host(self, buffer: np.ndarray, out: np.ndarray) -> None:
        if buffer is not out:
            np.copyto(out, buffer)

    def alloc(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        return self.pool.take(shape, dtype)

    def free(self, buffer: np.ndarray) -> None:
        self.pool.give(buffer)

    def copy(self, src: np.ndarray, dst: np.ndarray) -> None:
        np.copyto(dst, src)

    def reshape(self, buffer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return buffer.reshape(shape)

    def shape(self, buffer: np.ndarray) -> tuple[int, ...]:
        return buffer.shape

    def launch(self, sig: KernelSignature, args: list, n: int, tpb: int, ipb: int) -> None:
        if n > 0:  # e.g. the AMX tile layout of x, skipped below 16 rows
            self.kernels.launch(sig.name, kernel_argv(sig, args), n, self.threads)


def gather_weight_parts(name: str, value: object, parts: Sequence[str]) -> dict[str, object]:
    """Accept a weight as an array, a {part: array} mapping, a sequence, or a GPTQ layer."""
    if parts == ("",):
        return {"": value}
    if hasattr(value, "tensors") and callable(value.tensors):
        value = value.tensors()
    if isinstance(value, Mapping):
        missing = [p for p in parts if p not in value]
        if missing:
            raise BufferError(f"weight {name!r}: missing GPTQ tensor(s) {', '.join(missing)}")
        return {p: value[p] for p in parts}
    if isinstance(value, list | tuple):
        if len(value) != len(parts):
            raise BufferError(
                f"weight {name!r}: expected {len(parts)} GPTQ tensors ({', '.join(parts)}), "
                f"got {len(value)}"
            )
        return dict(zip(parts, value))
    raise BufferError(
        f"weight {name!r}: a GPTQ weight is (qweight, qzeros, scales, g_idx), a mapping of "
        f"those names, or a GPTQ layer; got {type(value).__name__}"
    )


class Program:
    """A compiled graph function bound to its kernels."""

    def __init__(
        self, plan: HostPlan, signatures: dict[str, KernelSignature], device: ProgramDevice
    ):
        self.plan = plan
        self.signatures = signatures
        self.device = device
        # Shapes and dtypes of earlier calls that `bind` checked (CPU programs
        # with no row indices: those need their values checked every call).
        self._known: set[tuple] | None = None
        if isinstance(device, CpuProgramDevice) and not plan.row_indices:
            self._known = set()
        self._input_slots = [(s.index, s.position) for s in plan.inputs]
        self._output_slots = [(s.index, s.position) for s in plan.outputs]
        self._output_indices = frozenset(s.index for s in plan.outputs)
        # (name, index) of each weight; a weight of several parts (GPTQ) is
        # gathered by `bind`, so such programs check every call in full.
        self._weight_slots = [(s.weight_name, s.index) for s in plan.weights]
        if any(s.weight_part for s in plan.weights):
            self._known = None

    @property
    def name(self) -> str:
        return self.plan.name

    def weight_names(self) -> list[str]:
        return sorted(self.plan.weights_by_name)

    def bind(
        self,
        inputs: Sequence[object],
        weights: Mapping[str, object] | None,
        outputs: Sequence[np.ndarray] | None,
    ) -> list[np.ndarray]:
        """Check every buffer and return the argument list (outputs allocated if absent)."""
        plan = self.plan
        if len(inputs) != len(plan.inputs):
            raise BufferError(f"@{plan.name} takes {len(plan.inputs)} input(s), got {len(inputs)}")
        args: list[object] = [None] * len(plan.args)
        for spec in plan.inputs:
            what = f"@{plan.name} input {spec.label}"
            args[spec.index] = self._check(what, inputs[spec.position], spec.spec)
        weights = weights or {}
        for name, specs in plan.weights_by_name.items():
            if name not in weights:
                raise BufferError(f"@{plan.name} needs weight {name!r}, which was not given")
            parts = tuple(s.weight_part for s in specs)
            given = gather_weight_parts(name, weights[name], parts)
            for s in specs:
                what = f"weight {name!r}" + (f" {s.weight_part}" if s.weight_part else "")
                args[s.index] = self._check(what, given[s.weight_part], s.spec)
        for spec in plan.row_indices:
            self._check_row_indices(spec, args)
        if outputs is not None and len(outputs) != len(plan.outputs):
            raise BufferError(
                f"@{plan.name} has {len(plan.outputs)} output(s), got {len(outputs)} buffers"
            )
        for spec in plan.outputs:
            shape = self.output_shape(spec, args)
            what = f"@{plan.name} output {spec.position}"
            if outputs is not None:
                out = self._check(what, outputs[spec.position], spec.spec, writable=True)
                if tuple(out.shape) != shape:
                    raise BufferError(
                        f"{what}: expected shape {list(shape)}, got {list(out.shape)}"
                    )
            else:
                out = aligned_empty(shape, spec.spec.dtypes[0])
            args[spec.index] = out
        if outputs is not None:
            host = lambda a: not is_device_buffer(a)  # noqa: E731
            check_no_overlap(
                [
                    (f"output {s.position}", args[s.index])
                    for s in plan.outputs
                    if host(args[s.index])
                ],
                [
                    (f"argument {a.index}", args[a.index])
                    for a in plan.args
                    if a.kind != "output" and host(args[a.index])
                ],
            )
            out_ptrs = [args[s.index].ptr for s in plan.outputs if not host(args[s.index])]
            other_ptrs = {
                args[a.index].ptr
                for a in plan.args
                if a.kind != "output" and not host(args[a.index])
            }
            if len(set(out_ptrs)) != len(out_ptrs) or set(out_ptrs) & other_ptrs:
                raise BufferError(
                    f"@{plan.name}: GPU output buffers must not be shared with each other or "
                    "with inputs and weights"
                )
        return args  # type: ignore[return-value]

    def _describe(self, spec: ArgSpec) -> str:
        if spec.kind == "weight":
            return f"weight {spec.weight_name!r}"
        return f"@{self.plan.name} input {spec.label}"

    def _check_row_indices(self, spec: ArgSpec, args: list) -> None:
        """Gather indices must name rows of their tables: kernels trust them (they
        only clamp), so a bad one is an error before anything runs."""
        values = args[spec.index]
        if is_device_buffer(values):
            values = values.to_numpy()  # a few ids: the copy is cheap next to the launch
        for t in spec.row_indices_of:
            rows = int(args[t].shape[0])
            problem = row_index_problem(values, rows)
            if problem is not None:
                table = self.plan.args[t]
                raise BufferError(f"{self._describe(spec)}: {problem} {self._describe(table)}")

    def _check(self, what: str, value: object, spec, writable: bool = False) -> np.ndarray:
        on_gpu = not isinstance(self.device, CpuProgramDevice)
        return check_buffer(what, value, spec, writable=writable, on_gpu=on_gpu)

    def output_shape(self, spec: ArgSpec, args: list) -> tuple[int, ...]:
        dyn = iter(spec.result_dims)
        shape = []
        for d in spec.spec.shape:
            if d >= 0:
                shape.append(d)
            else:
                arg, dim = next(dyn)
                shape.append(int(args[arg].shape[dim]))
        return tuple(shape)

    def __call__(
        self,
        inputs: Sequence[object],
        weights: Mapping[str, object] | None = None,
        outputs: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        if self._known is not None:
            known = self._call_known(inputs, weights, outputs)
            if known is not None:
                return [known[s.index] for s in self.plan.outputs]
        args = self.bind(inputs, weights, outputs)
        self.execute(args)
        if self._known is not None and len(self._known) < 64:
            self._known.add(self._signature(args, outputs is not None))
        return [args[s.index] for s in self.plan.outputs]

    def _signature(self, args: list, outputs_given: bool) -> tuple:
        """Shapes and dtypes of a call's buffers (outputs only when the caller gave them)."""
        return tuple(
            (a.shape, a.dtype) if outputs_given or i not in self._output_indices else None
            for i, a in enumerate(args)
        )

    def _call_known(
        self,
        inputs: Sequence[object],
        weights: Mapping[str, object] | None,
        outputs: Sequence[object] | None,
    ) -> list | None:
        """Run a call whose buffers have the shapes and dtypes of an earlier call
        that `bind` checked, and return its arguments: only what can differ
        between such calls is checked here (type, layout, writability,
        overlap). None: nothing ran, and the call is left to `bind`, which says
        what is wrong, and `execute`."""
        given = outputs is not None
        if len(inputs) != len(self._input_slots):
            return None
        if given and len(outputs) != len(self._output_slots):  # type: ignore[arg-type]
            return None
        args: list = [None] * len(self.plan.args)
        for index, position in self._input_slots:
            args[index] = inputs[position]
        if self._weight_slots:
            if weights is None:
                return None
            for name, index in self._weight_slots:
                args[index] = weights.get(name)
        if given:
            for index, position in self._output_slots:
                args[index] = outputs[position]  # type: ignore[index]
        for a in args:
            if a is not None and (not isinstance(a, np.ndarray) or not a.flags.c_contiguous):
                return None
        signature = tuple((a.shape, a.dtype) if a is not None else None for a in args)
        if signature not in self._known:  # type: ignore[operator]
            return None
        if not given:  # shapes follow from the arguments', as bind found them
            for spec in self.plan.outputs:
                args[spec.index] = aligned_empty(self.output_shape(spec, args), spec.spec.dtypes[0])
        replay = self.device.replays.find(self._replay_key(args))  # type: ignore[attr-defined]
        if replay is None:
            return None
        addresses = [a.ctypes.data for a in args]
        if given:
            for index, _ in self._output_slots:
                out = args[index]
                if not out.flags.writeable:
                    return None
                lo, hi = addresses[index], addresses[index] + out.nbytes
                for j, other in enumerate(args):
                    if (
                        j != index
                        and other.nbytes
                        and lo < addresses[j] + other.nbytes
                        and addresses[j] < hi
                    ):
                        return None
        return args if replay.run(args, addresses) else None

    def _replay_key(self, args: list) -> tuple:
        return (self.plan.name, self.device.threads, *((a.shape, a.dtype) for a in args))  # type: ignore[attr-defined]

    def execute(self, args: list) -> None:
        """Run the plan on bound arguments."""
        dev = self.device
        if isinstance(dev, CpuProgramDevice):
            replay = dev.replays.get(self._replay_key(args), lambda: self._plan_replay(args, dev))
            if replay is not None and replay.run(args):
                return
        regs: list[Any] = [None] * self.plan.registers
        on_host = isinstance(dev, CpuProgramDevice)
        outputs = {s.index for s in self.plan.outputs}
        staged: list[Any] = []  # device copies of host arrays made for this call
        for i, a in enumerate(args):
            if on_host or is_device_buffer(a):
                regs[i] = a  # already where the kernels run (an output stays there)
            elif i in outputs:
                regs[i] = dev.output_buffer(a.shape, a.dtype.name)  # type: ignore[attr-defined]
                staged.append(regs[i])
            else:
                regs[i] = dev.to_device(a)
                staged.append(regs[i])
        try:
            for step in self.plan.steps:
                self._run_step(step, regs, dev)
            if not on_host:
                for spec in self.plan.outputs:
                    if not is_device_buffer(args[spec.index]):
                        dev.to_host(regs[spec.index], args[spec.index])
        finally:
            for buffer in staged:  # the GPU's workspace: reused by the next call
                dev.free(buffer)

    def _plan_replay(self, args: list, dev: CpuProgramDevice) -> Replay:
        """Interpret the plan once for these argument shapes, recording its launches."""
        planner = PlanningDevice(args)
        regs: list[Any] = [None] * self.plan.registers
        regs[: len(args)] = planner.args
        for step in self.plan.steps:
            self._run_step(step, regs, planner)
        return build_replay(planner, dev.kernels.addresses, dev.threads)

    def _run_step(self, step: Step, regs: list, dev: Any) -> None:
        k, a = step.kind, step.args
        if k == "int":
            regs[step.target] = a[0]
        elif k == "dim":
            regs[step.target] = int(dev.shape(regs[a[0]])[a[1]])
        elif k == "binop":
            regs[step.target] = a[0](regs[a[1]], regs[a[2]])
        elif k == "cmp":
            regs[step.target] = a[0](regs[a[1]], regs[a[2]])
        elif k == "check":
            if not regs[a[0]]:
                raise BufferError(f"@{self.plan.name}: {a[1]}")
        elif k == "alloc":
            spec, dyn = a
            it = iter(dyn)
            shape = tuple(d if d >= 0 else regs[next(it)] for d in spec.shape)
            regs[step.target] = dev.alloc(shape, spec.dtypes[0])
        elif k == "free":
            dev.free(regs[a[0]])
            regs[a[0]] = None
        elif k == "copy":
            dev.copy(regs[a[0]], regs[a[1]])
        elif k == "collapse":
            src, groups = a
            dims = dev.shape(regs[src])
            shape = tuple(int(np.prod([dims[i] for i in g], dtype=np.int64)) for g in groups)
            regs[step.target] = dev.reshape(regs[src], shape)
        elif k == "expand":
            src, static, dyn = a
            it = iter(dyn)
            shape = tuple(d if d >= 0 else regs[next(it)] for d in static)
            regs[step.target] = dev.reshape(regs[src], shape)
        elif k == "launch":
            name, arg_regs, range_reg, tpb, ipb = a
            dev.launch(
                self.signatures[name], [regs[r] for r in arg_regs], regs[range_reg], tpb, ipb
            )
        else:  # pragma: no cover - HostPlan only builds the kinds above
            raise AssertionError(k)
