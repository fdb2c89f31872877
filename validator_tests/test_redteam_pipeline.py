"""Red-team findings against the validator's pipeline, each an attack a hostile miner can mount today.

Every test states what the validator *should* do; a finding not yet fixed is
marked `xfail(strict=True)` (then the marker must go). All three are fixed.
They run on the in-process world of harness/pipeline_world.py: the real tiny
model, the miner's real inner loop, the real codec and real sr25519
signatures; the attacker's updates are built only from what a miner can know
when it trains (its peers' published artifacts, the window's seed, everyone's
assignment).
"""

from __future__ import annotations

import math

import pytest
import torch
from harness.pipeline_world import Upload, world

from subnet.codec import decode, read_artifact
from subnet.protocol.assignment import random_pages
from subnet.validator.copydetect import overlap
from subnet.validator.pipeline import CONTROL_UID
from subnet.validator.scoring import loss_and_grad, page_batches
from subnet.validator.submission import Outcome

torch.set_num_threads(1)

VICTIM, THIEF, LAZY = 1, 10, 3
PROOF_PAGES = 8  # NETWORK_SCORE: n_assigned_batches (2) x pow_batch_size (4), taken from the assignment's start


@pytest.mark.parametrize("pad_all", [False, True], ids=["pad-first-8", "pad-whole-assignment"])
@pytest.mark.parametrize("seen_after", [995.0, None], ids=["fast-copier", "store-never-says-absent"])
def test_a_thief_cannot_win_a_copy_tie_by_padding_its_proof_of_work(seen_after: float | None, pad_all: bool) -> None:
    """Steal the victim's published update, add a few steps on the thief's own evaluated pages, re-sign.

    The thief's bytes are first seen after the victim's (1001 > 1000), but its
    interval overlaps the victim's: it copied before the validator's next poll
    of the victim, or its store never answered "absent" (errors until the
    copy is up, so `seen_after` is None and it can never be charged). The tie
    is settled by the proof-of-work margin, which the thief inflates with 4
    inner steps on the 8 assigned pages the validator is known to evaluate
    (the first 8 of the assignment). The victim must keep its score.
    """
    w = world()
    victim_bytes = w.sign(VICTIM, w.honest(VICTIM))
    stolen = decode(read_artifact(victim_bytes, expected_hotkey=w.hotkey(VICTIM), max_bytes=10**8,
                                  shapes=w.gm.shapes(0)).encoded)
    # since the fix the proof pages are drawn by the next seed: a thief that knows it pads its whole assignment
    pages = w.assignment(THIEF).pages
    padding = w.trained(pages if pad_all else pages[:PROOF_PAGES])
    theft = {n: stolen[n] + padding[n] for n in stolen}
    assert overlap(w.encode(stolen), w.encode(theft)) >= w.opts.copy_threshold  # it is a near-duplicate
    win = w.window()
    win.add(VICTIM, Upload(uid=VICTIM, data=victim_bytes, first_seen=1000.0, seen_after=990.0))
    win.add(THIEF, Upload(uid=THIEF, data=w.sign(THIEF, theft), first_seen=1001.0, seen_after=seen_after))
    v = win.judge(pow_evidence=win.proven())  # both banked: the sequential proof of work gates neither
    by = {s.uid: s for s in v.subs}
    # what happens today: victim COPY_TIE (0.0, no weight); thief SCORED above the victim's own score, weight 1
    assert by[VICTIM].outcome is Outcome.SCORED, by[VICTIM].reason
    assert v.standing.weights.get(VICTIM, 0.0) > v.standing.weights.get(THIEF, 0.0)


