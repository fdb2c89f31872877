"""The deferred proof-of-work credit, up to ``ScoreConfig.pow_credits`` held windows per hotkey
(subnet/validator/powevidence.py, competition.credit_round, pipeline.compete): its invariants by hypothesis
over the real stages, the alternation bound by enumeration, and the credits' persistence in ValidatorState.

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
    MAX_CREDIT_SCORE,
    Credits,
    CreditStep,
    HeldCredit,
    apply_evidence,
    settle_credits,
    step_credit,
)
from subnet.validator.scoring import ScoreConfig
from subnet.validator.state import ValidatorState
from subnet.validator.submission import Submission

CFG = ScoreConfig(pow_sequential=True)  # drift 1.5, bar 3, cap 4.5, clip 8, 2 credits: the network's rule
PREVIOUS = ScoreConfig(pow_sequential=True, pow_cap=6.0, pow_credits=1)  # the default before: cap 6, one credit
COMP = CompetitionConfig(recent_rounds=128)  # every simulated round stays visible in `recent`
MINER, ANCHOR, VALIDATOR = 1, 2, 0
K = math.floor((CFG.pow_cap - CFG.pow_bar) / CFG.pow_drift)  # 1: free windows the account pays after the cap


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

    def __init__(self, *, defer: bool, cfg: ScoreConfig = CFG) -> None:
        self.defer, self.cfg = defer, cfg
        self.hotkeys = {VALIDATOR: "hkV", MINER: "hkM", ANCHOR: "hkA"}
        self.comp, self.accounts = CompetitionState(), {"hkA": cfg.pow_cap}
        self.credits: dict[str, Credits] = {}
        self.window = 0
        self.released_per_window: list[int] = []
        self.released: tuple[HeldCredit, ...] = ()

    def play(self, t: float | None) -> None:
        """One window; ``t`` None: the miner was not evaluated (it sits the round out)."""
        subs = [_sub(ANCHOR, "hkA", 8.0)]
        if t is not None:
            subs.append(_sub(MINER, "hkM", t))
        judged, self.accounts = apply_evidence(subs, self.accounts, self.cfg)
        if t is None:
            judged.append(Submission(uid=MINER, hotkey="hkM", fragment=0, outcome=Outcome.NOT_SAMPLED, reason="-"))
        standing = compete(judged, _snap(self.window, self.hotkeys), self.comp, COMP, "median", (),
                           pow_credits=self.credits if self.defer else None, score_cfg=self.cfg)
        self.comp = standing.competition
        self.credits = standing.pow_credits or {}
        self.released = standing.released
        self.released_per_window.append(len(standing.released))
        assert set(self.credits) <= {"hkM"} and len(self.credits.get("hkM", ())) <= self.cfg.pow_credits
        assert all(c.uid == MINER for cs in self.credits.values() for c in cs)
        self.window += 1

    @property
    def recent(self) -> tuple[float | None, ...]:
        return self.comp.players[MINER].recent

    def paid(self) -> list[bool]:
        """Per round the miner played: did its entry end up positive (paid on time or late)?"""
        return [s is not None and s > 0 for s in self.recent]


def _run(ts: list[float | None], *, defer: bool, cfg: ScoreConfig = CFG) -> Sim:
    sim = Sim(defer=defer, cfg=cfg)
    for t in ts:
        sim.play(t)
    return sim


def test_step_credit_table() -> None:
    a, b, c = (HeldCredit(uid=1, round=r, score=0.9) for r in (1, 2, 3))
    assert step_credit((a, b), True, None, 2) == ((), CreditStep.RELEASED)  # the caller pays a and b
    assert step_credit((), True, None, 2) == ((), CreditStep.NONE)
    assert step_credit((a,), False, b, 2) == ((a, b), CreditStep.HELD)  # appended, oldest first
    assert step_credit((a, b), False, c, 2) == ((b, c), CreditStep.HELD)  # the oldest drops past the limit
    assert step_credit((a,), False, b, 1) == ((b,), CreditStep.HELD)  # one credit: the previous default's rule
    assert step_credit((a, b), False, None, 2) == ((), CreditStep.DROPPED)  # a held window with nothing to credit
    assert step_credit((a,), False, b, 0) == ((), CreditStep.DROPPED)  # pow_credits 0: no deferred credit
    assert step_credit((), False, None, 2) == ((), CreditStep.NONE)


def test_pow_credits_is_validated() -> None:
    for bad in (-1, True, 1.5):
        with pytest.raises(ConfigError):
            ScoreConfig(pow_credits=bad)  # type: ignore[arg-type]
    assert ScoreConfig(pow_credits=0).pow_credits == 0


def test_no_credits_is_the_account_alone() -> None:
    ts = [4.0, 0.0, 4.0, 8.0, 0.0, 0.0, 0.0, 8.0, 2.0]
    none = ScoreConfig(pow_sequential=True, pow_credits=0)
    assert _run(ts, defer=True, cfg=none).paid() == _run(ts, defer=False).paid()


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
    # 2.5 (held), 1.0 (held), 3.5 (paid: rounds 1 and 2 released)
    sim = _run([4.0, 0.0, 4.0], defer=True)
    assert sim.paid() == [True, True, True] and sim.released_per_window == [0, 0, 2]
    # 2.5, 1.0, 0.0 (three held: round 1's credit goes past the limit of 2), 3.5 (paid: rounds 2 and 3 released)
    assert _run([4.0, 0.0, 0.0, 5.0], defer=True).paid() == [False, True, True, True]
    assert _run([4.0, 0.0, 4.0], defer=True, cfg=PREVIOUS).paid() == [False, True, True]  # one credit: round 2


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
    """Per run of windows with t <= 0: at most K paid from the account, plus pow_credits late through the credit."""
    for defer, bound in ((False, K), (True, K + CFG.pow_credits)):
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
def test_a_release_raises_exactly_the_held_rounds_and_never_pays_an_unheld_one(ts: list[float | None]) -> None:
    sim = Sim(defer=True)
    for t in ts:
        before = sim.comp.players[MINER].recent if MINER in sim.comp.players else ()
        sim.play(t)
        after = sim.recent
        if t is None:
            assert after == before
            continue
        changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        assert len(changed) == sim.released_per_window[-1] <= CFG.pow_credits
        assert changed == [c.round - 1 for c in sim.released]  # round r is entry r - 1 (recent keeps every round)
        for i in changed:
            assert before[i] is not None and before[i] <= 0 < after[i]  # a held (unpaid) round, now paid
    assert sum(sim.released_per_window) <= sum(1 for s in sim.recent if s is not None and s > 0)


def _cycle_paid(pattern: str, defer: bool, cfg: ScoreConfig = CFG, repeats: int = 6) -> bool:
    """Is a miner repeating ``pattern`` (W: t = clip, F: t = 0) paid in every window after the first cycle?

    The windows after the last W of the run cannot be released yet (no later W): only whole cycles up to the
    last W are judged.
    """
    ts = [cfg.pow_clip if c == "W" else 0.0 for c in pattern * repeats]
    paid = _run(ts, defer=defer, cfg=cfg).paid()
    last_w = max(i for i, t in enumerate(ts) if t > cfg.pow_drift)
    return all(paid[len(pattern):last_w + 1])


def _least_share(defer: bool, cfg: ScoreConfig) -> float:
    best = 1.0
    for n in range(1, 7):
        for pattern in ("".join(p) for p in itertools.product("WF", repeat=n)):
            if "W" in pattern and _cycle_paid(pattern, defer, cfg):
                best = min(best, pattern.count("W") / n)
    return best


def test_alternation_bound_by_enumeration() -> None:
    """The bound: over every W/F cycle of up to 6 windows, the least share of strong windows that is still paid
    in every window is 1/2 from the account alone and 1/4 with the deferred credit (defaults: cap 4.5, 2
    credits), the same 1/4 as the previous default (cap 6, one credit), and 3 credits would lower it to 1/5."""
    assert _least_share(False, CFG) == pytest.approx(1 / 2)
    assert _least_share(True, CFG) == pytest.approx(1 / 4)
    assert _least_share(True, PREVIOUS) == pytest.approx(1 / 4)
    assert _least_share(True, ScoreConfig(pow_sequential=True, pow_credits=3)) == pytest.approx(1 / 5)
    assert _cycle_paid("WF", False) and not _cycle_paid("WFF", False)
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
    subs, _ = apply_evidence([_sub(ANCHOR, "hkA", 8.0), _sub(MINER, "hkNew", 8.0)], {"hkA": CFG.pow_cap}, CFG)
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
    assert standing.pow_credits == {"h3": (HeldCredit(uid=3, round=1, score=pytest.approx(0.06 / 0.04)),)}
    below_floor = compete(judged, _snap(0, hotkeys), CompetitionState(), COMP, "median", (), pow_credits={},
                          score_cfg=CFG, floor=0.1)
    assert below_floor.pow_credits == {}  # would have been zeroed by the noise floor: no credit


def test_a_credit_is_released_only_at_the_uid_it_was_held_at() -> None:
    c = HeldCredit(uid=5, round=2, score=1.0)
    paid, _ = apply_evidence([_sub(7, "h", 8.0)], {"h": 6.0}, CFG)  # the hotkey re-registered at uid 7
    assert settle_credits({"h": (c,)}, paid, {}, {7: 1}, CFG) == ({}, [])
    paid, _ = apply_evidence([_sub(5, "h", 8.0)], {"h": 6.0}, CFG)
    assert settle_credits({"h": (c,)}, paid, {}, {5: 3}, CFG) == ({}, [c])
    d = HeldCredit(uid=5, round=3, score=2.0)
    assert settle_credits({"h": (c, d)}, paid, {}, {5: 4}, CFG) == ({}, [c, d])  # both held rounds, oldest first
    # a state written under a larger limit releases no more than pow_credits (the newest)
    one = ScoreConfig(pow_sequential=True, pow_credits=1)
    assert settle_credits({"h": (c, d)}, paid, {}, {5: 4}, one) == ({}, [d])


def test_a_held_window_at_a_moved_uid_drops_the_old_uids_credits() -> None:
    c = HeldCredit(uid=5, round=2, score=1.0)
    held, _ = apply_evidence([_sub(7, "h", 0.0)], {"h": 0.0}, CFG)  # held at uid 7 now
    assert settle_credits({"h": (c,)}, held, {7: 0.5}, {7: 1}, CFG) == (
        {"h": (HeldCredit(uid=7, round=1, score=0.5),)}, [])


def test_settle_credits_leaves_unevaluated_hotkeys_alone() -> None:
    c = HeldCredit(uid=4, round=3, score=1.0)
    resting = Submission(uid=4, hotkey="h4", fragment=0, outcome=Outcome.NOT_SAMPLED, reason="-")
    assert settle_credits({"h4": (c,)}, [resting], {}, {4: 3}, CFG) == ({"h4": (c,)}, [])


def test_credits_survive_a_restart_and_old_files_load(tmp_path) -> None:
    c, d = HeldCredit(uid=3, round=7, score=1.25), HeldCredit(uid=3, round=8, score=0.5)
    st_ = ValidatorState(pow_credits={"hkA": (c, d), "hkB": (c,)})
    st_.save(tmp_path)
    assert ValidatorState.load(tmp_path, identity={}).pow_credits == st_.pow_credits
    old = ValidatorState().to_json().replace(', "pow_credits": {}', "")
    assert "pow_credits" not in old and ValidatorState.from_json(old).pow_credits == {}
    # a file from when a hotkey held one credit object (not a list) loads as a one-element list
    single = ValidatorState(pow_credits={"hkB": (c,)}).to_json().replace("[{", "{").replace("}]", "}")
    assert '"hkB": {' in single and ValidatorState.from_json(single).pow_credits == {"hkB": (c,)}
    for bad in (st_.to_json().replace('"score": 1.25', '"score": -1.0'),
                st_.to_json().replace('"hkB": [{', '"hkB": [7, {'),
                ValidatorState().to_json().replace('"pow_credits": {}', '"pow_credits": {"h": "x"}')):
        with pytest.raises(ConfigError):
            ValidatorState.from_json(bad)


def test_the_network_default_is_the_sequential_rule_on_the_cheap_shape() -> None:
    n = NETWORK_SCORE
    assert n.pow_sequential and (n.pow_drift, n.pow_bar, n.pow_cap, n.pow_credits) == (1.5, 3.0, 4.5, 2)
    assert n.pow_cap == n.pow_bar + n.pow_drift  # banked evidence covers one weak window (t >= 0) after work
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


# -- red-team findings (review of this stop): credits nobody else can inflate, and credits that die with their player


def _window(subs: list[Submission], hotkeys: dict[int, str], comp: CompetitionState, accounts: dict[str, float],
            credits: dict, window: int, snap: ChainSnapshot | None = None, slashed: tuple[int, ...] = ()):
    judged, accounts = apply_evidence(subs, accounts, CFG)
    st = compete(judged, snap or _snap(window, hotkeys), comp, COMP, "median", slashed, pow_credits=credits,
                 score_cfg=CFG, floor=1e-3)
    return st, accounts


@pytest.mark.parametrize("sybils", [1, 5, 20])
def test_held_free_rider_sybils_cannot_inflate_a_held_miners_credit(sybils: int) -> None:
    """Held free-riders just over the floor used to shrink the restored cohort's median: credit 909x, weight 1.0."""
    def credit_with(n: int) -> tuple[float, float]:
        hk = {VALIDATOR: "hkV", 1: "h1", 2: "h2", 3: "h3", 4: "hA"}
        subs = [_sub(1, "h1", 8, 1.0), _sub(2, "h2", 8, 1.0), _sub(3, "h3", 8, 1.0), _sub(4, "hA", 3.0, 1.0)]
        for i in range(n):
            hk[10 + i] = f"s{i}"
            subs.append(_sub(10 + i, f"s{i}", 0.0, 0.0011))  # t = 0 (held forever), raw just over the floor
        st, acc = _window(subs, hk, CompetitionState(), {"h1": 4.5, "h2": 4.5, "h3": 4.5}, {}, 0)
        (credit,) = st.pow_credits["hA"]
        nxt = [_sub(1, "h1", 8, 1.0), _sub(2, "h2", 8, 1.0), _sub(3, "h3", 8, 1.0), _sub(4, "hA", 8.0, 1.0)]
        nxt += [Submission(uid=10 + i, hotkey=f"s{i}", fragment=0, outcome=Outcome.NOT_SAMPLED, reason="-")
                for i in range(n)]
        st2, _ = _window(nxt, hk, st.competition, acc, st.pow_credits, 1)
        return credit.score, st2.weights[4]

    assert credit_with(sybils) == pytest.approx(credit_with(0))
    assert credit_with(sybils)[1] == pytest.approx(0.25)  # as each of the three honest miners


