"""The evaluation sample: bounded gaps, unpredictable draws, stratified across rating bins."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.errors import ConfigError
from subnet.validator.sampling import (
    SamplingConfig,
    choose_for_evaluation,
    record_evaluations,
    round_players,
)

SMALL = SamplingConfig(sample_size=8, max_gap_windows=10, max_candidates=40, rating_bins=4)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), take_part=st.floats(0.3, 1.0), churn=st.floats(0.0, 0.1),
       windows=st.integers(20, 80))
def test_every_candidate_is_evaluated_within_k_of_the_windows_it_takes_part_in(seed, take_part, churn, windows):
    rng = random.Random(seed)
    uid_hotkey = {u: f"hk{u}-0" for u in range(SMALL.max_candidates)}
    history: dict[str, int] = {}
    waited: dict[str, int] = {}  # candidate windows since the last full evaluation
    for w in range(windows):
        for u in uid_hotkey:
            if rng.random() < churn:  # deregistered, a new hotkey takes the uid
                uid_hotkey[u] = f"hk{u}-{w + 1}"
        cands = {u: hk for u, hk in uid_hotkey.items() if rng.random() < take_part}
        ratings = {u: rng.gauss(0, 1) for u in cands}
        sample = choose_for_evaluation(candidates=cands, ratings=ratings, last_evaluated=history, window=w,
                                       seed_next=rng.getrandbits(64), validator_hotkey="val", cfg=SMALL)
        assert len(sample.evaluate) == min(SMALL.sample_size, len(cands))
        assert set(sample.evaluate) | set(sample.skipped) == set(cands)
        assert not set(sample.evaluate) & set(sample.skipped)
        evaluated = {cands[u] for u in sample.evaluate}
        for hk in cands.values():
            waited[hk] = 0 if hk in evaluated else waited.get(hk, 0) + 1
            assert waited[hk] < SMALL.max_gap_windows, (hk, w, waited[hk])
        history = record_evaluations(history, window=w, evaluated_hotkeys=evaluated,
                                     candidate_hotkeys=cands.values(), active_hotkeys=uid_hotkey.values())


def _setup(n: int = 40) -> tuple[dict[int, str], dict[int, float], dict[str, int]]:
    cands = {u: f"hk{u}" for u in range(n)}
    ratings = {u: float(u) for u in cands}
    history = {hk: 100 for hk in cands.values()}  # all evaluated recently: nobody overdue but the tie-break
    return cands, ratings, history


def test_the_draw_follows_the_next_seed_and_the_validator_and_nothing_else():
    cands, ratings, history = _setup()
    kw = dict(candidates=cands, ratings=ratings, last_evaluated=history, window=101, cfg=SMALL)
    a = choose_for_evaluation(seed_next=1, validator_hotkey="v1", **kw)
    assert a == choose_for_evaluation(seed_next=1, validator_hotkey="v1", **kw)  # pure
    draws = {choose_for_evaluation(seed_next=s, validator_hotkey="v1", **kw).evaluate for s in range(30)}
    assert len(draws) >= 28
    other = {choose_for_evaluation(seed_next=1, validator_hotkey=f"v{i}", **kw).evaluate for i in range(2, 32)}
    assert len(other) >= 28


def test_before_the_seed_every_upload_is_about_equally_likely_to_be_evaluated():
    """A miner that only knows the public history cannot tell whether its upload will be evaluated."""
    cands, ratings, history = _setup()
    counts = dict.fromkeys(cands, 0)
    trials = 3000
    for s in range(trials):
        for u in choose_for_evaluation(candidates=cands, ratings=ratings, last_evaluated=history, window=101,
                                       seed_next=s, validator_hotkey="v", cfg=SMALL).evaluate:
            counts[u] += 1
    expected = trials * SMALL.sample_size / len(cands)
    assert all(abs(c - expected) < 0.2 * expected for c in counts.values()), (expected, counts)


@given(seed=st.integers(0, 2**64 - 1), n=st.integers(9, 40))
def test_random_slots_are_spread_over_the_rating_bins(seed, n):
    cands, ratings, history = _setup(n)
    s = choose_for_evaluation(candidates=cands, ratings=ratings, last_evaluated=history, window=101, seed_next=seed,
                              validator_hotkey="v", cfg=SMALL)
    rest = sorted(set(cands) - set(s.overdue), key=ratings.__getitem__)
    k, bins = len(s.drawn), SMALL.rating_bins
    for b in range(bins):
        members = set(rest[len(rest) * b // bins: len(rest) * (b + 1) // bins])
        quota = k * len(members) / len(rest)
        assert int(quota) <= len(members & set(s.drawn)) <= int(quota) + 1


def test_the_stalest_get_the_guaranteed_slots_and_newcomers_start_their_clock():
    cands, ratings, history = _setup()
    history.update({"hk3": 50, "hk7": 60})
    s = choose_for_evaluation(candidates=cands, ratings=ratings, last_evaluated=history, window=101, seed_next=9,
                              validator_hotkey="v", cfg=SMALL)
    assert {3, 7} <= set(s.overdue) and len(s.overdue) == SMALL.guaranteed
    h = record_evaluations(history, window=101, evaluated_hotkeys=["hk3"], candidate_hotkeys=["hk3", "new"],
                           active_hotkeys=["hk3", "hk7", "new"])
    assert h == {"hk3": 101, "hk7": 60, "new": 100}


def test_few_candidates_are_all_evaluated_and_round_players_keep_failures():
    cands = {1: "a", 2: "b"}
    s = choose_for_evaluation(candidates=cands, ratings={}, last_evaluated={}, window=3, seed_next=1,
                              validator_hotkey="v")
    assert s.evaluate == (1, 2) and s.skipped == ()
    big = {u: f"h{u}" for u in range(40)}
    s = choose_for_evaluation(candidates=big, ratings={}, last_evaluated={}, window=3, seed_next=1,
                              validator_hotkey="v", cfg=SMALL)
    assert round_players(s, failed_cheap_checks=[99]) == tuple(sorted(set(s.evaluate) | {99}))
    assert not set(s.skipped) & set(round_players(s, [99]))


def test_configs_that_cannot_keep_the_guarantee_are_refused():
    assert SamplingConfig().guaranteed == 9
    with pytest.raises(ConfigError):
        SamplingConfig(sample_size=4, max_gap_windows=10, max_candidates=256)
    with pytest.raises(ConfigError):
        SamplingConfig(max_gap_windows=2)
    with pytest.raises(ConfigError):
        choose_for_evaluation(candidates={u: str(u) for u in range(41)}, ratings={}, last_evaluated={}, window=0,
                              seed_next=0, validator_hotkey="v", cfg=SMALL)
