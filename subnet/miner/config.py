"""The miner's inner optimisation (flags `--train.*`): per-node tuning, not a consensus setting."""

from __future__ import annotations

from dataclasses import dataclass

from subnet.config import require_positive
from subnet.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The miner's inner optimisation (AdamW over its fragment only)."""

    inner_steps: int = 10
    """H: optimizer steps per window."""
    lr: float = 2e-3
    """Peak inner AdamW learning rate."""
    batch_size: int = 8
    """Sequences (pages) per inner step."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay."""
    beta1: float = 0.9
    """AdamW first-moment decay."""
    beta2: float = 0.95
    """AdamW second-moment decay."""
    eps: float = 1e-8
    """AdamW epsilon."""
    warmup_steps: int = 20
    """Linear lr warm-up over this many inner steps, counted across windows (persisted)."""
    grad_clip: float = 1.0
    """Clip the fragment's gradient norm to this (0 disables)."""

    def __post_init__(self) -> None:
        require_positive("TrainConfig", inner_steps=self.inner_steps, lr=self.lr, batch_size=self.batch_size)
        if self.warmup_steps < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ConfigError("TrainConfig: warmup_steps, grad_clip and weight_decay must be >= 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("TrainConfig: betas must lie in [0, 1)")
