"""GPU figures for an event's `gpu` field, in the shape `subnet.telemetry.metrics` reads.

Why a helper: the metrics take GPU figures from events only (one source of
truth), so a loop adds `gpu=gpu_figures()` to the events it already writes.
On a machine without CUDA (the CPU wheel, CI) it returns None and the field
is left out. Utilisation needs NVML (`pynvml`); without it that figure is
simply absent.
"""

from __future__ import annotations

from typing import Any


def gpu_figures() -> list[dict[str, Any]] | None:
    """One dict per visible CUDA device (bytes and a 0..1 utilisation), or None without CUDA."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    if not torch.cuda.is_available():
        return None
    out: list[dict[str, Any]] = []
    for i in range(torch.cuda.device_count()):
        fig: dict[str, Any] = {
            "device": f"cuda:{i}",
            "memory_allocated_bytes": int(torch.cuda.memory_allocated(i)),
            "memory_reserved_bytes": int(torch.cuda.memory_reserved(i)),
            "max_memory_allocated_bytes": int(torch.cuda.max_memory_allocated(i)),
            "memory_total_bytes": int(torch.cuda.get_device_properties(i).total_memory),
        }
        try:
            fig["utilization"] = float(torch.cuda.utilization(i)) / 100.0
        except Exception:  # noqa: BLE001 - no NVML: the figure is absent, not an error
            pass
        out.append(fig)
    return out or None
