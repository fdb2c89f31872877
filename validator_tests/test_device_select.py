"""Device selection and GPU health (subnet.device): refusals are clear, nothing falls back silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pynvml
import pytest
import torch

from subnet.device.config import DeviceConfig
from subnet.device.health import GpuHealth, NvmlUnavailable, Verdict, judge, read_health
from subnet.device.memory import memory_report
from subnet.device.select import CudaProbe, DeviceUnavailable, autocast_dtype, parse_device, select_device
from subnet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ONE_GPU = CudaProbe(cuda_available=True, device_count=1, torch_cuda="12.4", names=("Fake H100",), bf16=(True,))
NO_CUDA_WHEEL = CudaProbe(cuda_available=False, device_count=0, torch_cuda=None)


class FakeNvml:
    """An injected NVML: the real pynvml error classes, chosen figures, chosen failures."""

    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(self, *, init_error=None, handle_error=None, free_mb=40_000, temp=55, ecc=0, throttle=0,
                 unsupported=()):
        self.init_error, self.handle_error = init_error, handle_error
        self.free_mb, self.temp, self.ecc, self.throttle, self.unsupported = free_mb, temp, ecc, throttle, unsupported
        self.shutdowns = 0

    def nvmlInit(self):
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, i):
        if self.handle_error is not None:
            raise self.handle_error
        return i

    def _maybe(self, what):
        if what in self.unsupported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetName(self, h):
        return b"Fake H100"

    def nvmlDeviceGetMemoryInfo(self, h):
        self._maybe("memory")
        return type("Mem", (), {"total": 80_000 << 20, "free": self.free_mb << 20, "used": 0})()

    def nvmlDeviceGetTemperature(self, h, kind):
        self._maybe("temperature")
        return self.temp

    def nvmlDeviceGetClockInfo(self, h, kind):
        return 1980 if kind == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return self.throttle

    def nvmlDeviceGetTotalEccErrors(self, h, kind, counter):
        self._maybe("ecc")
        return self.ecc if kind == 1 else 3


def test_parse_device_accepts_the_documented_forms_only() -> None:
    assert parse_device("auto") == ("auto", None)
    assert parse_device("CUDA:3") == ("cuda", 3)
    assert parse_device("mps") == ("mps", None)
    for bad in ("gpu", "cuda:", "cpu:1", "cuda:-1", "tpu", ""):
        with pytest.raises(ConfigError, match="auto, cpu, cuda, cuda:N, mps"):
            parse_device(bad)


def test_cpu_has_no_autocast_by_default_and_cuda_gets_bf16() -> None:
    assert autocast_dtype("cpu", DeviceConfig()) is None
    assert autocast_dtype("cuda", DeviceConfig()) is torch.bfloat16
    assert autocast_dtype("cuda", DeviceConfig(), bf16_ok=False) is torch.float16
    assert autocast_dtype("cpu", DeviceConfig(precision="bf16")) is torch.bfloat16
    assert autocast_dtype("cuda", DeviceConfig(precision="fp32")) is None


def test_cuda_on_this_machine_refuses_with_the_reason() -> None:
    probe = CudaProbe.from_torch()
    if probe.cuda_available:
        pytest.skip("a GPU is visible here")
    with pytest.raises(DeviceUnavailable) as err:
        select_device("cuda")
    text = str(err.value)
    assert "no usable GPU cuda:0" in text and "refusing to start" in text
    assert ("CPU-only build" in text) == (probe.torch_cuda is None)


def test_auto_without_cuda_says_why_it_uses_the_cpu() -> None:
    choice = select_device("auto", probe=NO_CUDA_WHEEL)
    assert choice.device == torch.device("cpu") and choice.autocast_dtype is None
    assert "CPU-only build" in choice.reason and "using the CPU" in choice.reason


def test_index_beyond_the_visible_gpus_is_refused() -> None:
    with pytest.raises(DeviceUnavailable, match="cuda:1.*only 1 CUDA device"):
        select_device("cuda:1", probe=ONE_GPU, nvml=FakeNvml())


def test_healthy_fake_gpu_is_chosen_with_bf16_and_its_figures() -> None:
    choice = select_device("cuda", probe=ONE_GPU, nvml=FakeNvml())
    assert choice.device == torch.device("cuda", 0) and choice.autocast_dtype is torch.bfloat16
    assert isinstance(choice.health, GpuHealth) and choice.health.temperature_c == 55
    assert choice.describe()["gpu_health"]["memory_free_bytes"] == 40_000 << 20
    assert choice.label == "cuda:0 (Fake H100)"


@pytest.mark.parametrize("nvml, reason", [
    (FakeNvml(ecc=2), "2 uncorrected ECC errors"),
    (FakeNvml(free_mb=100), "only 100 MiB free"),
    (FakeNvml(temp=97), "97 C"),
    (FakeNvml(handle_error=pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)), "cannot reach GPU 0"),
])
def test_unhealthy_gpu_refuses_cuda_and_auto_falls_back_saying_so(nvml, reason) -> None:
    with pytest.raises(DeviceUnavailable, match=reason):
        select_device("cuda", probe=ONE_GPU, nvml=nvml)
    choice = select_device("auto", probe=ONE_GPU, nvml=nvml)
    assert choice.device.type == "cpu" and "unhealthy" in choice.reason


def test_nvml_init_failure_leaves_health_unknown_but_the_gpu_usable() -> None:
    nvml = FakeNvml(init_error=pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED))
    health = read_health(0, nvml)
    assert isinstance(health, NvmlUnavailable) and not health.fatal and "NVML init failed" in health.reason
    assert judge(health, DeviceConfig(), at_start=True).verdict is Verdict.WARN
    choice = select_device("cuda", probe=ONE_GPU, nvml=nvml)
    assert choice.device.type == "cuda" and any("no GPU health figures" in c for c in choice.checks)


def test_unsupported_queries_are_named_not_fatal_and_throttling_warns() -> None:
    nvml = FakeNvml(unsupported=("ecc", "temperature"), throttle=0x40 | 0x1)
    health = read_health(0, nvml)
    assert health.ecc_uncorrected is None and health.temperature_c is None
    assert set(health.throttle_reasons) == {"hw_thermal_slowdown", "gpu_idle"} and nvml.shutdowns == 1
    check = judge(health, DeviceConfig(), at_start=True)
    assert check.verdict is Verdict.WARN
    assert any("hw_thermal_slowdown" in r for r in check.reasons) and not any("gpu_idle" in r for r in check.reasons)
    assert judge(read_health(0, FakeNvml(temp=97)), DeviceConfig(), at_start=False).verdict is Verdict.WARN


def test_real_nvml_here_is_a_value_not_an_exception() -> None:
    health = read_health(0)  # the installed nvidia-ml-py; on a machine without a driver: unavailable
    assert isinstance(health, (GpuHealth, NvmlUnavailable))


def test_memory_report_on_cpu_has_host_figures() -> None:
    rep = memory_report("cpu")
    assert rep["host_peak_rss_bytes"] > 10 << 20 and rep["host_rss_bytes"] > 0


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ConfigError):
        DeviceConfig(micro_batch_size=-1)
    with pytest.raises(ConfigError):
        DeviceConfig(dist_timeout_s=0)


@pytest.mark.slow  # two neuron start-ups (~20 s each: bittensor import)
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
@pytest.mark.parametrize("role, how", [("miner", "flag"), ("validator", "env")])
def test_neuron_with_device_cuda_refuses_to_start(role: str, how: str, tmp_path: Path) -> None:
    args = [sys.executable, str(ROOT / "neurons" / f"{role}.py"), "--wallet.path", str(tmp_path),
            "--subtensor.network", "devnet+ws://127.0.0.1:9"]
    env = dict(os.environ)
    if how == "flag":
        args += ["--device", "cuda"]
    else:
        env["TESSERA_DEVICE"] = "cuda"
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert res.returncode == 1
    assert f"cannot start the {role}" in res.stderr and "no usable GPU" in res.stderr
    assert "cannot open hotkey" not in res.stderr  # refused before the wallet or the chain
