"""Tests for the Apex-style competition: ranks, sticky leader, weights, state persistence."""

from __future__ import annotations

import json

import pytest
from openskill.models import PlackettLuce

from subnet.errors import ConfigError
from subnet.validator.competition import (
    CompetitionConfig,
    CompetitionState,
    CompetitionStateError,
    PlayerState,
    competition_ranks,
    compute_weights,
    leaderboard,
    play_round,
)


def _state(players: dict[int, tuple[float, float]], leader: int | None, rnd: int = 5) -> CompetitionState:
    return CompetitionState(
        round=rnd,
        players={u: PlayerState(mu=m, sigma=s, rounds=rnd, recent=(1.0,)) for u, (m, s) in players.items()},
        leader=leader,
        leader_since=0 if leader is not None else None,
    )


def test_ranks_ties_share_and_none_last() -> None:
    ranks = competition_ranks({1: 1.0, 2: 0.5, 3: 0.5, 4: None, 5: -1.0}, [1, 2, 3, 4, 5, 6])
    assert ranks == {1: 1, 2: 2, 3: 2, 5: 4, 4: 5, 6: 5}


def test_tied_scores_get_identical_ratings() -> None:
    cfg = CompetitionConfig()
    st = play_round(CompetitionState(), {1: 0.3, 2: 0.3, 3: 0.1}, [1, 2, 3], cfg)
    assert st.players[1].mu == st.players[2].mu
    assert st.players[1].mu > st.players[3].mu


def _post_round_gap(cfg: CompetitionConfig) -> float:
    """Independent openskill computation of challenger-minus-leader ordinal after the round."""
    model = PlackettLuce(mu=cfg.mu, sigma=cfg.sigma, beta=cfg.beta, tau=cfg.tau)
    teams = [[model.rating(mu=30.0, sigma=2.0)], [model.rating(mu=30.5, sigma=2.0)], [model.rating(mu=20.0, sigma=3.0)]]
    r = model.rate(teams, ranks=[2, 1, 3])
    leader, challenger = r[0][0], r[1][0]
    return challenger.ordinal(z=cfg.z) - leader.ordinal(z=cfg.z)


@pytest.mark.parametrize("delta, expect_leader", [(-0.01, 2), (+0.01, 1)])
def test_challenger_needs_margin(delta: float, expect_leader: int) -> None:
    base = CompetitionConfig(margin=0.0)
    gap = _post_round_gap(base)
    assert gap > 0
    cfg = CompetitionConfig(margin=gap + delta)
    st = _state({1: (30.0, 2.0), 2: (30.5, 2.0), 3: (20.0, 3.0)}, leader=1)
    after = play_round(st, {1: 0.5, 2: 0.6, 3: 0.1}, [1, 2, 3], cfg)
    assert after.leader == expect_leader
    assert after.leader_since == (0 if expect_leader == 1 else st.round + 1)
    # leader is paid first even when not the top ordinal
    assert leaderboard(after, [1, 2, 3], cfg)[0] == expect_leader


def test_consistent_winner_eventually_takes_the_lead_and_huge_margin_blocks_it() -> None:
    for margin, final in [(1.0, 2), (1e9, 1)]:
        cfg = CompetitionConfig(margin=margin)
        st = play_round(CompetitionState(), {1: 1.0, 2: 0.5, 3: 0.1}, [1, 2, 3], cfg)
        assert st.leader == 1
        for _ in range(20):
            st = play_round(st, {1: 0.5, 2: 1.0, 3: 0.1}, [1, 2, 3], cfg)
        assert st.leader == final


def test_non_submitters_lose_and_drop_out_of_weights() -> None:
    cfg = CompetitionConfig(recent_rounds=3)
    st = CompetitionState()
    for _ in range(3):
        st = play_round(st, {1: 1.0, 2: 0.5, 3: 0.4}, [1, 2, 3], cfg)
    mu3 = st.players[3].mu
    st = play_round(st, {1: 1.0, 2: 0.5, 3: None}, [1, 2, 3], cfg)
    assert st.players[3].mu < mu3
    assert compute_weights(st, [1, 2, 3], cfg)[3] > 0  # scored > 0 within the recent window
    for _ in range(2):
        st = play_round(st, {1: 1.0, 2: 0.5}, [1, 2, 3], cfg)  # missing key == None
    w = compute_weights(st, [1, 2, 3], cfg)
    assert w[3] == 0.0
    assert sum(w.values()) == pytest.approx(1.0)


def test_never_positive_gets_zero_weight() -> None:
    cfg = CompetitionConfig()
    st = CompetitionState()
    for _ in range(4):
        st = play_round(st, {1: 1.0, 2: 0.0, 3: -0.5}, [1, 2, 3], cfg)
    w = compute_weights(st, [1, 2, 3], cfg)
    assert w == {1: 1.0, 2: 0.0, 3: 0.0}