def test_a_held_uploads_would_be_score_is_read_with_only_itself_restored() -> None:
    """Two held miners in an all-held cohort each read 1.0 (their own scale), whatever the other's raw score."""
    hk = {VALIDATOR: "hkV", 1: "hA", 2: "hB"}
    st, _ = _window([_sub(1, "hA", 3.0, 1.0), _sub(2, "hB", 3.0, 50.0)], hk, CompetitionState(), {}, {}, 0)
    assert [c.score for c in st.pow_credits["hA"]] == [1.0]
    assert [c.score for c in st.pow_credits["hB"]] == [1.0]


def test_credits_die_when_the_player_is_recreated_at_its_uid() -> None:
    """A hotkey re-registered at the same uid sits out one window (no assignment), its player is rebuilt with
    rounds from 1: an old credit would overwrite the new life's round."""
    hk = {VALIDATOR: "hkV", 1: "hM", 2: "hA"}
    st, acc = _window([_sub(1, "hM", 3.0, 3.0), _sub(2, "hA", 8, 1.0)], hk, CompetitionState(), {"hA": 4.5}, {}, 0)
    assert "hM" in st.pow_credits
    away = ChainSnapshot(netuid=1, window=1, peers=tuple(_peer(u, h) for u, h in sorted(hk.items())),
                         assignments={VALIDATOR: Assignment(fragment=0, pages=(0,)),
                                      2: Assignment(fragment=0, pages=(2,))},
                         seed=1, seed_next=2, deadline_block=0, self_uid=VALIDATOR)
    st, acc = _window([_sub(2, "hA", 8, 1.0)], hk, st.competition, acc, st.pow_credits, 1, snap=away)
    assert 1 not in st.competition.players
    st, _ = _window([_sub(1, "hM", 8.0, 0.5), _sub(2, "hA", 8, 1.0)], hk, st.competition, acc, st.pow_credits, 2)
    assert st.released == ()
    assert st.competition.players[1].recent == (pytest.approx(st.norm_scores[1]),)


