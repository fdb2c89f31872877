"""The pipeline's evaluation with the prefix cache (prepare_eval records each fragment's first layer) scores
every submission exactly as full forwards do (subnet/validator/prefix_cache.py)."""

from __future__ import annotations

import dataclasses

from harness.pipeline_world import Upload, World

from subnet.validator.pipeline import evaluate
from subnet.validator.prefix_cache import PrefixCacheConfig
from subnet.validator.scoring import compute_baseline
from subnet.validator.submission import Outcome


def test_prepare_eval_caches_fragment_starts_and_evaluate_scores_as_full_forwards() -> None:
    w = World(n_fragments=2)
    win = w.window()
    for uid, frag in ((3, 0), (4, 1), (5, 1)):
        update = w.honest(uid, fragment=frag) if uid != 5 else w.noise(seed=5, fragment=frag)
        win.add(uid, Upload(uid=uid, data=w.sign(uid, update, fragment=frag)), fragment=frag)
    snap = win.snapshot()
    ctx = w.ctx(snap)
    assert ctx.baseline.prefix is not None
    assert set(ctx.baseline.prefix.heldout.inputs) == {w.gm.fragments[1].layers[0]}  # fragment 0 needs none
    subs = win.verified()
    full = dataclasses.replace(ctx, baseline=compute_baseline(ctx.model, ctx.heldout, ctx.control,
                                                               prefix=PrefixCacheConfig(enabled=False)))
    assert full.baseline.prefix is None
    got = evaluate(subs, snap.assignments, ctx)
    want = evaluate(subs, snap.assignments, full)
    # repr: the detail holds NaN (no random pages), which == would call unequal
    assert [repr((s.uid, s.outcome, s.score, s.detail)) for s in got] == [
        repr((s.uid, s.outcome, s.score, s.detail)) for s in want]
    by_uid = {s.uid: s for s in got}
    assert by_uid[4].fragment == 1 and by_uid[4].outcome is Outcome.SCORED and by_uid[4].score > 0
