"""The shared model every node builds (flags `--model.*`; a consensus setting, see subnet/consensus.py)."""

from __future__ import annotations

from dataclasses import dataclass

from subnet.config import require_positive


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The shared model: every node must agree on all three."""

    preset: str = "tiny"
    """Model preset name (tiny, small, 125m, 1b, 8b)."""
    n_fragments: int = 2
    """Number of parameter fragments F the model is split into (1 = full model)."""
    seed: int = 0
    """Seed of the deterministic initialisation (version 0 of the global model)."""

    def __post_init__(self) -> None:
        require_positive("ModelConfig", n_fragments=self.n_fragments)
