"""Who gets the full loss evaluation this window: a pure, unpredictable, rating-stratified sample.

Why: scoring one contribution costs seconds of CPU (bench/compute.py), so a
validator cannot evaluate 256 uploads every window. Cheap checks (signature,
identity, shapes, norm, copy sketch) still run on every submission; the full
evaluation runs on ``sample_size`` of those that passed them.

The sample is a function of (next window's seed, validator hotkey, window,
the candidates, their ratings and when each was last evaluated):

* The next window's seed is unknown while miners train, so a miner cannot
  know whether *this* upload will be evaluated; the validator's hotkey makes
  every validator draw a different sample, so coverage adds up across them.
* ``guaranteed`` slots go to the candidates evaluated longest ago (ties in a
  seeded random order). Proof of the bound: let A be the registered hotkeys
  at least as stale as m. After m's first window A never grows (an evaluated
  one restarts at 0, a newcomer starts at 1). In a window where m is a
  candidate and not picked, the ``guaranteed`` picks are all from A, so A
  shrinks by that many. So m is evaluated within
  ``ceil((max_candidates - 1) / guaranteed) + 2`` of the windows it takes part
  in; ``guaranteed`` is derived from ``max_gap_windows`` (K) so that this is
  at most K.
* The other slots are drawn uniformly inside equal-count bins of the rating
  order (``rating_bins``), allocated in proportion to bin sizes by
  systematic rounding (so every candidate has the same chance), so leaders,
  the middle and newcomers are all watched every window.

K (``max_gap_windows``) defaults to 32: at 256 uids and the default 32
evaluations per window, 9 slots are guaranteed (ceil(255 / 30)) and 23 are random, so about
three quarters of the budget stays unpredictable while no miner waits more
than 32 windows; on average a miner is evaluated every 8 windows by one
validator and every 8/V windows by V validators.

Ratings must not punish a round in which a miner was not evaluated: only the
evaluated uids, and the uids that failed a cheap check (absent, rejected,
copied: no full evaluation can save those), play the round
(``round_players``); the rest keep their rating unchanged.

Refuses (ConfigError) configurations where the guarantee cannot hold.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction

from subnet.errors import ConfigError

_DOMAIN = b"tessera-eval-sample-v1"


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How many submissions get the full loss evaluation per window, and the coverage guarantee."""

    sample_size: int = 32
    """Full loss evaluations per window (cheap checks run on every submission)."""
    max_gap_windows: int = 32
    """K: every candidate is fully evaluated at least once in any K consecutive windows it takes part in."""
    max_candidates: int = 256
    """Most candidates per window the guarantee is sized for (a subnet's MaxAllowedUids)."""
    rating_bins: int = 4
    """Equal-count bins of the rating order the random slots are spread over."""

    def __post_init__(self) -> None:
        for name in ("sample_size", "max_gap_windows", "max_candidates", "rating_bins"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"SamplingConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_gap_windows < 3:
            raise ConfigError(f"SamplingConfig.max_gap_windows must be >= 3, got {self.max_gap_windows}",
                              remediation="sample_size >= max_candidates evaluates everyone every window")
        if self.guaranteed > self.sample_size:
            raise ConfigError(
                f"SamplingConfig: {self.max_candidates} candidates evaluated every {self.max_gap_windows} windows "
                f"need {self.guaranteed} guaranteed slots, more than sample_size={self.sample_size}",
                remediation="raise sample_size or max_gap_windows")

    @property
    def guaranteed(self) -> int:
        """Slots for the stalest candidates: the fewest that keep every gap within K (module docstring)."""
        return max(1, math.ceil((self.max_candidates - 1) / (self.max_gap_windows - 2)))


@dataclass(frozen=True, kw_only=True)
class EvaluationSample:
    """The window's choice: ``evaluate`` = ``overdue`` (guaranteed slots) + ``drawn`` (random, stratified)."""

    evaluate: tuple[int, ...]
    overdue: tuple[int, ...]
    drawn: tuple[int, ...]
    skipped: tuple[int, ...]
    """Candidates that passed the cheap checks but sit this round out (ratings untouched)."""


def sample_rng(seed_next: int, validator_hotkey: str, window: int) -> random.Random:
    """The one RNG of the window's draw: unknown to miners until window w+1's seed is final."""
    material = b"|".join([_DOMAIN, int(seed_next).to_bytes(8, "big", signed=False), validator_hotkey.encode(),
                          int(window).to_bytes(8, "big", signed=True)])
    return random.Random(int.from_bytes(hashlib.sha256(material).digest(), "big"))


def staleness(hotkey: str, window: int, last_evaluated: Mapping[str, int]) -> int:
    """Windows since this hotkey's last full evaluation; a hotkey never evaluated counts as evaluated last window."""
    return max(1, window - last_evaluated.get(hotkey, window - 1))


def choose_for_evaluation(*, candidates: Mapping[int, str], ratings: Mapping[int, float],
                          last_evaluated: Mapping[str, int], window: int, seed_next: int, validator_hotkey: str,
                          cfg: SamplingConfig = SamplingConfig()) -> EvaluationSample:
    """Pick this window's full evaluations among ``candidates`` (uid -> hotkey, all passed the cheap checks).

    ``ratings``: uid -> rating ordinal (missing: below everyone rated, i.e. a
    newcomer's default); ``last_evaluated``: hotkey -> window of its last full
    evaluation (``record_evaluations`` keeps it).
    """
    if len(candidates) > cfg.max_candidates:
        raise ConfigError(f"{len(candidates)} candidates, more than SamplingConfig.max_candidates={cfg.max_candidates}")
    rng = sample_rng(seed_next, validator_hotkey, window)
    uids = sorted(int(u) for u in candidates)
    if len(uids) <= cfg.sample_size:
        return EvaluationSample(evaluate=tuple(uids), overdue=(), drawn=tuple(uids), skipped=())
    tiebreak = {u: rng.random() for u in uids}
    by_staleness = sorted(uids, key=lambda u: (-staleness(candidates[u], window, last_evaluated), tiebreak[u]))
    overdue = by_staleness[: cfg.guaranteed]
    rest = [u for u in uids if u not in set(overdue)]
    drawn = _stratified(rest, ratings, cfg.sample_size - len(overdue), cfg.rating_bins, rng)
    chosen = set(overdue) | set(drawn)
    return EvaluationSample(evaluate=tuple(sorted(chosen)), overdue=tuple(sorted(overdue)), drawn=tuple(sorted(drawn)),
                            skipped=tuple(u for u in uids if u not in chosen))


def _stratified(uids: list[int], ratings: Mapping[int, float], k: int, n_bins: int, rng: random.Random) -> list[int]:
    """k uids drawn uniformly within equal-count bins of the rating order, slots in proportion to bin sizes."""
    if k <= 0 or not uids:
        return []
    if k >= len(uids):
        return list(uids)
    order = sorted(uids, key=lambda u: (ratings.get(u, -math.inf), u))
    n_bins = min(n_bins, len(order))
    bins = [order[len(order) * b // n_bins: len(order) * (b + 1) // n_bins] for b in range(n_bins)]
    # systematic allocation: bin b gets floor or ceil of its quota, exactly its quota on average, so every
    # uid's chance of a random slot is k / len(uids) whatever its bin (no bin knows it is left out)
    u0, cum, slots = Fraction(rng.random()), Fraction(0), []  # exact: the slots sum to k
    for members in bins:
        lo, cum = cum, cum + Fraction(k * len(members), len(order))
        slots.append(math.floor(cum - u0 + 1) - math.floor(lo - u0 + 1))
    out: list[int] = []
    for members, n in zip(bins, slots):
        out.extend(rng.sample(members, min(n, len(members))))
    return out


def record_evaluations(last_evaluated: Mapping[str, int], *, window: int, evaluated_hotkeys: Collection[str],
                       candidate_hotkeys: Collection[str], active_hotkeys: Collection[str]) -> dict[str, int]:
    """The history after ``window`` (persist it atomically with the validator state).

    Evaluated hotkeys are stamped ``window``; a candidate seen for the first
    time is stamped ``window - 1`` (its clock starts when it first takes part);
    hotkeys no longer registered are dropped.
    """
    active = set(active_hotkeys)
    out = {hk: w for hk, w in last_evaluated.items() if hk in active}
    for hk in candidate_hotkeys:
        out.setdefault(hk, window - 1)
    for hk in evaluated_hotkeys:
        out[hk] = window
    return out


def round_players(sample: EvaluationSample, failed_cheap_checks: Collection[int]) -> tuple[int, ...]:
    """Uids that play this window's competition round: evaluated ones and those that failed a cheap check."""
    return tuple(sorted(set(sample.evaluate) | {int(u) for u in failed_cheap_checks}))
