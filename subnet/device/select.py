"""Turn `--device` into a torch device this node may use, or refuse to start.

Why one function: both neurons must pick the same way, say at start-up what
they picked and why, and refuse (typed `DeviceUnavailable`, exit 1) when the
operator asked for a GPU that is not there or not healthy: a miner that
silently falls back to CPU misses every window without saying why. What torch
can see is read through a `CudaProbe` value so the refusal paths are tested on
a machine without a GPU (a probe that reports one, a failing NVML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from loguru import logger

from subnet.device.config import DeviceConfig
from subnet.device.health import GpuHealth, HealthCheck, NvmlUnavailable, Verdict, judge, log_health, read_health
from subnet.errors import ConfigError

_SPEC = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


class DeviceUnavailable(ConfigError):
    """The requested device cannot be used here; the neuron refuses to start."""


@dataclass(frozen=True, kw_only=True)
class CudaProbe:
    """What torch reports about CUDA and MPS on this machine."""

    cuda_available: bool
    device_count: int
    torch_cuda: str | None
    """torch.version.cuda: None for a CPU-only wheel."""
    names: tuple[str, ...] = ()
    bf16: tuple[bool, ...] = ()
    """bf16 support per CUDA device (compute capability >= 8.0)."""
    mps_available: bool = False

    @classmethod
    def from_torch(cls) -> CudaProbe:
        avail = bool(torch.cuda.is_available())
        n = torch.cuda.device_count() if avail else 0
        names = tuple(torch.cuda.get_device_name(i) for i in range(n))
        bf16 = tuple(torch.cuda.get_device_capability(i) >= (8, 0) for i in range(n))
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        return cls(cuda_available=avail, device_count=n, torch_cuda=torch.version.cuda, names=names, bf16=bf16,
                   mps_available=mps)


@dataclass(frozen=True, kw_only=True)
class DeviceChoice:
    """The device a node trains and scores on, and how."""

    device: torch.device
    requested: str
    reason: str
    autocast_dtype: torch.dtype | None
    """None: no autocast (fp32 everywhere)."""
    name: str = ""
    health: GpuHealth | NvmlUnavailable | None = None
    checks: tuple[str, ...] = field(default_factory=tuple)

    @property
    def type(self) -> str:
        return self.device.type

    @property
    def label(self) -> str:
        """For logs, events and benchmark tables: 'cuda:0 (NVIDIA H100)' / 'cpu'."""
        return f"{self.device} ({self.name})" if self.name else str(self.device)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": str(self.device), "requested": self.requested, "reason": self.reason,
                               "precision": (str(self.autocast_dtype).replace("torch.", "")
                                             if self.autocast_dtype else "fp32")}
        if self.name:
            out["device_name"] = self.name
        if isinstance(self.health, GpuHealth):
            out["gpu_health"] = self.health.as_event()
        return out


def parse_device(text: str) -> tuple[str, int | None]:
    """('cuda', 1) for 'cuda:1'; ConfigError for anything but auto|cpu|cuda|cuda:N|mps."""
    m = _SPEC.match(text.strip().lower())
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ConfigError(f"--device {text!r} is not one of auto, cpu, cuda, cuda:N, mps",
                          remediation="e.g. --device cuda:0 (env TESSERA_DEVICE)")
    return m.group(1), int(m.group(2)) if m.group(2) is not None else None


def autocast_dtype(kind: str, cfg: DeviceConfig, bf16_ok: bool = True) -> torch.dtype | None:
    """The inner loop's autocast dtype: bf16 on CUDA by default (fp16 if unsupported), none on CPU/MPS."""
    p = cfg.precision
    if p == "fp32":
        return None
    if p == "auto":
        if kind != "cuda":
            return None
        return torch.bfloat16 if bf16_ok else torch.float16
    if kind == "mps" and p == "bf16":
        raise ConfigError("--compute.precision bf16 is not supported on mps", remediation="use fp16 or fp32")
    return torch.bfloat16 if p == "bf16" else torch.float16


