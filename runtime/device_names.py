"""Device names as users write them: "cpu", "gpu", "cuda", "cuda:N", "gpu:N".

One parser for every entry point that takes a device (the eager API,
compiled graphs, quantir-run, `cuda.to_device`), so they accept the same
spellings and reject the rest with the same message.
"""

from __future__ import annotations

__all__ = ["parse_device"]


def parse_device(device: str) -> tuple[str, int]:
    """ "cpu" -> ("cpu", 0); "gpu", "cuda" -> ("gpu", 0); "cuda:N" / "gpu:N" -> ("gpu", N)."""
    if not isinstance(device, str):
        device = str(device)
    d = device.strip().lower()
    if d == "cpu":
        return "cpu", 0
    if d in ("gpu", "cuda"):
        return "gpu", 0
    for prefix in ("cuda:", "gpu:"):
        if d.startswith(prefix) and d[len(prefix) :].isdigit():
            return "gpu", int(d[len(prefix) :])
    raise ValueError(f"unknown device {device!r}: expected 'cpu', 'gpu', 'cuda' or 'cuda:N'")