def test_deregistered_dropped_new_uid_starts_at_default_and_hotkey_change_resets() -> None:
    cfg = CompetitionConfig()
    st = CompetitionState()
    for _ in range(3):
        st = play_round(st, {1: 1.0, 2: 0.5}, [1, 2], cfg, hotkeys={1: "a", 2: "b"})
    st = play_round(st, {1: 1.0, 3: 0.5}, [1, 3], cfg, hotkeys={1: "a", 3: "c"})
    assert set(st.players) == {1, 3}
    assert st.players[3].rounds == 1
    before = st.players[1]
    st = play_round(st, {1: 1.0, 3: 0.5}, [1, 3], cfg, hotkeys={1: "new", 3: "c"})
    assert st.players[1].rounds == 1 and st.players[1].hotkey == "new"
    assert st.players[1].sigma > before.sigma  # fresh, uncertain rating


def test_recycled_leader_uid_is_a_new_player_without_weight_slash_or_first_place() -> None:
    """subtensor reuses a pruned uid for the next registration (`pallets/subtensor/src/subnets/uids.rs`,
    `replace_neuron`): the uid's new hotkey inherits nothing from the old neuron."""
    # a huge margin: only a reset can unseat the leader; a rank curve, so the leader is paid first
    cfg = CompetitionConfig(margin=100.0, slash_rounds=50, curve="geometric")
    st = CompetitionState()
    keys = {1: "old", 2: "b", 3: "c"}
    for _ in range(6):
        st = play_round(st, {1: 1.0, 2: 0.5, 3: 0.1}, [1, 2, 3], cfg, hotkeys=keys)
    st = play_round(st, {1: 1.0, 2: 0.5, 3: 0.1}, [1, 2, 3], cfg, slashed={3}, hotkeys=keys)
    assert st.leader == 1 and st.players[3].slashed_round is not None
    new_keys = {1: "new", 2: "b", 3: "c2"}
    # between rounds (weights set before the next round is played): the new hotkeys hold no weight
    w = compute_weights(st, [1, 2, 3], cfg, hotkeys=new_keys)
    assert w[1] == 0.0 and w[3] == 0.0 and w[2] == pytest.approx(1.0)
    assert compute_weights(st, [1, 2, 3], cfg)[1] > 0  # without hotkeys the old rating would be paid
    assert 1 not in leaderboard(st, [1, 2, 3], cfg, hotkeys=new_keys)
    # the next round: fresh ratings, no copy charge, and first place is not inherited by the uid
    st = play_round(st, {1: 1.0, 2: 0.5, 3: 0.1}, [1, 2, 3], cfg, hotkeys=new_keys)
    p1, p3 = st.players[1], st.players[3]
    assert (p1.hotkey, p1.rounds, p3.hotkey, p3.rounds) == ("new", 1, "c2", 1)
    assert p3.slashed_round is None and p1.sigma > st.players[2].sigma
    assert st.leader == 2 and st.leader_since == st.round
    w = compute_weights(st, [1, 2, 3], cfg, hotkeys=new_keys)
    assert w[2] > w[1]


def test_state_without_hotkeys_adopts_the_first_hotkey_seen() -> None:
    cfg = CompetitionConfig()
    st = play_round(CompetitionState(), {1: 1.0, 2: 0.5}, [1, 2], cfg)  # an old state: no hotkeys recorded
    st2 = play_round(st, {1: 1.0, 2: 0.5}, [1, 2], cfg, hotkeys={1: "a", 2: "b"})
    assert st2.players[1].rounds == 2 and st2.players[1].hotkey == "a"
    assert compute_weights(st, [1, 2], cfg, hotkeys={1: "a", 2: "b"}) == compute_weights(st, [1, 2], cfg)


def test_copier_gets_zero_weight_for_slash_rounds() -> None:
    cfg = CompetitionConfig(slash_rounds=2)
    st = CompetitionState()
    for _ in range(3):
        st = play_round(st, {1: 1.0, 2: 0.9, 3: 0.1}, [1, 2, 3], cfg)
    st = play_round(st, {1: 1.0, 2: 0.9, 3: 0.1}, [1, 2, 3], cfg, slashed={2})
    assert compute_weights(st, [1, 2, 3], cfg)[2] == 0.0
    st = play_round(st, {1: 1.0, 2: 0.9, 3: 0.1}, [1, 2, 3], cfg)
    assert compute_weights(st, [1, 2, 3], cfg)[2] == 0.0
    st = play_round(st, {1: 1.0, 2: 0.9, 3: 0.1}, [1, 2, 3], cfg)
    assert compute_weights(st, [1, 2, 3], cfg)[2] > 0.0