def test_a_copy_charge_drops_the_hotkeys_credits() -> None:
    hk = {VALIDATOR: "hkV", 1: "hM", 2: "hA"}
    st, acc = _window([_sub(1, "hM", 3.0, 1.0), _sub(2, "hA", 8, 1.0)], hk, CompetitionState(), {"hA": 4.5}, {}, 0)
    assert "hM" in st.pow_credits
    st, _ = _window([_sub(1, "hM", 8.0, 1.0), _sub(2, "hA", 8, 1.0)], hk, st.competition, acc, st.pow_credits, 1,
                    slashed=(1,))
    assert "hM" not in (st.pow_credits or {}) and st.released == ()


@pytest.mark.parametrize("score", [1e200, 2e6, float("inf"), 0.0, -1.0])
def test_a_state_file_credit_out_of_range_is_malformed(score: float) -> None:
    with pytest.raises((ValueError, TypeError)):
        HeldCredit.from_dict({"uid": 1, "round": 1, "score": score})


def test_a_credit_is_written_within_the_bound_the_state_file_loads() -> None:
    """The writer keeps to MAX_CREDIT_SCORE, so a saved state always loads (the bound is not only a reader's)."""
    sub = _sub(1, "hM", 0.0, 1.0).with_detail(pow_evidence=0.0)
    credits, _ = settle_credits({}, [sub], {1: 1e9}, {1: 1}, CFG)
    (c,) = credits["hM"]
    assert c.score == MAX_CREDIT_SCORE
    assert HeldCredit.from_dict(c.to_dict()) == c
