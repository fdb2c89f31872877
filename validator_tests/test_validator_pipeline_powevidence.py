"""Sequential proof of work through the pipeline, in one process (real tiny model, real training and signatures).

`judge(..., pow_evidence=accounts, pow_credits=credits)` with the network's
`ScoreConfig` (`pow_sequential` on) pays a miner only while its running
evidence clears the bar: an honest miner whose first window falls short of the
bar (the cold start) is held, then paid at its next window, and the held
window is credited late (the deferred credit, up to ``pow_credits`` held
windows per hotkey); a wrong-pages trainer and a
noise miner are never paid, however many windows they try; the accounts and
credits the verdict returns are what the loop persists in ValidatorState.
"""

from __future__ import annotations

import dataclasses

import torch
from harness.pipeline_world import Upload, world

from subnet.validator.competition import CompetitionState
from subnet.validator.pipeline import judge, prepare_eval
from subnet.validator.powevidence import Credits, HeldCredit
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
    cfg = w.score_cfg
    assert cfg.pow_sequential  # the network default
    ctx = prepare_eval(w.gm, w.pages, snap, cfg, w.params)
    accounts: dict[str, float] = {"not-registered-any-more": 5.0}
    credits: dict[str, Credits] = {"gone-too": (HeldCredit(uid=40, round=1, score=1.0),)}
    comp = CompetitionState()
    for window in range(3):  # the same uploads judged window after window: accounts, credits and rounds carry over
        verdict = judge(win.verified(), snap, ctx, ref_norms={}, competition=comp, opts=w.opts,
                        comp_cfg=w.comp_cfg, pow_evidence=accounts, pow_credits=credits)
        by = {s.uid: s for s in verdict.subs}
        t = by[HONEST].detail["pow_t"]
        if window == 0:  # this honest update's t (~4.4 on A8 H8 R0) is short of drift + bar = 4.5: held
            assert cfg.pow_drift < t < cfg.pow_drift + cfg.pow_bar, t
            assert by[HONEST].outcome is Outcome.NO_PROOF_OF_WORK and by[HONEST].score == 0.0
            assert verdict.pow_credits is not None and w.hotkey(HONEST) in verdict.pow_credits
            assert verdict.standing.weights.get(HONEST, 0.0) == 0.0
        else:
            assert by[HONEST].outcome is Outcome.SCORED, by[HONEST].reason
            assert by[HONEST].detail["pow_evidence"] >= cfg.pow_bar
        if window == 1:  # paid now, and the held first window is credited late: both rounds read the pay
            assert [c.uid for c in verdict.standing.released] == [HONEST]
            recent = verdict.standing.competition.players[HONEST].recent
            assert len(recent) == 2 and recent[0] is not None and recent[0] > 0 and recent[1] > 0, recent
            assert verdict.standing.weights[HONEST] > 0
        for uid in (WRONG_PAGES, NOISE):
            assert by[uid].outcome is Outcome.NO_PROOF_OF_WORK, (uid, by[uid].reason, by[uid].detail.get("pow_t"))
            assert by[uid].score is not None and by[uid].score <= 0.0
            assert verdict.standing.weights.get(uid, 0.0) == 0.0
        assert verdict.pow_evidence is not None and verdict.pow_credits is not None
        held = {c.uid for cs in verdict.pow_credits.values() for c in cs}  # held with a positive score (not noise)
        assert held == ({HONEST, WRONG_PAGES} if window == 0 else {WRONG_PAGES}), held
        wrong = verdict.pow_credits[w.hotkey(WRONG_PAGES)]  # one more held round a window, the newest 2 kept
        assert [c.round for c in wrong] == list(range(max(1, window), window + 2)), wrong
        accounts, credits, comp = verdict.pow_evidence, verdict.pow_credits, verdict.standing.competition
    assert "not-registered-any-more" not in accounts and "gone-too" not in credits  # pruned with the peer list
    assert accounts[w.hotkey(HONEST)] >= cfg.pow_bar
    assert accounts[w.hotkey(WRONG_PAGES)] < cfg.pow_bar and accounts[w.hotkey(NOISE)] < cfg.pow_bar
    assert all(s is not None and s <= 0 for s in comp.players[WRONG_PAGES].recent)  # never paid, not even late


def test_with_the_rule_off_the_verdict_carries_no_accounts() -> None:
    w = world()
    win = w.window()
    win.add(HONEST, Upload(uid=HONEST, data=w.sign(HONEST, w.honest(HONEST))))
    assert win.judge().pow_evidence is not None  # on by default: accounts start empty without any passed in
    snap = win.snapshot()
    off = dataclasses.replace(w.score_cfg, pow_sequential=False)
    v = judge(win.verified(), snap, prepare_eval(w.gm, w.pages, snap, off, w.params), ref_norms={},
              competition=CompetitionState(), opts=w.opts, comp_cfg=w.comp_cfg, pow_evidence={"x": 1.0})
    assert v.pow_evidence is None and v.pow_credits is None
