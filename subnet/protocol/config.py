"""Window timing and data assignment (flags `--protocol.*`; a consensus setting, see subnet/consensus.py)."""

from __future__ import annotations

from dataclasses import dataclass

from subnet.config import require_positive
from subnet.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ProtocolConfig:
    """Window timing and data assignment; every node must agree on these."""

    # 50 blocks fit 12 s blocks (README, "Windows on finney/testnet"): the seed is final ~3 blocks in,
    # a small-preset miner needs ~10 s of CPU and uploads ~110 kB, a validator scores a full 256-uid
    # subnet in ~6 min of one CPU core during the next window.
    window_blocks: int = 50
    """Blocks per window: 50 = 10 min at finney/testnet's 12 s blocks (the devnet demo and tests pass 16-20)."""
    start_block: int = 0
    """Block at which window 0 starts."""
    pages_per_miner: int = 16
    """Training pages assigned to each miner per window."""
    heldout_per_window: int = 16
    """Held-out pages the validators score on per window."""

    def __post_init__(self) -> None:
        require_positive(
            "ProtocolConfig",
            window_blocks=self.window_blocks,
            pages_per_miner=self.pages_per_miner,
            heldout_per_window=self.heldout_per_window,
        )
        if self.start_block < 0:
            raise ConfigError("ProtocolConfig.start_block must be >= 0")
