"""Memory figures of a node: device memory (CUDA), host resident set, peaks; for logs and events.

Builds on subnet.telemetry.gpu (the per-GPU figures the metrics read) and
adds the host side, which is what a CPU miner runs out of.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any

import torch

from subnet.telemetry.gpu import gpu_figures


def host_rss_bytes() -> int | None:
    """Current resident set of this process (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def host_peak_rss_bytes() -> int:
    """Peak resident set of this process since start (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def memory_report(device: torch.device | str) -> dict[str, Any]:
    """Host RSS (now, peak) and, on CUDA, that device's allocated / reserved / peak / free / total bytes."""
    device = torch.device(device)
    out: dict[str, Any] = {"host_rss_bytes": host_rss_bytes(), "host_peak_rss_bytes": host_peak_rss_bytes()}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        figs = {f["device"]: f for f in gpu_figures() or []}
        out.update({k: v for k, v in figs.get(f"cuda:{index}", {}).items() if k != "device"})
        free, total = torch.cuda.mem_get_info(index)
        out["memory_free_bytes"], out["memory_total_bytes"] = int(free), int(total)
    return {k: v for k, v in out.items() if v is not None}


def reset_peak(device: torch.device | str) -> None:
    """Start a new peak-memory interval on a CUDA device (host peaks cannot be reset)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def describe(report: dict[str, Any]) -> str:
    """'host 512 MiB (peak 600), cuda 1200 MiB allocated (peak 1500) of 81920' for a log line."""
    mib = lambda b: b >> 20  # noqa: E731
    text = f"host {mib(report.get('host_rss_bytes', 0))} MiB (peak {mib(report['host_peak_rss_bytes'])})"
    if "memory_allocated_bytes" in report:
        text += (f", device {mib(report['memory_allocated_bytes'])} MiB allocated (peak "
                 f"{mib(report.get('max_memory_allocated_bytes', 0))}) of {mib(report.get('memory_total_bytes', 0))}")
    return text
