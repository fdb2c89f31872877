"""Unpaid aggregation: an update that passed every gate and measures within noise of zero is averaged in, unpaid.

Pure rules (pipeline.heldout_se, within_noise, unpaid_aggregation) with
hypothesis, then the pipeline end to end in one process (harness/pipeline_world:
a real tiny model, the miner's real training, the real codec and signatures).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from harness.pipeline_world import Upload, world
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.codec.sparseloco import SparseTensor
from subnet.errors import ConfigError
from subnet.node.config import ValidatorOptions
from subnet.validator.pipeline import UNPAID, heldout_se, unpaid_aggregation, within_noise
from subnet.validator.submission import Outcome, Submission

torch.set_num_threads(1)

pages_st = st.lists(st.floats(-1e-2, 1e-2, allow_nan=False), min_size=2, max_size=16)


@given(pages=pages_st, z=st.floats(0.0, 5.0), c=st.floats(1e-3, 1e3))
@settings(max_examples=300, deadline=None)
def test_the_rule_is_scale_free_and_positive_scores_always_qualify(pages, z, c) -> None:
    """Scaling every page's improvement (loss level, lr, fragment size) by c > 0 never changes the decision."""
    score = sum(pages) / len(pages)
    se = heldout_se(pages)
    scaled = [p * c for p in pages]
    assert within_noise(score, se, z) == within_noise(score * c, heldout_se(scaled), z) or math.isclose(
        score, -z * (se or 0.0), rel_tol=1e-9, abs_tol=1e-15)
    if score > 0:
        assert within_noise(score, se, z)
    if z == 0:
        assert within_noise(score, se, z) == (score > 0)


@given(pages=pages_st, z1=st.floats(0.0, 5.0), z2=st.floats(0.0, 5.0))
@settings(max_examples=200, deadline=None)
def test_a_larger_z_admits_at_least_as_much(pages, z1, z2) -> None:
    lo, hi = sorted((z1, z2))
    score, se = sum(pages) / len(pages), heldout_se(pages)
    assert not within_noise(score, se, lo) or within_noise(score, se, hi)


def test_what_never_qualifies() -> None:
    assert heldout_se([0.1]) is None and heldout_se([0.1, math.nan]) is None
    for score in (None, math.nan, math.inf, -math.inf):
        assert not within_noise(score, 1.0, 3.0)
    assert not within_noise(-1e-9, None, 3.0)  # no standard error: nothing below zero
    assert not within_noise(-0.3, 0.1, 2.0) and within_noise(-0.19, 0.1, 2.0)
    with pytest.raises(ConfigError):
        ValidatorOptions(aggregate_z=-1.0)
    with pytest.raises(ConfigError):
        ValidatorOptions(aggregate_z=math.inf)


def _sub(uid: int, outcome: Outcome, score: float, *, norm: float = 1.0, se: float | None = 0.01,
         raw: float | None = None, t: float | None = 2.0) -> Submission:
    sparse = (SparseTensor(name="w", shape=(4,), index=torch.tensor([0]), values=torch.tensor([norm])),)
    detail = {"norm": norm, "heldout_se": se, "pow_t": t, **({"raw_score": raw} if raw is not None else {})}
    return Submission(uid=uid, hotkey=f"hk{uid}", fragment=0, outcome=outcome, reason=outcome.value, score=score,
                      detail=detail, sparse=sparse)


@given(score=st.floats(-0.1, 0.1), se=st.one_of(st.none(), st.floats(0.0, 0.05)), norm=st.floats(1e-3, 1e3),
       z=st.floats(0.0, 4.0), outcome=st.sampled_from(list(Outcome)),
       t=st.one_of(st.none(), st.floats(-5, 5), st.just(math.nan)))
@settings(max_examples=300, deadline=None)
def test_the_stage_never_changes_an_outcome_or_a_score_and_keeps_only_what_it_may(score, se, norm, z,
                                                                                   outcome, t) -> None:
    s = _sub(1, outcome, score, norm=norm, se=se, t=t)
    (out,) = unpaid_aggregation([s], z, {0: 1.0}, 4.0)
    assert (out.outcome, out.score, out.reason) == (s.outcome, s.score, s.reason)
    if outcome not in UNPAID:
        assert out == s  # paid, refused or charged: not this stage's business
        return
    kept = out.sparse is not None
    assert kept == out.aggregable == bool(out.detail.get("aggregated_unpaid"))
    worked = t is not None and math.isfinite(t) and t > 0
    assert kept == (z > 0 and worked and 0.25 <= norm <= 4.0 and within_noise(score, se, z))


