"""How a neuron uses its accelerator: precision, micro-batches, compile, checkpointing, health limits.

Why a config of its own: these are per-node tuning, never consensus. Nothing
here may change the bytes of the global model (that is applied in fp32 on the
host, subnet.device.consensus); they change only how fast a miner trains its
device copy and how much memory it needs. The device itself is the neuron's
top-level `--device` flag (auto|cpu|cuda|cuda:N|mps, env TESSERA_DEVICE),
read by `subnet.device.select.select_device` together with this config
(`--compute.*`, env TESSERA_COMPUTE_*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from subnet.errors import ConfigError

DEVICE_HELP = ("Where the neuron trains and scores: auto (CUDA if a healthy GPU is visible, else MPS, else CPU), "
               "cpu, cuda, cuda:N or mps. `cuda` without a usable GPU refuses to start (no silent CPU fallback). "
               "The global model is always applied in fp32 on the host, whatever the device.")


@dataclass(frozen=True, kw_only=True)
class DeviceConfig:
    """Accelerator use of one neuron (per-node tuning; the global model's bytes never depend on it)."""

    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast dtype of the inner loop and of scoring: auto = bf16 on CUDA (fp16 if the GPU lacks bf16), fp32 on
    CPU/MPS. Master weights and AdamW state stay fp32."""
    micro_batch_size: int = 0
    """Pages per forward/backward; gradients accumulate to the full --train.batch_size step (0: the whole per-rank
    batch at once)."""
    compile: bool = False
    """torch.compile the device copy of the model (first window pays the compile time)."""
    compile_backend: str = "inductor"
    """torch.compile backend (inductor; aot_eager or eager to debug)."""
    checkpointing: Literal["auto", "on", "off"] = "auto"
    """Activation checkpointing of the decoder layers: auto = on for models of 1e9 parameters or more on an
    accelerator."""
    min_free_memory_mb: int = 1024
    """Refuse a CUDA device with less free memory than this at start-up (MiB)."""
    max_temperature_c: int = 90
    """Refuse a CUDA device hotter than this at start-up; per window only a warning (degrees C)."""
    refuse_on_ecc: bool = True
    """Refuse a CUDA device that reports uncorrected ECC errors (volatile count) at start-up."""
    dist_timeout_s: float = 600.0
    """Under torchrun: the longest one collective between the miner's ranks may take before they give up (seconds)."""

    def __post_init__(self) -> None:
        if self.micro_batch_size < 0:
            raise ConfigError("compute.micro_batch_size must be >= 0 (0: whole batch)")
        if self.min_free_memory_mb < 0 or self.max_temperature_c <= 0:
            raise ConfigError("compute.min_free_memory_mb must be >= 0 and compute.max_temperature_c > 0")
        if self.dist_timeout_s <= 0:
            raise ConfigError("compute.dist_timeout_s must be > 0")
        if not self.compile_backend:
            raise ConfigError("compute.compile_backend must name a torch.compile backend")
