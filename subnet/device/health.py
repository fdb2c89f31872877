"""GPU health through NVML (nvidia-ml-py): free memory, ECC errors, temperature, clocks, throttling.

Why: a miner that starts on a GPU with pending uncorrected ECC errors, no free
memory or a thermal shutdown coming trains garbage or dies mid-window; the
operator should hear it at start-up, and the event log should carry the
figures every window. NVML is read, never trusted blindly: every query that
fails leaves its figure None and is named in `errors`, and NVML itself
missing (no driver, the CPU wheel, a container without the library) is an
`NvmlUnavailable` value, not an exception. The NVML module is a parameter so
tests inject a failing one (the real `pynvml` error classes, a fake module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from loguru import logger

from subnet.device.config import DeviceConfig

# NVML clock-event (throttle) reason bits, by name (nvml.h: nvmlClocksEventReason*).
_THROTTLE_BITS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
_BENIGN_THROTTLE = {"gpu_idle", "applications_clocks_setting", "sync_boost", "display_clock_setting"}


@dataclass(frozen=True, kw_only=True)
class NvmlUnavailable:
    """NVML gave no figures for this GPU, with the reason.

    fatal: NVML works but cannot reach this GPU (lost, unknown index): the GPU is unusable.
    Otherwise (no library, no driver) its health is simply unknown.
    """

    reason: str
    fatal: bool = False


@dataclass(frozen=True, kw_only=True)
class GpuHealth:
    """One GPU's state as NVML reports it; a figure NVML refused is None (see `errors`)."""

    index: int
    name: str | None = None
    memory_total_bytes: int | None = None
    memory_free_bytes: int | None = None
    temperature_c: int | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    throttle_reasons: tuple[str, ...] = ()
    ecc_uncorrected: int | None = None
    """Volatile (since boot) uncorrected ECC error count; None where ECC is off or unsupported."""
    ecc_corrected: int | None = None
    errors: tuple[str, ...] = ()

    def as_event(self) -> dict[str, Any]:
        """The figures for an event's `gpu_health` field (JSON scalars only)."""
        out: dict[str, Any] = {k: v for k, v in self.__dict__.items() if v is not None and k not in ("errors",)}
        out["throttle_reasons"] = list(self.throttle_reasons)
        if self.errors:
            out["nvml_errors"] = list(self.errors)
        return out


class Verdict(Enum):
    """What a health reading means for this node."""

    OK = "ok"
    WARN = "warn"  # worth a log line and an event, not a refusal
    UNUSABLE = "unusable"  # refuse to start on it


@dataclass(frozen=True, kw_only=True)
class HealthCheck:
    verdict: Verdict
    reasons: tuple[str, ...] = field(default_factory=tuple)


