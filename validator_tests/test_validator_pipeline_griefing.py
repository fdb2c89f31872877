"""The griefing invariant (subnet/validator/pipeline.py `norm_gate`), through the whole pipeline on a real model.

Adding any number of noise, zero, tiny, scaled (past the norm limit) or
re-signed and scaled copied uploads to an honest miner's fragment cohort
changes its raw score by exactly 0 (bit-identical), never zeroes it, never
lowers its cohort-normalised score, and never ranks it below any of them;
with and without a reference norm yet (warm and cold start). Every miner
starts the window with a banked proof-of-work account (the network's
sequential rule then gates no one this window), so every griefing upload
reaches scoring.

How: one window registers two honest miners and a pool of would-be griefers
(all assigned, so the window's control pages are the same whoever uploads);
hypothesis picks which griefers upload. The pool's uploads are verified once
and each is evaluated once (the scorer memoises by the decoded update object,
which is the same object every time a pool upload is judged); the honest
uploads are evaluated afresh in every example, so their scores are measured,
not remembered.
"""

from __future__ import annotations

import pytest
import torch
from harness.pipeline_world import Upload, world
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from subnet.codec import read_artifact
from subnet.model.state import model_hash
from subnet.validator.pipeline import Verdict
from subnet.validator.scoring import score_contribution
from subnet.validator.submission import Outcome, Submission

torch.set_num_threads(1)

HONEST = (1, 2)


def _scaled(update: dict[str, torch.Tensor], k: float) -> dict[str, torch.Tensor]:
    return {n: t * k for n, t in update.items()}


def _pool(w) -> dict[int, tuple[str, bytes, float, float]]:  # noqa: ANN001 - harness World
    """uid -> (kind, signed bytes, first_seen, seen_after): every griefing upload the examples draw from."""
    honest = w.honest(1)
    stolen = read_artifact(w.sign(1, honest), expected_hotkey=w.hotkey(1), max_bytes=10**8,
                           shapes=w.gm.shapes(0)).encoded
    return {
        30: ("noise", w.sign(30, w.noise(30)), 1000.0, 990.0),  # the noise miner's plausible element scale
        31: ("noise at the honest norm", w.sign(31, w.noise(31, scale=6.0)), 1000.0, 990.0),
        32: ("noise x100", w.sign(32, w.noise(32, scale=100.0)), 1000.0, 990.0),
        33: ("zero", w.sign(33, w.zero()), 1000.0, 990.0),
        34: ("zero", w.sign(34, w.zero()), 1000.0, 990.0),
        35: ("tiny (own work x0.01)", w.sign(35, _scaled(w.honest(35), 0.01)), 1000.0, 990.0),
        36: ("tiny (own work x0.1)", w.sign(36, _scaled(w.honest(36), 0.1)), 1000.0, 990.0),
        37: ("scaled (own work x10)", w.sign(37, _scaled(w.honest(37), 10.0)), 1000.0, 990.0),
        38: ("scaled copy of uid 1 (x0.1)", w.sign(38, _scaled(honest, 0.1)), 1010.0, 1005.0),
        39: ("re-signed copy of uid 1", w.sign(39, stolen), 1010.0, 1005.0),
    }


class Setup:
    def __init__(self) -> None:
        w = self.w = world()
        self.win = w.window()
        for uid in HONEST:
            self.win.add(uid, Upload(uid=uid, data=w.sign(uid, w.honest(uid))))
        self.pool = _pool(w)
        for uid, (_, data, first, after) in self.pool.items():
            self.win.add(uid, Upload(uid=uid, data=data, first_seen=first, seen_after=after))
        self.verified = {s.uid: s for s in self.win.verified()}
        assert all(s.outcome is Outcome.VERIFIED for s in self.verified.values())
        self.ref = {0: sum(self.verified[u].norm for u in HONEST) / 2}
        self._memo: dict[int, object] = {}
        self.honest_ids = {id(self.verified[u].sparse[0]) for u in HONEST}

    def scorer(self, model, params, delta, *args):  # noqa: ANN001, ANN201 - scoring.score_contribution
        key = id(delta[0]) if delta else None
        if key is None or key in self.honest_ids:
            return score_contribution(model, params, delta, *args)
        if key not in self._memo:
            self._memo[key] = score_contribution(model, params, delta, *args)
        return self._memo[key]

    def judge(self, uploading: set[int], warm: bool) -> Verdict:
        subs: list[Submission] = []
        for uid, s in self.verified.items():
            if uid in HONEST or uid in uploading:
                subs.append(s)
            else:  # registered, assigned, uploaded nothing
                subs.append(Submission(uid=uid, hotkey=s.hotkey, fragment=s.fragment, commit_block=s.commit_block))
        # every miner banked (pow_evidence at the cap): the sequential proof of work gates no one, so the
        # griefers' uploads reach scoring, the strongest case for the invariant
        return self.win.judge(subs=subs, ref_norms=self.ref if warm else {}, scorer=self.scorer,
                              pow_evidence=self.win.proven())


