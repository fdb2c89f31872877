"""Sequential proof of work (subnet/validator/powevidence.py): the account arithmetic, its stated bounds, the
pipeline stage on judged submissions, and the account's persistence in ValidatorState."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.errors import ConfigError
from subnet.validator.outcome import Outcome
from subnet.validator.powevidence import apply_evidence, pays, prune_evidence, update_evidence
from subnet.validator.scoring import ScoreConfig
from subnet.validator.state import ValidatorState
from subnet.validator.submission import Submission

SEQ = ScoreConfig(pow_sequential=True, pow_drift=3.0, pow_bar=2.0, pow_cap=6.0)  # round numbers for arithmetic
DEFAULT = ScoreConfig(pow_sequential=True)  # the measured defaults: the properties must hold for them too
T = st.floats(min_value=-50, max_value=50, allow_nan=False)


def test_update_is_clipped_charged_and_bounded() -> None:
    assert update_evidence(0.0, 8.0, SEQ) == pytest.approx(5.0)  # 8 - drift 3
    assert update_evidence(0.0, 100.0, SEQ) == pytest.approx(5.0)  # clipped to 8
    assert update_evidence(5.0, 8.0, SEQ) == SEQ.pow_cap  # capped at 6
    assert update_evidence(1.0, -100.0, SEQ) == 0.0  # floored at 0
    assert update_evidence(4.0, math.nan, SEQ) == pytest.approx(1.0)  # no statistic: charged as t = 0
    assert update_evidence(math.nan, 5.0, SEQ) == pytest.approx(2.0)  # a corrupt account starts from 0
    assert pays(SEQ.pow_bar, SEQ) and not pays(SEQ.pow_bar - 1e-9, SEQ)


@pytest.mark.parametrize("cfg", [SEQ, DEFAULT])
@given(ts=st.lists(st.one_of(st.floats(max_value=DEFAULT.pow_drift, allow_nan=False), st.just(math.nan)),
                   min_size=1, max_size=60))
def test_a_free_rider_at_or_below_the_drift_is_never_paid(cfg: ScoreConfig, ts: list[float]) -> None:
    e = 0.0
    for t in ts:
        e = update_evidence(e, t, cfg)
        assert not pays(e, cfg)


@pytest.mark.parametrize("cfg", [SEQ, DEFAULT])
@given(lazy=st.lists(st.floats(max_value=0.0, allow_nan=False), min_size=1, max_size=30))
def test_free_windows_after_honest_work_are_bounded(cfg: ScoreConfig, lazy: list[float]) -> None:
    """Banked evidence buys at most floor((cap - bar) / drift) windows with t <= 0 (the docstring's bound)."""
    e = cfg.pow_cap  # the most a miner can bank
    paid = 0
    for t in lazy:
        e = update_evidence(e, t, cfg)
        paid += pays(e, cfg)
    assert paid <= math.floor((cfg.pow_cap - cfg.pow_bar) / cfg.pow_drift)


@given(st.lists(T, min_size=1, max_size=40))
@settings(max_examples=200)
def test_account_stays_within_zero_and_cap(ts: list[float]) -> None:
    e = 0.0
    for t in ts:
        e = update_evidence(e, t, SEQ)
        assert 0.0 <= e <= SEQ.pow_cap


def test_config_refuses_a_bar_above_the_cap() -> None:
    with pytest.raises(ConfigError):
        ScoreConfig(pow_bar=7.0, pow_cap=6.0)
    with pytest.raises(ConfigError):
        ScoreConfig(pow_drift=-1.0)


def _sub(uid: int, outcome: Outcome, score: float | None, t: float | None) -> Submission:
    return Submission(uid=uid, hotkey=f"hk{uid}", fragment=0, outcome=outcome, reason=outcome.value, score=score,
                      detail={} if t is None else {"pow_t": t})


def test_stage_gates_scores_by_the_account_and_leaves_unevaluated_alone() -> None:
    subs = [_sub(1, Outcome.SCORED, 0.01, 9.0),  # fresh honest: 0 + 8 - 3 = 5 >= 2, paid
            _sub(2, Outcome.SCORED, 0.004, 1.5),  # banked 6: 6 + 1.5 - 3 = 4.5, still paid (a weak window)
            _sub(3, Outcome.SCORED, 0.008, 2.9),  # free-rider, fresh: 0 -> not paid
            _sub(4, Outcome.NO_IMPROVEMENT, -0.002, 0.5),  # harmful and no evidence: keeps its negative score
            _sub(5, Outcome.NOT_SAMPLED, None, None),  # not evaluated: account untouched
            _sub(6, Outcome.EMPTY, 0.0, None)]  # empty: charged (t = 0), score stays 0
    prior = {"hk2": 6.0, "hk5": 3.0, "hk6": 2.5}
    out, acc = apply_evidence(subs, prior, SEQ)
    by = {s.uid: s for s in out}
    assert by[1].outcome is Outcome.SCORED and acc["hk1"] == pytest.approx(5.0)
    assert by[2].outcome is Outcome.SCORED and acc["hk2"] == pytest.approx(4.5)
    assert by[3].outcome is Outcome.NO_PROOF_OF_WORK and by[3].score == 0.0 and acc["hk3"] == 0.0
    assert "running evidence" in by[3].reason
    assert by[4].outcome is Outcome.NO_PROOF_OF_WORK and by[4].score == pytest.approx(-0.002)
    assert by[5] is subs[4] and acc["hk5"] == 3.0
    assert by[6].outcome is Outcome.EMPTY and acc["hk6"] == 0.0
    assert prior == {"hk2": 6.0, "hk5": 3.0, "hk6": 2.5}  # the input is not mutated


def test_stage_is_inert_without_the_sequential_rule() -> None:
    subs = [_sub(3, Outcome.SCORED, 0.008, 0.1)]
    out, acc = apply_evidence(subs, {"hk3": 1.0}, ScoreConfig())
    assert out == subs and acc == {"hk3": 1.0}


def test_accounts_survive_a_restart_and_deregistered_hotkeys_are_pruned(tmp_path) -> None:
    st_ = ValidatorState(pow_evidence={"hkA": 4.5, "hkB": 0.0})
    st_.save(tmp_path)
    assert ValidatorState.load(tmp_path, identity={}).pow_evidence == {"hkA": 4.5, "hkB": 0.0}
    # files written before the field existed load with no accounts
    old = ValidatorState().to_json().replace(', "pow_evidence": {}', "")
    assert "pow_evidence" not in old and ValidatorState.from_json(old).pow_evidence == {}
    assert prune_evidence({"hkA": 4.5, "hkB": 1.0}, ["hkB"]) == {"hkB": 1.0}


def test_the_default_bank_covers_exactly_one_free_window_after_work() -> None:
    """cap = bar + drift (4.5): after a strong window one t = 0 window is still paid, the next is not."""
    assert DEFAULT.pow_cap == DEFAULT.pow_bar + DEFAULT.pow_drift
    e = update_evidence(0.0, DEFAULT.pow_clip, DEFAULT)
    assert e == DEFAULT.pow_cap
    e = update_evidence(e, 0.0, DEFAULT)
    assert pays(e, DEFAULT)
    assert not pays(update_evidence(e, 0.0, DEFAULT), DEFAULT)
