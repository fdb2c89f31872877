"""The one-window deferred proof-of-work credit (subnet/validator/powevidence.py, competition.credit_round,
pipeline.compete): its invariants by hypothesis over the real stages, the alternation bound by enumeration,
and the credits' persistence in ValidatorState.

A simulated miner here is a judged submission with a measured ``pow_t``: every window goes through the real
``apply_evidence`` and the real ``compete`` (cohort normalisation, the OpenSkill round, the credit release,
the weights), next to one always-paid anchor miner so the cohort has a scale.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.errors import ConfigError
from subnet.node.chain import Peer
from subnet.node.config import NETWORK_SCORE
from subnet.protocol.assignment import Assignment
from subnet.validator.competition import CompetitionConfig, CompetitionState, PlayerState, credit_round
from subnet.validator.outcome import Outcome
from subnet.validator.pipeline import ChainSnapshot, compete
from subnet.validator.powevidence import (
    CreditStep,
    HeldCredit,
    apply_evidence,
    settle_credits,
    step_credit,
)
from subnet.validator.scoring import ScoreConfig
from subnet.validator.state import ValidatorState
from subnet.validator.submission import Submission

CFG = ScoreConfig(pow_sequential=True)  # drift 1.5, bar 3, cap 6, clip 8: the network's rule
COMP = CompetitionConfig(recent_rounds=128)  # every simulated round stays visible in `recent`
MINER, ANCHOR, VALIDATOR = 1, 2, 0
K = math.floor((CFG.pow_cap - CFG.pow_bar) / CFG.pow_drift)  # 2: free windows the account pays after the cap


def _peer(uid: int, hotkey: str) -> Peer:
    return Peer(uid=uid, hotkey=hotkey, stake=0.0, validator_permit=uid == VALIDATOR, last_update=0, location=None,
                commit_block=None)


def _snap(window: int, hotkeys: dict[int, str]) -> ChainSnapshot:
    peers = tuple(_peer(u, h) for u, h in sorted(hotkeys.items()))
    return ChainSnapshot(netuid=1, window=window, peers=peers,
                         assignments={u: Assignment(fragment=0, pages=(u,)) for u in hotkeys}, seed=1, seed_next=2,
                         deadline_block=0, self_uid=VALIDATOR)


def _sub(uid: int, hotkey: str, t: float, score: float = 0.01) -> Submission:
    return Submission(uid=uid, hotkey=hotkey, fragment=0, outcome=Outcome.SCORED, reason="ok", score=score,
                      detail={"pow_t": t})


class Sim:
    """One miner (and an anchor at t = 8) played through apply_evidence and compete, window after window."""

    def __init__(self, *, defer: bool) -> None:
        self.defer = defer
        self.hotkeys = {VALIDATOR: "hkV", MINER: "hkM", ANCHOR: "hkA"}
        self.comp, self.accounts = CompetitionState(), {"hkA": CFG.pow_cap}
        self.credits: dict[str, HeldCredit] = {}
        self.window = 0
        self.released_per_window: list[int] = []

    def play(self, t: float | None) -> None:
        """One window; ``t`` None: the miner was not evaluated (it sits the round out)."""
        subs = [_sub(ANCHOR, "hkA", 8.0)]
        if t is not None:
            subs.append(_sub(MINER, "hkM", t))
        judged, self.accounts = apply_evidence(subs, self.accounts, CFG)
        if t is None:
            judged.append(Submission(uid=MINER, hotkey="hkM", fragment=0, outcome=Outcome.NOT_SAMPLED, reason="-"))
        standing = compete(judged, _snap(self.window, self.hotkeys), self.comp, COMP, "median", (),
                           pow_credits=self.credits if self.defer else None, score_cfg=CFG)
        self.comp = standing.competition
        self.credits = standing.pow_credits or {}
        self.released_per_window.append(len(standing.released))
        assert len(self.credits) <= 1 and all(c.uid == MINER for c in self.credits.values())
        self.window += 1

    @property
    def recent(self) -> tuple[float | None, ...]:
        return self.comp.players[MINER].recent

    def paid(self) -> list[bool]:
        """Per round the miner played: did its entry end up positive (paid on time or late)?"""
        return [s is not None and s > 0 for s in self.recent]


def _run(ts: list[float | None], *, defer: bool) -> Sim:
    sim = Sim(defer=defer)
    for t in ts:
        sim.play(t)
    return sim


def test_step_credit_table() -> None:
    old, new = HeldCredit(uid=1, round=1, score=0.9), HeldCredit(uid=1, round=2, score=1.1)
    assert step_credit(old, True, None) == (None, CreditStep.RELEASED)
    assert step_credit(None, True, None) == (None, CreditStep.NONE)
    assert step_credit(old, False, new) == (new, CreditStep.HELD)  # the older credit goes, the new one stays
    assert step_credit(old, False, None) == (None, CreditStep.DROPPED)
    assert step_credit(None, False, None) == (None, CreditStep.NONE)


def test_an_honest_miner_held_in_its_first_window_is_paid_for_it_at_the_next() -> None:
    sim = _run([4.0, 4.0], defer=True)  # 0 + 4 - 1.5 = 2.5 < 3: held; 2.5 + 2.5 = 5 >= 3: paid, credit released
    assert sim.paid() == [True, True]
    assert sim.released_per_window == [0, 1] and sim.credits == {}
    plain = _run([4.0, 4.0], defer=False)
    assert plain.paid() == [False, True]  # without the credit the first window is lost
    assert sim.recent[1] == plain.recent[1]  # the release touched the held round only


def test_the_credit_waits_through_windows_the_miner_is_not_evaluated_in() -> None:
    sim = _run([4.0, None, None, 4.0], defer=True)
    assert sim.paid() == [True, True]
    # 2.5 (held), 1.0 (still held: round 1's credit goes, round 2's stays), 3.5 (paid: round 2 released)
    assert _run([4.0, 0.0, 4.0], defer=True).paid() == [False, True, True]


@settings(max_examples=60, deadline=None)
@given(ts=st.lists(st.one_of(st.floats(max_value=CFG.pow_drift, allow_nan=False), st.just(math.nan), st.none()),
                   min_size=1, max_size=24))
def test_a_miner_whose_t_never_exceeds_the_drift_is_never_paid(ts: list[float | None]) -> None:
    for defer in (False, True):
        sim = _run(ts, defer=defer)
        if MINER in sim.comp.players:
            assert not any(sim.paid()), (defer, ts, sim.recent)
        assert sum(sim.released_per_window) == 0


STRONG = st.floats(min_value=CFG.pow_drift, max_value=50, exclude_min=True, allow_nan=False)
FREE = st.floats(min_value=-50, max_value=0.0, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(ts=st.lists(st.one_of(STRONG, FREE), min_size=1, max_size=24))
def test_paid_free_windows_between_two_strong_ones_are_bounded(ts: list[float]) -> None:
    """Per run of windows with t <= 0: at most K paid from the account, plus 1 late through the credit."""
    for defer, bound in ((False, K), (True, K + 1)):
        paid = _run(ts, defer=defer).paid()
        run = 0
        for t, p in zip(ts, paid):
            if t > CFG.pow_drift:
                run = 0
                continue
            run += p
            assert run <= bound, (defer, ts, paid)


@settings(max_examples=60, deadline=None)
@given(ts=st.lists(st.one_of(STRONG, FREE, st.none()), min_size=1, max_size=24))
def test_a_release_raises_exactly_one_earlier_round_and_never_pays_an_unheld_one(ts: list[float | None]) -> None:
    sim = Sim(defer=True)
    for t in ts:
        before = sim.comp.players[MINER].recent if MINER in sim.comp.players else ()
        sim.play(t)
        after = sim.recent
        if t is None:
            assert after == before
            continue
        changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        assert len(changed) == sim.released_per_window[-1] <= 1
        for i in changed:
            assert before[i] is not None and before[i] <= 0 < after[i]  # a held (unpaid) round, now paid
    assert sum(sim.released_per_window) <= sum(1 for s in sim.recent if s is not None and s > 0)


def _cycle_paid(pattern: str, defer: bool, repeats: int = 6) -> bool:
    """Is a miner repeating ``pattern`` (W: t = clip, F: t = 0) paid in every window after the first cycle?"""
    ts = [CFG.pow_clip if c == "W" else 0.0 for c in pattern * repeats]
    paid = _run(ts, defer=defer).paid()
    # the last window's credit cannot be released yet (no next window): judge whole cycles but the last window
    return all(paid[len(pattern):-1])


def test_alternation_bound_by_enumeration() -> None:
    """The least share of strong windows that is paid in every window: 1/3 from the account, 1/4 with the credit.

    (The docstring used to say "about half the work": W-F alternation is paid in full, and so is W-F-F.)
    """
    for defer, least in ((False, 1 / 3), (True, 1 / 4)):
        best = 1.0
        for n in range(1, 7):
            for pattern in ("".join(p) for p in itertools.product("WF", repeat=n)):
                if "W" in pattern and _cycle_paid(pattern, defer):
                    best = min(best, pattern.count("W") / n)
        assert best == pytest.approx(least), (defer, best)
    assert _cycle_paid("WFF", False) and not _cycle_paid("WFFF", False)
    assert _cycle_paid("WFFF", True) and not _cycle_paid("WFFFF", True)


@given(recent=st.lists(st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)), min_size=1, max_size=8),
       back=st.integers(0, 12), score=st.floats(0.01, 10))
def test_credit_round_replaces_exactly_that_rounds_entry(recent: list[float | None], back: int, score: float) -> None:
    cfg = CompetitionConfig()
    rounds = len(recent) + 3
    p = PlayerState(mu=25.0, sigma=8.0, rounds=rounds, recent=tuple(recent), hotkey="hk")
    other = PlayerState(mu=20.0, sigma=8.0, rounds=2, recent=(0.5, None), hotkey="hk2")
    state = CompetitionState(round=rounds, players={5: p, 6: other})
    out = credit_round(state, 5, "hk", rounds - back, score, cfg)
    assert out.players[6] == other and out.round == state.round and out.leader == state.leader
    new = out.players[5]
    assert (new.mu, new.sigma, new.rounds, new.hotkey) == (p.mu, p.sigma, p.rounds, p.hotkey)
    if back < len(recent):
        i = len(recent) - 1 - back
        assert new.recent[i] == score and new.recent[:i] == p.recent[:i] and new.recent[i + 1:] == p.recent[i + 1:]
    else:
        assert out == state  # the round has left `recent`: dropped
    assert credit_round(state, 5, "someone-else", rounds, score, cfg) == state  # recycled uid: nothing moves


def test_credits_are_keyed_by_hotkey_pruned_with_it_and_never_inherited() -> None:
    sim = _run([4.0], defer=True)
    assert set(sim.credits) == {"hkM"}
    sim.hotkeys[MINER] = "hkNew"  # uid recycled: a new hotkey registers at the miner's uid
    subs, _ = apply_evidence([_sub(ANCHOR, "hkA", 8.0), _sub(MINER, "hkNew", 8.0)], {"hkA": 6.0}, CFG)
    standing = compete(subs, _snap(1, sim.hotkeys), sim.comp, COMP, "median", (), pow_credits=sim.credits,
                       score_cfg=CFG)
    assert standing.released == () and standing.pow_credits == {}  # the old hotkey's credit is gone with it
    assert standing.competition.players[MINER].recent == (standing.norm_scores[MINER],)  # a fresh player


def test_held_score_is_normalised_with_the_held_scores_restored_and_others_keep_theirs() -> None:
    hotkeys = {VALIDATOR: "hkV", 1: "h1", 2: "h2", 3: "h3"}
    subs = [_sub(1, "h1", 8.0, 0.02), _sub(2, "h2", 8.0, 0.04), _sub(3, "h3", 3.0, 0.06)]
    judged, _ = apply_evidence(subs, {"h1": 6.0, "h2": 6.0}, CFG)  # h3 is fresh: 0 + 3 - 1.5 < 3, held
    standing = compete(judged, _snap(0, hotkeys), CompetitionState(), COMP, "median", (), pow_credits={},
                       score_cfg=CFG)
    assert standing.norm_scores[1] == pytest.approx(0.02 / 0.03) and standing.norm_scores[3] == 0.0
    assert standing.pow_credits == {"h3": HeldCredit(uid=3, round=1, score=pytest.approx(0.06 / 0.04))}
    below_floor = compete(judged, _snap(0, hotkeys), CompetitionState(), COMP, "median", (), pow_credits={},
                          score_cfg=CFG, floor=0.1)
    assert below_floor.pow_credits == {}  # would have been zeroed by the noise floor: no credit


def test_a_credit_is_released_only_at_the_uid_it_was_held_at() -> None:
    c = HeldCredit(uid=5, round=2, score=1.0)
    paid, _ = apply_evidence([_sub(7, "h", 8.0)], {"h": 6.0}, CFG)  # the hotkey re-registered at uid 7
    assert settle_credits({"h": c}, paid, {}, {7: 1}, CFG) == ({}, [])
    paid, _ = apply_evidence([_sub(5, "h", 8.0)], {"h": 6.0}, CFG)
    assert settle_credits({"h": c}, paid, {}, {5: 3}, CFG) == ({}, [c])


def test_settle_credits_leaves_unevaluated_hotkeys_alone() -> None:
    c = HeldCredit(uid=4, round=3, score=1.0)
    resting = Submission(uid=4, hotkey="h4", fragment=0, outcome=Outcome.NOT_SAMPLED, reason="-")
    assert settle_credits({"h4": c}, [resting], {}, {4: 3}, CFG) == ({"h4": c}, [])


def test_credits_survive_a_restart_and_old_files_load(tmp_path) -> None:
    st_ = ValidatorState(pow_credits={"hkA": HeldCredit(uid=3, round=7, score=1.25)})
    st_.save(tmp_path)
    assert ValidatorState.load(tmp_path, identity={}).pow_credits == st_.pow_credits
    old = ValidatorState().to_json().replace(', "pow_credits": {}', "")
    assert "pow_credits" not in old and ValidatorState.from_json(old).pow_credits == {}
    bad = st_.to_json().replace('"score": 1.25', '"score": -1.0')
    with pytest.raises(ConfigError):
        ValidatorState.from_json(bad)


def test_the_network_default_is_the_sequential_rule_on_the_cheap_shape() -> None:
    n = NETWORK_SCORE
    assert n.pow_sequential and (n.pow_drift, n.pow_bar, n.pow_cap) == (1.5, 3.0, 6.0)
    pages = (2 * n.n_assigned_batches * n.pow_batch_size + n.n_heldout_batches * n.batch_size
             + n.n_random_batches * n.pow_batch_size)
    assert (n.n_assigned_batches * n.pow_batch_size, n.n_heldout_batches * n.batch_size, n.n_random_batches,
            pages) == (8, 8, 0, 24)


def test_a_missing_or_null_statistic_is_charged_as_zero_not_a_crash() -> None:
    """The pipeline records ``pow_t=None`` for a non-finite t: the stage charges it as t = 0."""
    subs = [Submission(uid=1, hotkey="h1", fragment=0, outcome=Outcome.SCORED, reason="ok", score=0.01,
                       detail={"pow_t": None}), Submission(uid=2, hotkey="h2", fragment=0, outcome=Outcome.SCORED,
                                                           reason="ok", score=0.01)]
    out, acc = apply_evidence(subs, {"h1": 6.0, "h2": 1.0}, CFG)
    assert acc == {"h1": 4.5, "h2": 0.0} and out[0].outcome is Outcome.SCORED
    assert out[1].outcome is Outcome.NO_PROOF_OF_WORK and out[1].detail["pow_held_score"] == 0.01
