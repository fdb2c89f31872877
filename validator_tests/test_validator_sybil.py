"""Sybil economics of the weight curves (subnet/validator/competition.py).

The rule: under the "power" curve, splitting one miner's compute across k
hotkeys earns no more than running it as one whenever ``power >= 1/alpha``
(alpha: how a hotkey's score grows with its compute, ``score ~ c**alpha``).
Checked through the real ``play_round`` and ``compute_weights`` for any
competitors, and for the closed form ``split_gain``. The rank curves pay
places, so a split that keeps every piece on top does gain there: that limit
is pinned too, so a change to it is noticed.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.errors import ConfigError
from subnet.validator.competition import (
    CompetitionConfig,
    CompetitionState,
    compute_weights,
    play_round,
    split_gain,
    strength,
)

OPERATOR = 100  # the operator's first hotkey uid; pieces are 100..100+k-1


def _operator_weight(cfg: CompetitionConfig, honest: list[float], pieces: list[float], rounds: int = 3) -> float:
    """Play `rounds` identical rounds and return the operator's total weight."""
    scores = {i: s for i, s in enumerate(honest)} | {OPERATOR + j: s for j, s in enumerate(pieces)}
    uids = sorted(scores)
    state = CompetitionState()
    for _ in range(rounds):
        state = play_round(state, scores, uids, cfg)
    w = compute_weights(state, uids, cfg)
    return sum(w[OPERATOR + j] for j in range(len(pieces)))


@settings(max_examples=120, deadline=None)
@given(score=st.floats(0.01, 10.0), k=st.sampled_from([2, 3, 4, 8]), alpha=st.floats(0.3, 1.0),
       honest=st.lists(st.floats(0.0, 10.0), min_size=0, max_size=6))
def test_power_curve_pays_no_more_for_splitting(score: float, k: int, alpha: float, honest: list[float]) -> None:
    cfg = CompetitionConfig(curve="power", power=1.0 / alpha)
    one = _operator_weight(cfg, honest, [score])
    split = _operator_weight(cfg, honest, [score * k ** -alpha] * k)
    assert split <= one + 1e-9, (one, split)


@settings(max_examples=120, deadline=None)
@given(score=st.floats(0.01, 10.0), k=st.integers(2, 8), alpha=st.floats(1.0 / 3.0, 1.0),
       honest=st.lists(st.floats(0.0, 10.0), min_size=0, max_size=6), rounds=st.integers(1, 4))
def test_the_default_config_pays_no_more_for_splitting(score: float, k: int, alpha: float, honest: list[float],
                                                       rounds: int) -> None:
    """The neurons' default (CompetitionConfig()): no split of one hotkey's compute pays, for any alpha >= 1/3."""
    cfg = CompetitionConfig()
    assert cfg.curve == "power" and cfg.power * (1.0 / 3.0) >= 1.0 - 1e-12  # the stated guarantee's premise
    one = _operator_weight(cfg, honest, [score], rounds)
    split = _operator_weight(cfg, honest, [score * k ** -alpha] * k, rounds)
    assert split <= one + 1e-9, (one, split)


def test_the_default_would_pay_a_split_below_its_stated_alpha() -> None:
    """The bound is tight, not vacuous: at alpha < 1/power the same split out-earns one hotkey."""
    cfg = CompetitionConfig()
    one = _operator_weight(cfg, [1.0, 1.0], [1.0])
    split = _operator_weight(cfg, [1.0, 1.0], [1.0 * 4 ** -0.2] * 4)
    assert split > one


@given(score=st.floats(1e-3, 1e3), k=st.integers(1, 64), alpha=st.floats(0.1, 1.0),
       others=st.floats(0.0, 1e6))
def test_split_gain_is_at_most_one_when_alpha_times_power_is_at_least_one(score: float, k: int, alpha: float,
                                                                          others: float) -> None:
    assert split_gain(score, k, alpha, 1.0 / alpha, others) <= 1.0 + 1e-9
    assert split_gain(score, k, alpha, 2.0 / alpha, others) <= 1.0 + 1e-9


def test_a_too_small_power_lets_splitting_pay_and_the_rank_curve_does_too() -> None:
    """Pinned limits: power < 1/alpha, or a rank curve with the pieces still on top, pays a split."""
    assert split_gain(1.0, 4, 0.5, 1.0, others=1.0) > 1.0
    geo = CompetitionConfig(curve="geometric")  # geometric 0.5, top_k 8 (the default before the power curve)
    one = _operator_weight(geo, [0.1, 0.1], [1.0])
    split = _operator_weight(geo, [0.1, 0.1], [0.6] * 4)  # each piece still beats every honest miner
    assert split > one


def test_power_curve_weights_are_proportional_to_strength_and_pay_every_eligible_player() -> None:
    cfg = CompetitionConfig(curve="power", power=2.0, top_k=2)
    scores = {1: 1.0, 2: 2.0, 3: 0.5, 4: 0.0}
    state = CompetitionState()
    for _ in range(2):
        state = play_round(state, scores, [1, 2, 3, 4], cfg)
    w = compute_weights(state, [1, 2, 3, 4], cfg)
    assert w[4] == 0.0  # never scored > 0: not eligible
    assert w[3] > 0  # beyond top_k, still paid
    assert w[2] / w[1] == pytest.approx(4.0) and w[1] / w[3] == pytest.approx(4.0)
    assert sum(w.values()) == pytest.approx(1.0)
    assert strength(state.players[2], cfg) == pytest.approx(2.0)


def test_power_must_be_at_least_one() -> None:
    with pytest.raises(ConfigError):
        CompetitionConfig(curve="power", power=0.5)