@pytest.fixture(scope="module")
def setup() -> Setup:
    return Setup()


@pytest.fixture(scope="module")
def alone(setup: Setup) -> dict[bool, Verdict]:
    """The honest miners with nobody else uploading (warm and cold)."""
    return {warm: setup.judge(set(), warm) for warm in (True, False)}


def _check(setup: Setup, alone: Verdict, v: Verdict) -> None:
    before = {s.uid: s for s in alone.subs}
    after = {s.uid: s for s in v.subs}
    norm0, norm = alone.standing.norm_scores, v.standing.norm_scores
    for uid in HONEST:
        assert before[uid].outcome is Outcome.SCORED, before[uid].reason
        assert after[uid].outcome is Outcome.SCORED, (uid, after[uid].reason)
        assert after[uid].score == before[uid].score  # bit-identical: the stated bound is 0
        assert norm[uid] >= norm0[uid]
        for other in setup.pool:
            assert norm[uid] > (norm[other] or 0.0), (uid, other, setup.pool[other][0], after[other].reason)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(uploading=st.sets(st.sampled_from(range(30, 40)), min_size=1), warm=st.booleans())
@example(uploading=set(range(30, 40)), warm=True)
@example(uploading=set(range(30, 40)), warm=False)
def test_griefing_uploads_never_move_an_honest_score(setup: Setup, alone: dict[bool, Verdict],
                                                     uploading: set[int], warm: bool) -> None:
    _check(setup, alone[warm], setup.judge(uploading, warm))


def test_the_pool_is_what_it_says_and_scoring_left_the_model_alone(setup: Setup, alone: dict[bool, Verdict]) -> None:
    before = model_hash(setup.w.gm.model)
    v = setup.judge(set(setup.pool), warm=True)
    by = {s.uid: s for s in v.subs}
    assert by[38].outcome is Outcome.COPY and by[39].outcome is Outcome.COPY
    assert by[37].outcome is Outcome.NORM_OUTLIER and by[32].outcome is Outcome.NORM_OUTLIER
    assert by[33].outcome is Outcome.EMPTY and by[35].outcome is Outcome.BELOW_FLOOR
    assert all((s.score or 0.0) <= 0.0 for u, s in by.items() if u in setup.pool)
    assert model_hash(setup.w.gm.model) == before


@pytest.mark.parametrize("kind", ["lazy", "tiny"])
@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_an_honest_miner_beside_lazy_or_tiny_miners_is_never_zeroed_or_ranked_below_them(
        kind: str, k: int, warm: bool) -> None:
    """The issue's case: one honest miner and 1, 2 or 5 lazy (noise, zeros) or tiny-update miners in its cohort."""
    w = world()
    win = w.window()
    win.add(1, Upload(uid=1, data=w.sign(1, w.honest(1))))
    griefers = list(range(50, 50 + k))
    for i, uid in enumerate(griefers):
        if kind == "lazy":
            update = w.zero() if i % 2 else w.noise(uid)
        else:  # its own real work, uploaded at a fraction of its size
            update = _scaled(w.honest(uid), (0.01, 0.05, 0.1)[i % 3])
        win.add(uid, Upload(uid=uid, data=w.sign(uid, update)))
    verified = win.verified()
    ref = {0: next(s for s in verified if s.uid == 1).norm} if warm else {}
    v = win.judge(subs=verified, ref_norms=ref, pow_evidence=win.proven())  # everyone banked: no one gated
    by = {s.uid: s for s in v.subs}
    assert by[1].outcome is Outcome.SCORED and by[1].score > 0, by[1].reason
    norm = v.standing.norm_scores
    players = v.standing.competition.players
    z = w.comp_cfg.z
    for uid in griefers:
        assert norm[1] > (norm[uid] or 0.0), (uid, by[uid].reason)
        assert players[1].ordinal(z) > players[uid].ordinal(z), (uid, by[uid].reason)
    assert v.standing.weights.get(1, 0.0) >= max(v.standing.weights.get(u, 0.0) for u in griefers)
