"""Per-fragment cohort normalisation of contribution scores.

Why: fragments differ in how much loss they can move (the embedding fragment
may move held-out loss ten times more than a middle layer), and the draw, not
the miner, decides which fragment a miner trains in a window. Scores are
therefore made comparable *within* a fragment's cohort before they enter the
competition.

Choice (default ``"median"``): divide every score by the cohort's median
positive score. Properties:

* scale-free: multiplying a cohort's scores by any c > 0 leaves its
  normalised scores unchanged, so a 10x loss scale between fragments
  disappears;
* keeps magnitudes inside a cohort (an update twice as good as the typical
  one reads 2.0), which a rank transform would throw away;
* robust to one outlier (unlike max or mean);
* zero stays zero and negative (harmful) scores stay negative, divided by
  the same scale; ``None`` (no submission) stays ``None``.

If a cohort has no positive score, the scale is the median absolute non-zero
score (so harmful updates stay comparable), and all-zero cohorts stay zero.

Known limits, documented rather than hidden: a cohort of one always reads 1.0
for a positive score (nothing to compare with), and sybils registering many
tiny-but-positive contributions on one fragment pull its median down. The
``"max"`` method (divide by the cohort's best positive score, so the best
reads 1.0) is immune to the latter at the cost of outlier sensitivity; the
``"rank"`` method maps positive scores to ``rank / n_positive`` in (0, 1].
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from typing import Literal

from subnet.errors import ConfigError

Method = Literal["median", "max", "rank"]


def cohort_scale(scores: list[float], method: Method = "median") -> float:
    """The divisor for one cohort's finite scores (0.0 when the cohort carries no signal)."""
    positive = [s for s in scores if s > 0]
    if positive:
        return statistics.median(positive) if method == "median" else max(positive)
    nonzero = [abs(s) for s in scores if s != 0]
    return statistics.median(nonzero) if nonzero else 0.0


def normalise_cohorts(
    scores: Mapping[int, float | None],
    fragment_of: Mapping[int, int],
    method: Method = "median",
) -> dict[int, float | None]:
    """Normalise each uid's score within the cohort of uids that trained the same fragment.

    Non-finite scores are treated as 0.0 (scoring already maps them to 0).
    Every uid in ``scores`` must have a fragment in ``fragment_of``.
    """
    if method not in ("median", "max", "rank"):
        raise ConfigError(f"unknown cohort normalisation method {method!r}")
    missing = [u for u in scores if u not in fragment_of]
    if missing:
        raise ConfigError(f"uids {sorted(missing)} have scores but no fragment")

    cohorts: dict[int, list[int]] = defaultdict(list)
    clean: dict[int, float] = {}
    for uid, s in scores.items():
        if s is None:
            continue
        clean[uid] = float(s) if math.isfinite(s) else 0.0
        cohorts[fragment_of[uid]].append(uid)

    out: dict[int, float | None] = {uid: None for uid in scores}
    for members in cohorts.values():
        values = [clean[u] for u in members]
        if method == "rank":
            out.update(_rank(members, clean))
            continue
        scale = cohort_scale(values, method)
        for uid in members:
            out[uid] = clean[uid] / scale if scale > 0 else 0.0
    return out


def _rank(members: list[int], clean: Mapping[int, float]) -> dict[int, float]:
    """Positive scores -> average rank / n_positive in (0, 1] (ties share); others -> 0."""
    positive = sorted((u for u in members if clean[u] > 0), key=lambda u: clean[u])
    n = len(positive)
    out = {u: 0.0 for u in members}
    i = 0
    while i < n:
        j = i
        while j + 1 < n and clean[positive[j + 1]] == clean[positive[i]]:
            j += 1
        avg_rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            out[positive[k]] = avg_rank / n
        i = j + 1
    return out