@given(own=st.floats(1e-4, 1e-1), others=st.lists(st.floats(1e-4, 1e-2), min_size=2, max_size=8),
       score=st.floats(-0.2, 0.0))
@settings(max_examples=200, deadline=None)
def test_an_upload_cannot_widen_its_own_allowance(own, others, score) -> None:
    """Red-team finding: a harmful update's own per-page spread grows with its harm; the yardstick is the smaller
    of its own SE and the cohort's lower median, so inflating its own spread admits nothing more."""
    cohort = [_sub(10 + i, Outcome.SCORED, 1e-3, se=v) for i, v in enumerate(others)]
    (out,) = [s for s in unpaid_aggregation([*cohort, _sub(1, Outcome.NO_IMPROVEMENT, score, se=own)], 3.0,
                                            {0: 1.0}, 4.0) if s.uid == 1]
    lower = sorted([*others, own])[(len(others)) // 2]
    assert out.aggregable == (score > -3.0 * min(own, lower))
    assert not out.aggregable or score > -3.0 * sorted([*others, own])[len(others) // 2]


def test_this_window_must_show_work_banked_evidence_is_not_enough() -> None:
    """Red-team finding: with the account at its cap, a free window (t <= 0) of noise still pays the bar; it may
    be paid late, but it is not averaged in."""
    subs = [_sub(1, Outcome.NO_IMPROVEMENT, -1e-4, t=0.0), _sub(2, Outcome.NO_IMPROVEMENT, -1e-4, t=-1.0),
            _sub(3, Outcome.NO_IMPROVEMENT, -1e-4, t=None), _sub(4, Outcome.NO_IMPROVEMENT, -1e-4, t=0.5)]
    assert [s.aggregable for s in unpaid_aggregation(subs, 3.0, {0: 1.0}, 4.0)] == [False, False, False, True]


def test_no_reference_norm_or_a_norm_far_from_it_keeps_nothing_unpaid() -> None:
    subs = [_sub(1, Outcome.NO_IMPROVEMENT, -1e-4), _sub(2, Outcome.BELOW_FLOOR, 0.0, raw=5e-4),
            _sub(3, Outcome.NO_IMPROVEMENT, -1e-4, norm=0.01), _sub(4, Outcome.NO_IMPROVEMENT, -1e-4, norm=100.0)]
    assert not any(s.aggregable for s in unpaid_aggregation(subs, 1.0, {}, 4.0))  # cold: no reference yet
    by = {s.uid: s for s in unpaid_aggregation(subs, 1.0, {0: 1.0}, 4.0)}
    assert by[1].aggregable and by[2].aggregable  # within noise; below the floor but positive
    assert not by[3].aggregable and not by[4].aggregable  # tiny (would dilute the mean) or huge
    assert not any(s.aggregable for s in unpaid_aggregation(subs, 0.0, {0: 1.0}, 4.0))  # z = 0: paid only


def _at_norm(update: dict[str, torch.Tensor], norm: float) -> dict[str, torch.Tensor]:
    now = math.sqrt(sum(float((t.double() ** 2).sum()) for t in update.values()))
    return {n: t * (norm / now) for n, t in update.items()}


@pytest.fixture(scope="module")
def judged():
    """Three honest updates, one buried in loud noise, quiet noise, a negated one: miners with proven work."""
    w = world()
    old, w.opts = w.opts, dataclasses.replace(w.opts, aggregate_z=2.0)
    try:
        win = w.window()
        for uid in (1, 2, 3):
            win.add(uid, Upload(uid=uid, data=w.sign(uid, w.honest(uid))))
        honest4 = w.honest(4)
        norm = math.sqrt(sum(float((t.double() ** 2).sum()) for t in honest4.values()))
        loud = _at_norm(w.noise(4), 3.5 * norm)  # its own work plus loud noise: fits its pages, hurts the rest
        win.add(4, Upload(uid=4, data=w.sign(4, {n: t + loud[n] for n, t in honest4.items()})))
        win.add(5, Upload(uid=5, data=w.sign(5, _at_norm(w.noise(5), 0.5 * norm))))
        win.add(6, Upload(uid=6, data=w.sign(6, {n: -t for n, t in w.honest(6).items()})))
        yield win.judge(pow_evidence=win.proven())
    finally:
        w.opts = old


def test_the_pipeline_aggregates_paid_first_then_unpaid_within_noise(judged) -> None:
    by = {s.uid: s for s in judged.subs}
    assert all(by[u].eligible for u in (1, 2, 3))
    # quiet noise from a miner with banked evidence and this window's t > 0: below the floor, unpaid, within
    # noise: averaged in (the known cost of the rule: at most the dilution of one more entry in the mean)
    assert by[5].detail["pow_t"] > 0
    assert by[5].outcome is Outcome.BELOW_FLOOR and by[5].aggregable and by[5].detail["aggregated_unpaid"]
    # loud noise on top of real work: unpaid and its norm far from the fragment's reference: not aggregated
    assert by[4].outcome in UNPAID and not by[4].aggregable and by[4].sparse is None
    # the negated work fails the running proof of work: held, never aggregated
    assert by[6].outcome is Outcome.NO_PROOF_OF_WORK and not by[6].aggregable and by[6].sparse is None
    chosen = judged.selected(top_g=8)
    assert [s.uid for s in chosen][-1] == 5 and {s.uid for s in chosen} == {1, 2, 3, 5}  # paid ones rank first
    assert [s.uid for s in judged.selected(top_g=3)] == [s.uid for s in chosen[:3]]
    for s in judged.subs:
        assert (s.sparse is not None) == s.aggregable, (s.uid, s.outcome)
    assert (judged.standing.norm_scores.get(5) or 0.0) <= 0.0  # unpaid means unpaid


def test_the_lead_clips_to_the_median_of_paid_norms_so_unpaid_updates_cannot_raise_it() -> None:
    """Red-team finding: unpaid updates up to 4x the reference would otherwise lift the clipping median."""
    from subnet.sync.aggregate import robust_coefficients

    deltas = [{"w": torch.full((4,), v)} for v in (1.0, 1.0, 3.0, 3.0, 3.0)]
    everyone = robust_coefficients(deltas)
    paid_only = robust_coefficients(deltas, paid=[True, True, False, False, False])
    assert everyone.median_norm == pytest.approx(6.0) and paid_only.median_norm == pytest.approx(2.0)
    assert paid_only.coefs[2] == pytest.approx((1 / 3) / 5)  # clipped to the paid median, still 1/n
    assert robust_coefficients(deltas, paid=[False] * 5).median_norm == everyone.median_norm  # none paid: all
    with pytest.raises(ValueError):
        robust_coefficients(deltas, paid=[True])


def _vec(uid: int, outcome: Outcome, score: float, values: list[float], **kw) -> Submission:
    s = _sub(uid, outcome, score, **kw)
    vals = torch.tensor(values, dtype=torch.float32)
    norm = float(vals.double().norm())
    sparse = (SparseTensor(name="w", shape=(len(values),), index=torch.arange(len(values)), values=vals),)
    return dataclasses.replace(s, sparse=sparse, detail={**s.detail, "norm": norm})


def test_an_update_that_cancels_a_peer_is_not_averaged_in() -> None:
    """Red-team finding: own work minus a peer's decoded upload is no copy and measures just below zero."""
    victim = _vec(1, Outcome.SCORED, 2e-3, [1.0, 2.0, 0.0, -1.0])
    anti = _vec(2, Outcome.NO_IMPROVEMENT, -1e-4, [-1.0, -2.0, 0.5, 1.0])
    honest = _vec(3, Outcome.NO_IMPROVEMENT, -1e-4, [0.5, 0.0, 2.0, 0.3])
    by = {s.uid: s for s in unpaid_aggregation([victim, anti, honest], 3.0, {0: 2.0}, 4.0)}
    assert not by[2].aggregable and by[2].detail["cancels_uid"] == 1 and by[2].sparse is None
    assert by[3].aggregable and "cancels_uid" not in by[3].detail


def test_scaled_up_paid_uploads_cannot_push_honest_unpaid_ones_out() -> None:
    """Red-team finding: the reference is score-weighted, so scaled-up paid uploads lift it; the lower bound is
    taken from the smaller of the reference and this window's median paid norm."""
    paid = [_sub(10 + i, Outcome.SCORED, 1e-3, norm=1.0) for i in range(3)]
    honest = _sub(1, Outcome.NO_IMPROVEMENT, -1e-4, norm=0.5)
    (out,) = [s for s in unpaid_aggregation([*paid, honest], 3.0, {0: 6.0}, 4.0) if s.uid == 1]
    assert out.aggregable  # 0.5 < 6 / 4, but >= min(6, 1) / 4
    (alone,) = unpaid_aggregation([honest], 3.0, {0: 6.0}, 4.0)
    assert not alone.aggregable  # no paid update this window: the reference decides
