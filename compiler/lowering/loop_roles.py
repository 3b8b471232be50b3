"""Attributes the lowering puts on loops so that target mapping can find them.

The CPU path ignores them; `gpu-map-kernels` reads them to decide which
loops become threads.
"""

from __future__ import annotations

from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Attribute

LOOP_ATTR = "qrt.loop"
"""The role of a loop: "rows" (the parallel rows of a kernel), "reduction" (a
loop accumulating into its iter_args), "lanes" (the lanes of a lane group)."""

GPU_MAPPING_ATTR = "qrt.gpu_mapping"
"""On a parallel loop: how a GPU should run it. "item": one thread per
iteration; "lanes": one thread per lane of each iteration (the `lanes` loops
become the thread's lane); "warp": one warp per iteration, its outermost
`reduction` loops split across the 32 threads and summed with a warp reduce."""


def role(name: str, gpu: str | None = None) -> dict[str, Attribute]:
    """Attributes marking a loop's role (and, for parallel loops, its GPU mapping)."""
    attrs: dict[str, Attribute] = {LOOP_ATTR: StringAttr(name)}
    if gpu is not None:
        attrs[GPU_MAPPING_ATTR] = StringAttr(gpu)
    return attrs
