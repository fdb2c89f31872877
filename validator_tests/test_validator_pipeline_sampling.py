"""The sample stage inside the pipeline: cheap checks on everyone, the full evaluation on a draw.

In one process through `pipeline.judge` with a `SamplingPlan` (real tiny model,
real signed noise uploads, real scoring): only the drawn submissions are
evaluated, the rest are NOT_SAMPLED (no score, never aggregated) and sit the
competition round out with their ratings untouched; the history stamps who was
evaluated; the draw is fixed by (next seed, validator hotkey, window) and
differs between validators. Coverage and unpredictability of the draw itself
are tested in test_validator_sampling.py.
"""

from __future__ import annotations

import torch
from harness.pipeline_world import WINDOW, Upload, world

from subnet.validator.competition import CompetitionState, play_round
from subnet.validator.pipeline import SamplingPlan, sample
from subnet.validator.sampling import SamplingConfig
from subnet.validator.submission import Outcome

torch.set_num_threads(1)

UIDS = (1, 2, 3, 4, 5)
CFG = SamplingConfig(sample_size=2, max_gap_windows=9, max_candidates=8, rating_bins=2)


def _window():
    w = world()
    win = w.window()
    for u in UIDS:
        win.add(u, Upload(uid=u, data=w.sign(u, w.noise(100 + u, scale=0.05))))
    return w, win


def _plan(w, hotkey_uid: int = 0, history: dict[str, int] | None = None) -> SamplingPlan:
    return SamplingPlan(cfg=CFG, validator_hotkey=w.hotkey(hotkey_uid), last_evaluated=dict(history or {}),
                        ratings={})


def test_only_the_draw_is_evaluated_and_the_rest_keep_their_ratings() -> None:
    w, win = _window()
    prior = play_round(CompetitionState(), {u: 0.01 * u for u in UIDS}, list(UIDS), w.comp_cfg,
                       hotkeys={u: w.hotkey(u) for u in UIDS})
    v = win.judge(competition=prior, sampling=_plan(w))
    by = {s.uid: s for s in v.subs}
    resting = [u for u in UIDS if by[u].outcome is Outcome.NOT_SAMPLED]
    evaluated = [u for u in UIDS if u not in resting]
    assert len(evaluated) == CFG.sample_size and len(resting) == len(UIDS) - CFG.sample_size
    for u in evaluated:
        assert by[u].outcome not in (Outcome.VERIFIED, Outcome.NOT_SAMPLED), by[u]
        assert "heldout_improvement" in by[u].detail  # really evaluated
    for u in resting:
        assert by[u].score is None and not by[u].eligible and "heldout_improvement" not in by[u].detail
        assert v.standing.competition.players[u] == prior.players[u], "a round it sat out changed its rating"
        assert v.standing.norm_scores.get(u) is None
    for u in evaluated:
        assert v.standing.competition.players[u].rounds == prior.players[u].rounds + 1
    assert v.last_evaluated is not None
    assert {v.last_evaluated[w.hotkey(u)] for u in evaluated} == {WINDOW}
    assert {v.last_evaluated[w.hotkey(u)] for u in resting} == {WINDOW - 1}
    assert not any(s.uid in resting for s in v.selected(top_g=10))


def _drawn(win, plan: SamplingPlan, tied: dict[int, int] | None = None) -> frozenset[int]:
    """Who the sample stage leaves pending (pure: no evaluation runs)."""
    subs, _ = sample(win.verified(), win.snapshot(), plan, tied=tied)
    return frozenset(s.uid for s in subs if s.outcome is Outcome.VERIFIED)


def test_the_draw_is_fixed_per_validator_and_differs_across_validators() -> None:
    w, win = _window()
    first = _drawn(win, _plan(w, 0))
    assert len(first) == CFG.sample_size and _drawn(win, _plan(w, 0)) == first
    assert len({_drawn(win, _plan(w, h)) for h in range(30, 38)} | {first}) > 1, "every validator drew the same"


def test_the_stalest_miner_is_drawn() -> None:
    """One guaranteed slot: the miner evaluated longest ago is always in the draw."""
    w, win = _window()
    history = {w.hotkey(u): WINDOW - 1 for u in UIDS} | {w.hotkey(4): WINDOW - 8}
    for hk in range(40, 46):
        assert 4 in _drawn(win, _plan(w, hk, history))


def test_a_drawn_near_duplicate_brings_its_twin() -> None:
    """Ties are settled against the twin (cross-checked proof pages): both must be evaluated."""
    w, win = _window()
    plan = _plan(w, 0)
    alone = _drawn(win, plan)
    inside = min(alone)
    outside = next(u for u in UIDS if u not in alone)
    both = _drawn(win, plan, tied={inside: outside, outside: inside})
    assert {inside, outside} <= both and len(both) == CFG.sample_size + 1