def test_proof_of_work_cannot_be_passed_by_ascending_on_the_known_control_pages() -> None:
    """A miner that trained on pages it was not assigned passes proof of work by hurting the control pages.

    The control pages are `random_pages(seed, CONTROL_UID, ..., exclude=every
    assignment)`: the window's own seed and the assignments, all known when
    miners train. Subtracting a small step along the gradient of the control
    loss (one backward pass) drives the control improvement negative, so the
    assigned-page improvement of unrelated work "beats" it; held-out loss,
    which the score measures, still improves. Without the ascent step the same
    work is NO_PROOF_OF_WORK (asserted, so the test shows the bypass itself).
    """
    w = world()
    lazy = w.trained(tuple(range(7000, 7064)))  # real work, but not on its assignment
    honest = w.sign(VICTIM, w.honest(VICTIM))

    def judged(update: dict[str, torch.Tensor]):  # noqa: ANN202 - pipeline.Verdict
        win = w.window()
        win.add(VICTIM, Upload(uid=VICTIM, data=honest))
        win.add(LAZY, Upload(uid=LAZY, data=w.sign(LAZY, update)))
        v = win.judge()
        return {s.uid: s for s in v.subs}[LAZY], v, win

    plain, _, win = judged(lazy)
    assert plain.outcome is Outcome.NO_PROOF_OF_WORK, plain.reason
    # what a miner can compute while it trains: the window's seed and everyone's assignment (the control set
    # the validator drew from them before the fix; it now draws from the next window's seed)
    snap, cfg = win.snapshot(), w.score_cfg
    assigned = {pg for a in snap.assignments.values() for pg in a.pages}
    # (NETWORK_SCORE has no random control batches any more, n_random_batches=0: the held-out pages of the next
    # window's seed are the control; the attack still ascends on the one batch it could have known)
    n_batches = max(1, cfg.n_random_batches)
    knowable = random_pages(snap.seed, CONTROL_UID, w.params, cfg.pow_batch_size * n_batches, exclude=assigned)
    control = page_batches(w.pages, knowable, "train", cfg.pow_batch_size, n_batches)
    _, grad = loss_and_grad(w.gm.model, control)
    names = set(w.gm.shapes(0))
    gnorm = math.sqrt(sum(float((grad[n].double() ** 2).sum()) for n in names))
    bypass = {n: lazy[n] - 0.02 * grad[n] / gnorm for n in names}
    s, v, _ = judged(bypass)
    # what happens today: SCORED (held-out improvement ~1.1e-3 over the floor) and a third of the weight
    assert s.outcome is not Outcome.SCORED and v.standing.weights.get(LAZY, 0.0) == 0.0, (s.outcome, s.reason)


def test_a_partial_copy_mixed_into_own_work_is_caught() -> None:
    """Own honest work plus half of an earlier peer's published update (seen strictly later: no tie).

    Similarity is index overlap x value cosine; the mixture's is ~0.45
    against the 0.5 threshold (two honest miners: ~0.08), so it passed as
    original work: the thief's score rose from 3.6e-3 (its own work alone)
    to 4.9e-3 (+38%) and the victim's cohort-normalised score fell from 0.89
    to 0.73, for one read of a public file. Fixed by the partial-copy fit
    (copydetect: the share of the mixture explained by the victim's update is
    ~0.54 >= 0.25; honest pairs <= 0.10).
    """
    w = world()
    victim_bytes = w.sign(VICTIM, w.honest(VICTIM))
    stolen = decode(read_artifact(victim_bytes, expected_hotkey=w.hotkey(VICTIM), max_bytes=10**8,
                                  shapes=w.gm.shapes(0)).encoded)
    own = w.honest(THIEF)
    mix = {n: own[n] + 0.5 * stolen[n] for n in own}
    win = w.window()
    win.add(VICTIM, Upload(uid=VICTIM, data=victim_bytes, first_seen=1000.0, seen_after=990.0))
    win.add(THIEF, Upload(uid=THIEF, data=w.sign(THIEF, mix), first_seen=1010.0, seen_after=1005.0))
    by = {s.uid: s for s in win.judge(pow_evidence=win.proven()).subs}  # both banked: no proof-of-work gate
    assert by[VICTIM].outcome is Outcome.SCORED, by[VICTIM].reason
    assert by[THIEF].outcome is Outcome.COPY, (by[THIEF].outcome, by[THIEF].reason)
    assert by[THIEF].reason == f"copy of uid {VICTIM}"