def test_slashed_leader_loses_lead() -> None:
    cfg = CompetitionConfig()
    st = CompetitionState()
    for _ in range(3):
        st = play_round(st, {1: 1.0, 2: 0.5}, [1, 2], cfg)
    assert st.leader == 1
    st = play_round(st, {1: 1.0, 2: 0.5}, [1, 2], cfg, slashed={1})
    assert st.leader == 2


def test_geometric_and_linear_curves_with_burn() -> None:
    st = _state({10: (40.0, 1.0), 11: (35.0, 1.0), 12: (30.0, 1.0), 13: (25.0, 1.0)}, leader=10)
    geo = CompetitionConfig(top_k=3, curve="geometric", decay=0.5, burn_share=0.3, owner_uid=0)
    w = compute_weights(st, [0, 10, 11, 12, 13], geo)
    assert w[0] == pytest.approx(0.3)
    assert [w[10], w[11], w[12]] == pytest.approx([0.7 * 4 / 7, 0.7 * 2 / 7, 0.7 * 1 / 7])
    assert w[13] == 0.0
    assert sum(w.values()) == pytest.approx(1.0)
    lin = CompetitionConfig(top_k=3, curve="linear")
    w = compute_weights(st, [10, 11, 12, 13], lin)
    assert [w[10], w[11], w[12], w[13]] == pytest.approx([3 / 6, 2 / 6, 1 / 6, 0.0])


def test_owner_never_competes_and_gets_everything_when_nobody_eligible() -> None:
    cfg = CompetitionConfig(burn_share=0.5, owner_uid=0)
    st = play_round(CompetitionState(), {0: 5.0, 1: 0.0, 2: 0.0}, [0, 1, 2], cfg)
    assert 0 not in st.players
    assert compute_weights(st, [0, 1, 2], cfg) == {0: 1.0, 1: 0.0, 2: 0.0}
    assert compute_weights(st, [1, 2], CompetitionConfig()) == {1: 0.0, 2: 0.0}


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        CompetitionConfig(burn_share=0.2)
    with pytest.raises(ConfigError):
        CompetitionConfig(curve="cubic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        CompetitionConfig(decay=0.0)


def _played() -> tuple[CompetitionState, CompetitionConfig]:
    cfg = CompetitionConfig(margin=0.5)
    st = CompetitionState()
    rounds = [{1: 0.1, 2: 0.3, 3: None}, {1: 0.2, 2: 0.2, 3: -1.0}, {1: 0.5, 2: 0.1, 3: 0.05}]
    for i, sc in enumerate(rounds):
        st = play_round(st, sc, [1, 2, 3], cfg, slashed={3} if i == 1 else (), hotkeys={1: "a", 2: "b", 3: "c"})
    return st, cfg


def test_json_round_trip_is_exact_and_deterministic() -> None:
    st, cfg = _played()
    text = st.to_json()
    back = CompetitionState.from_json(text)
    assert back == st
    assert back.to_json() == text
    assert _played()[0].to_json() == text  # same inputs, same bytes
    nxt_a = play_round(st, {1: 0.4, 2: 0.4, 3: 0.4}, [1, 2, 3], cfg)
    nxt_b = play_round(back, {1: 0.4, 2: 0.4, 3: 0.4}, [1, 2, 3], cfg)
    assert nxt_a.to_json() == nxt_b.to_json()
    assert compute_weights(back, [1, 2, 3], cfg) == compute_weights(st, [1, 2, 3], cfg)


def _mutate(path: list[str | int], value: object) -> str:
    doc = json.loads(_played()[0].to_json())
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        _mutate(["version"], 99),
        _mutate(["round"], -1),
        _mutate(["round"], True),
        _mutate(["leader"], 42),
        _mutate(["leader_since"], None),
        _mutate(["players"], []),
        _mutate(["players", "1", "sigma"], -1.0),
        _mutate(["players", "1", "mu"], "25"),
        _mutate(["players", "1", "recent"], [1.0, "x"]),
        _mutate(["players", "1", "rounds"], KeyError),
        _mutate(["players", "1", "hotkey"], 5),
        _mutate(["extra"], 1),
        _mutate(["players", "01"], json.loads(_played()[0].to_json())["players"]["1"]),
        '{"version":1,"round":0,"leader":null,"leader_since":null,"players":{"1":{"mu":NaN,"sigma":1,'
        '"rounds":0,"recent":[],"slashed_round":null,"hotkey":null}}}',
    ],
)
def test_malformed_state_raises(text: str) -> None:
    with pytest.raises(CompetitionStateError):
        CompetitionState.from_json(text)


def test_non_finite_score_counts_as_absent() -> None:
    cfg = CompetitionConfig()
    st = play_round(CompetitionState(), {1: float("nan"), 2: 0.1}, [1, 2], cfg)
    assert st.players[1].recent == (None,)
    assert st.players[1].mu < st.players[2].mu
