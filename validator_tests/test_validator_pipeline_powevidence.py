"""Sequential proof of work through the pipeline, in one process (real tiny model, real training and signatures).

`judge(..., pow_evidence=accounts)` with `ScoreConfig.pow_sequential` pays a
miner only while its running evidence clears the bar: an honest miner is paid
from its first window on and keeps being paid; a wrong-pages trainer and a
noise miner are never paid, however many windows they try; the accounts the
verdict returns are what the loop persists in ValidatorState.
"""

from __future__ import annotations

import dataclasses

import torch
from harness.pipeline_world import Upload, world

from subnet.validator.competition import CompetitionState
from subnet.validator.pipeline import judge, prepare_eval
from subnet.validator.submission import Outcome

torch.set_num_threads(1)

HONEST, WRONG_PAGES, NOISE = 1, 3, 6


def test_honest_is_paid_and_free_riders_never_are_over_windows() -> None:
    w = world()
    win = w.window()
    win.add(HONEST, Upload(uid=HONEST, data=w.sign(HONEST, w.honest(HONEST))))
    win.add(WRONG_PAGES, Upload(uid=WRONG_PAGES, data=w.sign(WRONG_PAGES, w.trained(tuple(range(7000, 7064))))))
    win.add(NOISE, Upload(uid=NOISE, data=w.sign(NOISE, w.noise(NOISE))))
    snap = win.snapshot()
    cfg = dataclasses.replace(w.score_cfg, pow_sequential=True)
    ctx = prepare_eval(w.gm, w.pages, snap, cfg, w.params)
    accounts: dict[str, float] = {"not-registered-any-more": 5.0}
    for _ in range(3):  # the same uploads judged window after window: the accounts carry over
        verdict = judge(win.verified(), snap, ctx, ref_norms={}, competition=CompetitionState(), opts=w.opts,
                        comp_cfg=w.comp_cfg, pow_evidence=accounts)
        by = {s.uid: s for s in verdict.subs}
        assert by[HONEST].outcome is Outcome.SCORED, by[HONEST].reason
        assert by[HONEST].detail["pow_evidence"] >= cfg.pow_bar
        for uid in (WRONG_PAGES, NOISE):
            assert by[uid].outcome is Outcome.NO_PROOF_OF_WORK, (uid, by[uid].reason, by[uid].detail.get("pow_t"))
            assert by[uid].score is not None and by[uid].score <= 0.0
        assert verdict.pow_evidence is not None
        accounts = verdict.pow_evidence
    assert "not-registered-any-more" not in accounts  # pruned with the peer list
    assert accounts[w.hotkey(HONEST)] >= cfg.pow_bar
    assert accounts[w.hotkey(WRONG_PAGES)] < cfg.pow_bar and accounts[w.hotkey(NOISE)] < cfg.pow_bar


def test_without_accounts_the_verdict_carries_none() -> None:
    w = world()
    win = w.window()
    win.add(HONEST, Upload(uid=HONEST, data=w.sign(HONEST, w.honest(HONEST))))
    assert win.judge().pow_evidence is None
