"""Weights the SDK and the chain accept, with the competition's meaning kept; the setter's cadence logic.

Follows subtensor `pallets/subtensor/src/subnets/weights.rs::internal_set_weights`
(checks 11-15: uids exist, min(MinAllowedWeights, n) entries, max-upscale,
MaxWeightExceeded) and the SDK's `bittensor/intents/weights.py` (`_conform`:
raw MinAllowedWeights after u16 quantization, `clip_to_max_weight`, `normalize`).
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from bittensor.intents.weights import _conform, _Preflight
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.validator.competition import CompetitionConfig, CompetitionState, PlayerState, compute_weights
from subnet.validator.state import ValidatorState
from subnet.validator.weights import U16_MAX, WeightRules, WeightsImpossible, fits_cap, plan_weights
from subnet.validator.weights_loop import PendingCommit, WeightOutcome, WeightSetter


def chain_accepts(uids, values, rules: WeightRules) -> bool:
    """subtensor's internal_set_weights checks 4 and 11-15 for a non-self vector."""
    scaled = [v * U16_MAX // max(values) for v in values]
    return (len(uids) <= rules.n and len(set(uids)) == len(uids) and all(0 <= u < rules.n for u in uids)
            and len(uids) >= min(rules.min_allowed, rules.n)
            and max(scaled) * U16_MAX <= rules.max_weight_limit * sum(scaled))


def sdk_accepts(plan, rules: WeightRules) -> bool:
    """The SDK's own conform step reproduces the plan exactly (no re-clipping, nothing dropped)."""
    pre = _Preflight(uid=rules.self_uid if rules.self_uid is not None else 10**6, commit_reveal=False,
                     min_allowed_weights=rules.min_allowed, max_weight_limit=rules.max_weight_limit)
    weights = plan.as_weights()
    uids = sorted(weights)
    out_uids, out_vals = _conform(uids, [weights[u] for u in uids], pre, rules.netuid)
    return out_uids == list(plan.uids) and out_vals == list(plan.values)


@st.composite
def cases(draw, capped: bool = False):
    n = draw(st.integers(2 if capped else 1, 300))
    k = draw(st.integers(1, min(n, 9)))
    winners = draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True))
    shares = draw(st.lists(st.floats(0.001, 1.0), min_size=k, max_size=k))
    weights = {u: s for u, s in zip(winners, shares)}
    weights.update({u: 0.0 for u in draw(st.lists(st.integers(0, n - 1), max_size=20)) if u not in weights})
    self_uid = draw(st.one_of(st.none(), st.integers(0, n - 1).filter(lambda u: u not in winners)))
    limit = U16_MAX
    if capped:
        limit = draw(st.integers(U16_MAX // max(1, n) + 2, U16_MAX - 1))
    rules = WeightRules(netuid=3, n=n, min_allowed=draw(st.integers(0, n)), max_weight_limit=limit,
                        self_uid=self_uid)
    return weights, rules


@settings(max_examples=300, deadline=None)
@given(cases())
def test_plan_is_accepted_and_keeps_the_competition(case):
    weights, rules = case
    plan = plan_weights(weights, rules)
    assert plan is not None
    assert chain_accepts(plan.uids, plan.values, rules) and sdk_accepts(plan, rules)
    assert max(plan.values) == U16_MAX and len(plan.uids) >= rules.min_allowed
    got = dict(zip(plan.uids, plan.values))
    winners = {u for u, w in weights.items() if w > 0 and round(w / max(weights.values()) * U16_MAX) > 0}
    assert winners <= set(got)
    floor = set(plan.floor)
    assert floor.isdisjoint(winners) and all(got[u] == 1 for u in floor)
    assert all(got[w] > 1 for w in winners)  # every winner strictly above the floor
    for a in winners:  # order kept (u16 rounding may tie near-equal shares)
        for b in winners:
            if weights[a] > weights[b] * (1 + 1e-3):
                assert got[a] >= got[b]
    assert plan.winner_share() >= 1 - rules.n / U16_MAX  # the floor is tiny
    if len(winners) >= rules.min_allowed:
        assert not floor  # nothing spread when the competition already meets the count
    if rules.self_uid is not None and rules.n - 1 >= rules.min_allowed:
        assert rules.self_uid not in got


@settings(max_examples=200, deadline=None)
@given(cases(capped=True))
def test_capped_plan_fits_the_max_weight_limit(case):
    weights, rules = case
    plan = plan_weights(weights, rules)
    assert chain_accepts(plan.uids, plan.values, rules) and sdk_accepts(plan, rules)
    got = dict(zip(plan.uids, plan.values))
    for a in got:  # weakly ordered: the clipped top ties, nobody overtakes
        for b in got:
            if weights.get(a, 0) > weights.get(b, 0) * (1 + 1e-3):
                assert got[a] >= got[b]


def test_competition_weights_meet_the_default_subnet_rules():
    cfg = CompetitionConfig(top_k=3, burn_share=0.1, owner_uid=0, curve="geometric")  # a rank curve: places
    players = {u: PlayerState(mu=25.0 + u, sigma=1.0, rounds=3, recent=(1.0,)) for u in (2, 3, 4, 5)}
    comp = CompetitionState(round=3, players=players, leader=5, leader_since=1)
    weights = compute_weights(comp, list(range(1, 12)), cfg)
    rules = WeightRules(netuid=1, n=12, min_allowed=12, self_uid=1)
    plan = plan_weights(weights, rules)
    assert len(plan.uids) == 12 and chain_accepts(plan.uids, plan.values, rules)
    got = dict(zip(plan.uids, plan.values))
    assert got[5] == U16_MAX and got[5] > got[4] > got[3] > 1 and got[0] > 1  # leader, places, burn
    assert {u for u, v in got.items() if v == 1} == {1, 2, 6, 7, 8, 9, 10, 11}
    assert plan_weights({u: 0.0 for u in range(12)}, rules) is None


@pytest.mark.parametrize("rules, param, command", [
    (WeightRules(netuid=7, n=10, min_allowed=1024), "min_allowed_weights",
     "btcli sudo set --netuid 7 --name min_allowed_weights --value 10"),
    (WeightRules(netuid=7, n=3, min_allowed=1, max_weight_limit=U16_MAX // 4), "max_weight_limit", "root"),
    (WeightRules(netuid=7, n=10, min_allowed=1, weights_version=500), "weights_version",
     "btcli sudo set --netuid 7 --name weights_version --value 100"),
])
def test_impossible_settings_name_the_hyperparameter_and_the_fix(rules, param, command):
    with pytest.raises(WeightsImpossible) as info:
        plan_weights({1: 1.0}, rules, version_key=100)
    assert info.value.hyperparameter == param
    assert command in info.value.fix and (
        str(getattr(rules, {"min_allowed_weights": "min_allowed", "max_weight_limit": "max_weight_limit",
                            "weights_version": "weights_version"}[param])) in str(info.value))


def test_cap_helper_matches_the_chain_rule():
    assert fits_cap([65535, 65535], 32768) and not fits_cap([65535, 65534], 32767)
    assert fits_cap([65535], U16_MAX)


# -- the setter against a fake chain (the devnet test drives the real one) -------------------------------------


class FakeChain:
    """Just enough chain for the setter: rules, a commit list and a weights row."""

    def __init__(self, rules: WeightRules, hotkey: str) -> None:
        self.rules = rules
        self.hotkey = hotkey
        self.commits: list[dict] = []
        self.row: dict[int, float] = {}
        self.sent: list[dict] = []
        self.commit_reveal = True

    def weight_rules(self, hotkey):
        return self.rules

    def set_weights(self, wallet, weights, version_key):
        self.sent.append(weights)
        block = self.rules.block
        data = {"reveal_round": 1234} if self.commit_reveal else {}
        if self.commit_reveal:
            self.commits.append({"hotkey": self.hotkey, "commit_block": block, "reveal_round": 1234})
        self.rules = replace(self.rules, last_update=block)
        return SimpleNamespace(success=True, extrinsic_id=f"{block}-0001", data=data)

    def weights_row(self, uid):
        return self.row

    def timelocked_commits(self):
        return list(self.commits)

    def reveal(self, at: int) -> None:
        sent = self.sent[-1]
        top = max(sent.values())
        self.row = {u: v / top for u, v in sent.items()}
        self.commits.clear()
        self.rules = replace(self.rules, last_update=at, block=at)


def _setter(chain, state, saves):
    return WeightSetter(chain, wallet=None, hotkey="hk", state=state, save=lambda: saves.append(state.to_json()),
                        version_key=100)


def test_setter_commits_waits_and_confirms_the_reveal_across_a_restart():
    rules = WeightRules(netuid=1, n=6, min_allowed=4, rate_limit=5, commit_reveal=True, tempo=10, self_uid=1,
                        block=50)
    chain, state, saves = FakeChain(rules, "hk"), ValidatorState(), []
    first = _setter(chain, state, saves).step({2: 0.7, 3: 0.3})
    assert [r.outcome for r in first] == [WeightOutcome.COMMITTED_PENDING]
    assert state.pending_commit["commit_block"] == 50 and state.last_weights_block == 50 and saves
    assert len(chain.sent[0]) == 5  # 2 winners + 3 floor entries (not itself)

    # Restart: a fresh setter over the reloaded state neither commits again nor forgets the commit.
    state2 = ValidatorState.from_json(saves[-1])
    chain.rules = replace(chain.rules, block=58)
    again = _setter(chain, state2, saves).step({2: 0.7, 3: 0.3})
    assert [r.outcome for r in again] == [WeightOutcome.PENDING] and len(chain.sent) == 1

    chain.reveal(at=61)
    done = _setter(chain, state2, saves).step({2: 0.7, 3: 0.3})
    assert [r.outcome for r in done] == [WeightOutcome.REVEALED, WeightOutcome.RATE_LIMITED]
    assert done[0].block == 61 and state2.pending_commit is None


def test_setter_reports_a_reveal_that_did_not_take_effect_and_commits_afresh():
    rules = WeightRules(netuid=1, n=6, min_allowed=1, rate_limit=2, commit_reveal=True, tempo=10, self_uid=1,
                        block=50)
    chain, state, saves = FakeChain(rules, "hk"), ValidatorState(), []
    setter = _setter(chain, state, saves)
    assert setter.step({2: 1.0})[0].outcome is WeightOutcome.COMMITTED_PENDING
    chain.commits.clear()  # dropped at the end of its reveal epoch: no drand pulse in time
    chain.rules = replace(chain.rules, block=75)
    reports = setter.step({2: 1.0})
    assert [r.outcome for r in reports] == [WeightOutcome.REVEAL_FAILED, WeightOutcome.COMMITTED_PENDING]
    assert not reports[0].success and reports[1].pending.commit_block == 75


def test_setter_adopts_a_commit_the_state_lost_and_stays_quiet_when_impossible():
    rules = WeightRules(netuid=1, n=6, min_allowed=1, rate_limit=2, commit_reveal=True, tempo=10, self_uid=1,
                        block=80)
    chain, state, saves = FakeChain(rules, "hk"), ValidatorState(), []
    chain.commits.append({"hotkey": "hk", "commit_block": 78, "reveal_round": 9})  # kill -9 before the save
    reports = _setter(chain, state, saves).step({2: 1.0})
    assert [r.outcome for r in reports] == [WeightOutcome.PENDING] and not chain.sent
    assert PendingCommit.from_dict(state.pending_commit).adopted and state.last_weights_block == 78

    chain2 = FakeChain(replace(rules, min_allowed=1024), "hk")
    setter = _setter(chain2, ValidatorState(), [])
    out = [setter.step({2: 1.0})[0] for _ in range(3)]
    assert all(r.outcome is WeightOutcome.IMPOSSIBLE for r in out) and not chain2.sent
    assert "min_allowed_weights" in out[0].detail


def test_state_without_pending_commit_still_loads():
    legacy = ValidatorState().to_json().replace(', "pending_commit": null', "")
    assert "pending_commit" not in legacy
    assert ValidatorState.from_json(legacy).pending_commit is None


def test_a_reveal_landing_between_the_rules_read_and_the_commit_read_is_not_called_failed():
    """Seen in CI under a CPU hog: the rules (LastUpdate) were read, then the reveal's block landed, then the
    commit list was read (commit gone). The setter must read LastUpdate again before reporting REVEAL_FAILED."""
    rules = WeightRules(netuid=1, n=6, min_allowed=1, rate_limit=2, commit_reveal=True, tempo=10, self_uid=1,
                        block=50)
    chain, state, saves = FakeChain(rules, "hk"), ValidatorState(), []
    _setter(chain, state, saves).step({2: 1.0})
    stale = replace(chain.rules, block=60)  # what the cadence read first: LastUpdate still the commit block

    class Racing(FakeChain):
        calls = 0

        def weight_rules(self, hotkey):
            Racing.calls += 1
            if Racing.calls == 1:
                self.reveal(at=61)  # the reveal lands right after this read
                return stale
            return self.rules

    racing = Racing(rules, "hk")
    racing.__dict__.update(chain.__dict__)
    reports = _setter(racing, state, saves).step({2: 1.0})
    assert reports[0].outcome is WeightOutcome.REVEALED, reports