def load_nvml() -> Any:
    """The real `pynvml` module (nvidia-ml-py); None if the package is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def read_health(index: int, nvml: Any = None) -> GpuHealth | NvmlUnavailable:
    """Query GPU `index` (the CUDA ordinal as NVML numbers it); never raises for what NVML does."""
    nvml = nvml if nvml is not None else load_nvml()
    if nvml is None:
        return NvmlUnavailable(reason="nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return NvmlUnavailable(reason=f"NVML init failed: {type(exc).__name__}: {exc}")
    try:
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:  # noqa: BLE001
            return NvmlUnavailable(reason=f"NVML cannot reach GPU {index}: {type(exc).__name__}: {exc}", fatal=True)
        return _read(nvml, handle, index)
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - a failed shutdown changes no figure
            pass


def _read(nvml: Any, handle: Any, index: int) -> GpuHealth:
    errors: list[str] = []

    def ask(what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(handle, *args)
        except Exception as exc:  # noqa: BLE001 - NVML_ERROR_NOT_SUPPORTED etc.: figure absent
            errors.append(f"{what}: {type(exc).__name__}")
            return None

    name = ask("name", nvml.nvmlDeviceGetName)
    mem = ask("memory", nvml.nvmlDeviceGetMemoryInfo)
    temp = ask("temperature", nvml.nvmlDeviceGetTemperature, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
    sm = ask("sm_clock", nvml.nvmlDeviceGetClockInfo, getattr(nvml, "NVML_CLOCK_SM", 1))
    memclk = ask("mem_clock", nvml.nvmlDeviceGetClockInfo, getattr(nvml, "NVML_CLOCK_MEM", 2))
    reasons = ask("throttle", nvml.nvmlDeviceGetCurrentClocksThrottleReasons)
    volatile = getattr(nvml, "NVML_VOLATILE_ECC", 1)
    unc = ask("ecc_uncorrected", nvml.nvmlDeviceGetTotalEccErrors,
              getattr(nvml, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1), volatile)
    cor = ask("ecc_corrected", nvml.nvmlDeviceGetTotalEccErrors,
              getattr(nvml, "NVML_MEMORY_ERROR_TYPE_CORRECTED", 0), volatile)
    return GpuHealth(
        index=index,
        name=name.decode() if isinstance(name, bytes) else name,
        memory_total_bytes=int(mem.total) if mem is not None else None,
        memory_free_bytes=int(mem.free) if mem is not None else None,
        temperature_c=int(temp) if temp is not None else None,
        sm_clock_mhz=int(sm) if sm is not None else None,
        mem_clock_mhz=int(memclk) if memclk is not None else None,
        throttle_reasons=tuple(n for bit, n in _THROTTLE_BITS.items() if reasons is not None and int(reasons) & bit),
        ecc_uncorrected=int(unc) if unc is not None else None,
        ecc_corrected=int(cor) if cor is not None else None,
        errors=tuple(errors),
    )


def judge(health: GpuHealth | NvmlUnavailable, cfg: DeviceConfig, *, at_start: bool) -> HealthCheck:
    """Refuse (at start) a GPU with uncorrected ECC errors, too little free memory or too hot; else warn or pass.

    Without NVML the GPU is still usable (torch saw it): the verdict is WARN,
    since nothing about its health is known.
    """
    if isinstance(health, NvmlUnavailable):
        if health.fatal:
            return HealthCheck(verdict=Verdict.UNUSABLE if at_start else Verdict.WARN, reasons=(health.reason,))
        return HealthCheck(verdict=Verdict.WARN, reasons=(f"no GPU health figures: {health.reason}",))
    bad: list[str] = []
    warn: list[str] = []
    if health.ecc_uncorrected:
        (bad if cfg.refuse_on_ecc else warn).append(f"{health.ecc_uncorrected} uncorrected ECC errors since boot")
    if health.memory_free_bytes is not None and health.memory_free_bytes < cfg.min_free_memory_mb << 20:
        bad.append(f"only {health.memory_free_bytes >> 20} MiB free (--compute.min_free_memory_mb "
                   f"{cfg.min_free_memory_mb})")
    if health.temperature_c is not None and health.temperature_c > cfg.max_temperature_c:
        bad.append(f"{health.temperature_c} C (--compute.max_temperature_c {cfg.max_temperature_c})")
    harmful = [r for r in health.throttle_reasons if r not in _BENIGN_THROTTLE]
    if harmful:
        warn.append("clocks throttled: " + ", ".join(harmful))
    if health.errors:
        warn.append("NVML could not report " + ", ".join(health.errors))
    if bad and at_start:
        return HealthCheck(verdict=Verdict.UNUSABLE, reasons=tuple(bad + warn))
    if bad or warn:
        return HealthCheck(verdict=Verdict.WARN, reasons=tuple(bad + warn))
    return HealthCheck(verdict=Verdict.OK)


def log_health(health: GpuHealth | NvmlUnavailable, check: HealthCheck, *, window: int | None = None) -> None:
    where = f"window {window}: " if window is not None else ""
    if isinstance(health, NvmlUnavailable):
        logger.warning("{}GPU health unknown: {}", where, health.reason)
        return
    mib = (lambda b: "?" if b is None else f"{b >> 20}")
    line = (f"{where}GPU {health.index} {health.name}: "
            f"{mib(health.memory_free_bytes)}/{mib(health.memory_total_bytes)} "
            f"MiB free, {health.temperature_c} C, SM {health.sm_clock_mhz} MHz, "
            f"ECC uncorrected {health.ecc_uncorrected}")
    if check.verdict is Verdict.OK:
        logger.info(line)
    else:
        logger.warning("{} - {}", line, "; ".join(check.reasons))
