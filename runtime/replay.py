"""CPU launch replays: a program's host plan interpreted once per argument shapes.

A host plan's size arithmetic, checks, allocations and launch ranges depend
only on the shapes of the arguments, not on their contents or addresses. So
the first CPU call with a given set of shapes plans the whole call: it runs
the plan's steps without launching anything, allocates the temporaries
(kept by the replay), builds every launch's argv once and records which argv
slots hold the address of which argument. A later call with the same shapes
only writes its arguments' addresses into those slots and hands the launch
list to the native thread pool in one call: no interpretation, no argv
building, no per-launch Python. At a decode step (~1 ms of kernels) the
interpreted plan cost 5-15 % of the time.

A replay is used by one call at a time (its temporaries are its own); a
concurrent call of the same shapes takes the interpreted path. Plans with
steps a replay does not cover (a buffer copy) always take that path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from quantir.compiler.backend.calling_convention import KernelSignature, kernel_argv
from quantir.runtime.buffers import aligned_empty
from quantir.runtime.cpu_pool import LaunchTable, pool

MAX_REPLAYS = 16
"""Shapes remembered per compiled module (least recently used go first)."""

MAX_TEMP_BYTES = 256 << 20
"""Temporaries the replays of one compiled module keep in all (least recently
used replays go first); a call needing more is interpreted each time."""


class UnreplayableError(Exception):
    """The plan has a step a replay cannot stand for."""


class Replay:
    """One planned call: the launch table, its argv arrays and temporaries."""

    def __init__(
        self,
        table: LaunchTable,
        argvs: list[np.ndarray],
        temps: list[np.ndarray],
        patches: list[tuple[np.ndarray, int, int]],
    ):
        self.table = table
        self.temp_bytes = sum(t.nbytes for t in temps)
        self._argvs = argvs  # the table points into these
        self._temps = temps
        self._patches = patches  # (argv, slot, argument index)
        self._busy = threading.Lock()

    def run(self, args: Sequence[np.ndarray], addresses: Sequence[int] | None = None) -> bool:
        """Run the call on `args` (whose data `addresses` may be given); False
        (nothing run) if another call is using this replay."""
        if not self._busy.acquire(blocking=False):
            return False
        try:
            if addresses is None:
                addresses = [a.ctypes.data for a in args]
            for argv, slot, i in self._patches:
                argv[slot] = addresses[i]
            pool().run_table(self.table)
        finally:
            self._busy.release()
        return True


class PlanningDevice:
    """A `ProgramDevice` that records launches instead of running them.

    Buffers are numpy arrays; each one's root (an argument index, or a
    temporary) is tracked through reshapes so that argv slots can be patched.
    """

    def __init__(self, args: Sequence[np.ndarray]):
        self.temps: list[np.ndarray] = []
        self.launches: list[tuple[KernelSignature, list, int]] = []
        self.temp_bytes = 0
        self._root: dict[int, int] = {}  # id(array) -> argument index (-1: a temporary)
        self._alive: list[np.ndarray] = []  # ids stay unique while planning
        self.args = [a.view() for a in args]  # distinct objects even for a repeated array
        for i, a in enumerate(self.args):
            self._note(a, i)

    def _note(self, array: np.ndarray, root: int) -> np.ndarray:
        self._root[id(array)] = root
        self._alive.append(array)
        return array

    def root(self, array: np.ndarray) -> int:
        return self._root[id(array)]

    def to_device(self, array: np.ndarray) -> np.ndarray:
        return array

    def alloc(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        buffer = aligned_empty(shape, dtype)
        self.temp_bytes += buffer.nbytes
        if self.temp_bytes > MAX_TEMP_BYTES:
            raise UnreplayableError("temporaries too large to keep")
        self.temps.append(buffer)
        return self._note(buffer, -1)

    def free(self, buffer: np.ndarray) -> None:
        pass  # the replay keeps its temporaries

    def copy(self, src: np.ndarray, dst: np.ndarray) -> None:
        raise UnreplayableError("the plan copies buffers")

    def reshape(self, buffer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return self._note(buffer.reshape(shape), self.root(buffer))

    def shape(self, buffer: np.ndarray) -> tuple[int, ...]:
        return buffer.shape

    def launch(self, sig: KernelSignature, args: list, n: int, tpb: int, ipb: int) -> None:
        self.launches.append((sig, args, n))


def build_replay(planner: PlanningDevice, addresses: dict[str, int], threads: int) -> Replay:
    """The replay of the launches `planner` recorded (kernel addresses by name)."""
    argvs: list[np.ndarray] = []
    patches: list[tuple[np.ndarray, int, int]] = []
    rows = []
    for sig, bufs, n in planner.launches:
        argv = kernel_argv(sig, bufs)
        slot = 0
        for (kind, dims), value in zip(sig.params, bufs):
            if kind == "memref":
                root = planner.root(value)
                if root >= 0:
                    patches.append((argv, slot, root))
                slot += 1 + len(dims)
            else:
                slot += 1
        argvs.append(argv)
        rows.append((addresses[sig.name], argv.ctypes.data, n))
    return Replay(LaunchTable.of(rows, threads), argvs, planner.temps, patches)


class ReplayCache:
    """The replays of one compiled module's programs, by (function, threads, shapes)."""

    def __init__(self, limit: int = MAX_REPLAYS):
        self.limit = limit
        self._replays: OrderedDict[tuple, Replay | None] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, key: tuple) -> Replay | None:
        """The replay for `key` if one is kept (nothing is planned)."""
        with self._lock:
            replay = self._replays.get(key)
            if replay is not None:
                self._replays.move_to_end(key)
            return replay

    def get(self, key: tuple, plan: Callable[[], Replay]) -> Replay | None:
        """The replay for `key`, planned by `plan()` the first time (None: not
        replayable). Errors `plan` raises (a failing check) propagate."""
        with self._lock:
            if key in self._replays:
                self._replays.move_to_end(key)
                return self._replays[key]
        try:
            replay: Replay | None = plan()
        except UnreplayableError:
            replay = None
        with self._lock:
            self._replays[key] = replay
            while len(self._replays) > self.limit or self._temp_bytes() > MAX_TEMP_BYTES:
                self._replays.popitem(last=False)
        return replay

    def _temp_bytes(self) -> int:
        return sum(r.temp_bytes for r in self._replays.values() if r is not None)
