"""The partial-copy rule (subnet/validator/copydetect.py): own work + a fraction of a peer's update is charged.

Real parts: the tiny model after a short pre-training, the miner's real inner
loop on each miner's assigned pages, the real SparseLoCo codec (each update is
encoded and decoded to its sparse view, as the validator sees it). The margin
the threshold leaves is measured over honest pairs here, not assumed.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from harness.pipeline_world import Upload, world

from subnet.codec import decode
from subnet.codec.sparseloco import decode_sparse
from subnet.errors import ConfigError
from subnet.validator.copydetect import (
    PARTIAL_MIN_INDEX,
    PARTIAL_SHARE,
    Submission,
    Support,
    judge_copies,
    judge_copies_all_pairs,
    overlap_stats,
    support_of,
)
from subnet.validator.submission import Outcome

torch.set_num_threads(1)

HONEST_UIDS = (1, 2, 3, 4, 5, 6)
THIEF = 10


def _support(update: dict[str, torch.Tensor]) -> Support:
    return support_of(list(decode_sparse(world().encode(update))))


def _mixed(own: dict[str, torch.Tensor], stolen: dict[str, torch.Tensor], f: float,
           own_scale: float = 1.0) -> dict[str, torch.Tensor]:
    return {n: own_scale * own[n] + f * stolen[n] for n in own}


def _sub(uid: int, update: Support, t: float) -> Submission:
    return Submission(uid=uid, hotkey=f"hk{uid}", fragment=0, first_seen=t, seen_after=t - 1.0, commit_block=1,
                      update=update)


@pytest.fixture(scope="module")
def honest() -> dict[int, Support]:
    w = world()
    return {u: _support(w.honest(u)) for u in HONEST_UIDS}


def test_honest_pairs_of_one_fragment_stay_well_under_the_share_threshold(honest) -> None:
    """Measured margin: every honest pair's share is under 0.15 (threshold 0.25; bench/league.py reports it too)."""
    shares = [overlap_stats(honest[a], honest[b]).share for a, b in itertools.permutations(HONEST_UIDS, 2)]
    assert max(shares) < 0.6 * PARTIAL_SHARE, max(shares)
    assert min(shares) > 0  # the common descent direction is there: the measurement is not vacuous
    subs = [_sub(u, honest[u], 1000.0 + 10 * i) for i, u in enumerate(HONEST_UIDS)]  # disjoint: all ordered
    v = judge_copies(subs, key=7)
    assert v.charged == {} and v.tied == {}


@pytest.mark.parametrize("f", [0.2, 0.5, 1.0])
def test_own_work_plus_a_fraction_of_an_earlier_peer_is_charged_to_the_later(honest, f: float) -> None:
    w = world()
    stolen = decode(w.encode(w.honest(1)))
    mix = _support(_mixed(w.honest(THIEF), stolen, f))
    o = overlap_stats(honest[1], mix)
    assert o.share >= PARTIAL_SHARE and o.index >= PARTIAL_MIN_INDEX, o
    subs = [_sub(1, honest[1], 1000.0), _sub(2, honest[2], 1000.0), _sub(THIEF, mix, 1010.0)]
    for key in range(3):
        assert judge_copies(subs, key=key).charged == {THIEF: 1}
    assert judge_copies_all_pairs(subs).charged == {THIEF: 1}
    # the rule switched off: below the similarity threshold only at the partial fractions
    off = judge_copies(subs, key=0, partial_share=None).charged
    assert off == ({THIEF: 1} if o.similarity >= 0.5 else {}), (o.similarity, off)


def test_overlapping_intervals_tie_instead_of_charging(honest) -> None:
    """The attribution rules are kept: order unknown -> both evaluated (a tie), never a charge."""
    w = world()
    mix = _support(_mixed(w.honest(THIEF), decode(w.encode(w.honest(1))), 0.5))
    v = judge_copies([_sub(1, honest[1], 1000.0), _sub(THIEF, mix, 1000.5)], key=1)
    assert v.charged == {} and v.tied == {1: THIEF, THIEF: 1}


def test_a_tiny_early_upload_cannot_get_honest_later_uploads_charged(honest) -> None:
    """beta = <l, e>/<e, e> grows as e shrinks; the share does not, so own work x 0.1 uploaded first frames no one."""
    w = world()
    tiny = _support({n: 0.1 * t for n, t in w.honest(THIEF).items()})
    subs = [_sub(THIEF, tiny, 900.0), *[_sub(u, honest[u], 1000.0 + i) for i, u in enumerate(HONEST_UIDS)]]
    assert judge_copies(subs, key=3).charged == {}
    betas = [overlap_stats(tiny, honest[u]).beta for u in HONEST_UIDS]
    assert max(betas) > PARTIAL_SHARE  # beta alone would have charged an honest miner: why the share is used


def test_the_share_threshold_is_checked() -> None:
    with pytest.raises(ConfigError):
        judge_copies([], partial_share=1.5)


def test_through_the_pipeline_the_partial_copier_is_slashed_and_the_victim_leads() -> None:
    w = world()
    victim = w.sign(1, w.honest(1))
    mix = _mixed(w.honest(THIEF), decode(w.encode(w.honest(1))), 0.3)
    win = w.window()
    win.add(1, Upload(uid=1, data=victim, first_seen=1000.0, seen_after=990.0))
    win.add(2, Upload(uid=2, data=w.sign(2, w.honest(2)), first_seen=1000.0, seen_after=990.0))
    win.add(THIEF, Upload(uid=THIEF, data=w.sign(THIEF, mix), first_seen=1010.0, seen_after=1005.0))
    v = win.judge(pow_evidence=win.proven())  # all banked: the sequential proof of work gates no one
    by = {s.uid: s for s in v.subs}
    assert by[THIEF].outcome is Outcome.COPY and THIEF in v.slashed, by[THIEF].reason
    assert by[1].outcome is Outcome.SCORED and by[2].outcome is Outcome.SCORED
    assert v.standing.weights.get(THIEF, 0.0) == 0.0 < v.standing.weights[1]