def select_device(requested: str, cfg: DeviceConfig | None = None, *, probe: CudaProbe | None = None,
                  nvml: Any = None, local_rank: int | None = None) -> DeviceChoice:
    """Resolve `requested` (auto|cpu|cuda|cuda:N|mps); log the choice; DeviceUnavailable if it cannot be used.

    `local_rank` (torchrun) picks cuda:<local_rank> for a bare `cuda` / `auto`.
    """
    cfg = cfg or DeviceConfig()
    kind, index = parse_device(requested)
    probe = probe or CudaProbe.from_torch()
    if kind == "cpu":
        choice = DeviceChoice(device=torch.device("cpu"), requested=requested, reason="asked for",
                              autocast_dtype=autocast_dtype("cpu", cfg))
    elif kind == "mps":
        if not probe.mps_available:
            raise DeviceUnavailable("--device mps was asked but this torch build sees no MPS device",
                                    remediation="use --device cpu, or run on Apple silicon with an MPS build")
        choice = DeviceChoice(device=torch.device("mps"), requested=requested, reason="asked for",
                              autocast_dtype=autocast_dtype("mps", cfg))
    elif kind == "cuda":
        choice = _cuda(requested, index if index is not None else (local_rank or 0), cfg, probe, nvml, strict=True)
    else:  # auto
        choice = _auto(requested, cfg, probe, nvml, local_rank or 0)
    logger.info("device {}: {} (--device {}; autocast {})", choice.label, choice.reason, requested,
                str(choice.autocast_dtype).replace("torch.", "") if choice.autocast_dtype else "off, fp32")
    return choice


def _why_no_cuda(probe: CudaProbe) -> str:
    if probe.torch_cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    if not probe.cuda_available:
        return (f"torch (CUDA {probe.torch_cuda}) finds no usable CUDA device "
                "(driver missing, or CUDA_VISIBLE_DEVICES empty)")
    return f"only {probe.device_count} CUDA device(s) are visible"


def _cuda(requested: str, index: int, cfg: DeviceConfig, probe: CudaProbe, nvml: Any, *, strict: bool) -> DeviceChoice:
    if not probe.cuda_available or index >= probe.device_count:
        raise DeviceUnavailable(
            f"--device {requested} was asked but there is no usable GPU cuda:{index}: {_why_no_cuda(probe)}; "
            "refusing to start rather than train on the CPU",
            remediation="install a CUDA build of torch and the NVIDIA driver, pick a visible index, "
            "or pass --device cpu / auto")
    health = read_health(index, nvml)
    check: HealthCheck = judge(health, cfg, at_start=True)
    log_health(health, check)
    if check.verdict is Verdict.UNUSABLE:
        raise DeviceUnavailable(f"--device {requested}: GPU cuda:{index} ({probe.names[index]}) is not usable: "
                                + "; ".join(check.reasons),
                                remediation="fix or free the GPU, pick another with cuda:N, or relax --compute.*")
    bf16_ok = probe.bf16[index] if index < len(probe.bf16) else True
    return DeviceChoice(device=torch.device("cuda", index), requested=requested,
                        reason="asked for" if strict else "auto: a healthy CUDA GPU is visible",
                        autocast_dtype=autocast_dtype("cuda", cfg, bf16_ok), name=probe.names[index],
                        health=health, checks=check.reasons)


def _auto(requested: str, cfg: DeviceConfig, probe: CudaProbe, nvml: Any, index: int) -> DeviceChoice:
    if probe.cuda_available and index < probe.device_count:
        try:
            return _cuda(requested, index, cfg, probe, nvml, strict=False)
        except DeviceUnavailable as exc:
            logger.warning("auto: not using cuda:{}: {}", index, exc)
            why = f"auto: cuda:{index} is unhealthy"
    else:
        why = f"auto: no CUDA ({_why_no_cuda(probe)})"
    if probe.mps_available:
        return DeviceChoice(device=torch.device("mps"), requested=requested, reason=f"{why}; MPS is available",
                            autocast_dtype=autocast_dtype("mps", cfg))
    return DeviceChoice(device=torch.device("cpu"), requested=requested, reason=f"{why}; using the CPU",
                        autocast_dtype=autocast_dtype("cpu", cfg))
