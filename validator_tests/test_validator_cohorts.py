"""Tests for per-fragment cohort normalisation."""

from __future__ import annotations

import random

import pytest

from subnet.errors import ConfigError
from subnet.validator.cohorts import normalise_cohorts


def _two_cohorts(seed: int, scale_b: float) -> tuple[dict[int, float], dict[int, int]]:
    rng = random.Random(seed)
    scores: dict[int, float] = {}
    frag: dict[int, int] = {}
    for uid in range(40):
        frag[uid] = uid % 2
        s = rng.lognormvariate(0.0, 0.5) * 1e-3
        scores[uid] = s * (scale_b if frag[uid] == 1 else 1.0)
    return scores, frag


def _share_of_b_in_top_half(scores: dict[int, float | None], frag: dict[int, int]) -> float:
    top = sorted(scores, key=lambda u: -(scores[u] or 0.0))[: len(scores) // 2]
    return sum(frag[u] for u in top) / len(top)


@pytest.mark.parametrize("method", ["median", "max", "rank"])
def test_ten_x_loss_scale_is_normalised_away(method: str) -> None:
    scores, frag = _two_cohorts(seed=1, scale_b=10.0)
    assert _share_of_b_in_top_half(scores, frag) == 1.0  # raw: cohort B takes every top place
    norm = normalise_cohorts(scores, frag, method)  # type: ignore[arg-type]
    assert 0.3 <= _share_of_b_in_top_half(norm, frag) <= 0.7
    a = sorted(v for u, v in norm.items() if frag[u] == 0)
    b = sorted(v for u, v in norm.items() if frag[u] == 1)
    # same distribution -> similar normalised quantiles
    for q in (0.25, 0.5, 0.75):
        i = int(q * len(a))
        assert b[i] == pytest.approx(a[i], rel=0.5)


def test_median_is_exactly_scale_invariant() -> None:
    scores, frag = _two_cohorts(seed=2, scale_b=1.0)
    scaled = {u: s * (10.0 if frag[u] == 1 else 1.0) for u, s in scores.items()}
    assert normalise_cohorts(scaled, frag) == pytest.approx(normalise_cohorts(scores, frag))
    norm = normalise_cohorts(scores, frag)
    for f in (0, 1):
        vals = sorted(v for u, v in norm.items() if frag[u] == f)
        assert (vals[9] + vals[10]) / 2 == pytest.approx(1.0)


def test_zero_none_negative_and_non_finite() -> None:
    scores = {1: 0.0, 2: None, 3: 2.0, 4: 4.0, 5: -1.0, 6: float("nan"), 7: 0.0, 8: -3.0}
    frag = {1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 1, 8: 1}
    out = normalise_cohorts(scores, frag)
    assert out[1] == 0.0 and out[2] is None and out[6] == 0.0
    assert out[3] == pytest.approx(2 / 3) and out[4] == pytest.approx(4 / 3)
    assert out[5] == pytest.approx(-1 / 3)
    assert out[7] == 0.0 and out[8] == pytest.approx(-1.0)  # no positive: scale = median |nonzero|
    rank = normalise_cohorts(scores, frag, "rank")
    assert rank[3] == 0.5 and rank[4] == 1.0 and rank[5] == 0.0 and rank[2] is None


def test_rank_ties_share() -> None:
    out = normalise_cohorts({1: 1.0, 2: 1.0, 3: 3.0, 4: 0.0}, {1: 0, 2: 0, 3: 0, 4: 0}, "rank")
    assert out == {1: pytest.approx(0.5), 2: pytest.approx(0.5), 3: 1.0, 4: 0.0}


def test_bad_input() -> None:
    with pytest.raises(ConfigError):
        normalise_cohorts({1: 1.0}, {})
    with pytest.raises(ConfigError):
        normalise_cohorts({1: 1.0}, {1: 0}, "mean")  # type: ignore[arg-type]
