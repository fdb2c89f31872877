"""The miner's rebase onto the newest manifest (flags `--rebase.*`): per-node behaviour, not consensus."""

from __future__ import annotations

from dataclasses import dataclass

from subnet.config import require_positive


@dataclass(frozen=True, kw_only=True)
class RebaseConfig:
    """When manifest w-1 lands while the miner trains window w, move its local weights onto it.

    bench/convergence.py (docs/BENCHMARKS.md, "Network convergence"; tiny, 300 inner steps, seed 0) measured
    one window of staleness as the largest gap to centralized AdamW; rebasing when the manifest lands after
    half of H takes network / centralized from 1.161 to 1.141 and the honest uploads the validator discards
    from 34 to 25 of 120, so it is on by default. Followers are unaffected: this changes only what a miner
    trains from, never the outer step.
    """

    enabled: bool = True
    """Rebase (local += newest global - the global this window started from; AdamW moments kept) when
    the lead's manifest for the previous window arrives during the inner steps; the artifact then names
    the newest version, the one the validator scores on and aggregation applies to."""
    check_every: int = 1
    """Inner steps between looks at the lead's store for that manifest (one small read each, and only
    until it has arrived)."""

    def __post_init__(self) -> None:
        require_positive("RebaseConfig", check_every=self.check_every)
