"""Batched evaluation (subnet/validator/batched_eval.py) scores what one-at-a-time scoring scores.

Real parts: the tiny model after a short pre-training, real AdamW inner steps
on the miners' pages, the network codec and the network's ScoreConfig. The
batched scores must equal ``score_contribution``'s field by field within
1e-5 (fp32 losses; relative improvements), give the same ranking and the same
verdicts (reason, proof of work), and leave the live model bit-identical.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from harness.pipeline_world import Upload, world

from subnet.codec.sparseloco import CodecConfig, Encoder, SparseTensor, decode_sparse
from subnet.data.config import DataConfig
from subnet.data.pages import load_pages
from subnet.errors import ConfigError
from subnet.model.fragments import fragment_shapes, fragment_state, partition, trainable_parameters
from subnet.model.presets import build_model
from subnet.model.state import model_hash
from subnet.node.config import NETWORK_SCORE
from subnet.validator.batched_eval import BatchedEvalConfig, Item, score_batch
from subnet.validator.pipeline import evaluate, gate
from subnet.validator.scoring import compute_baseline, page_batches, score_contribution

torch.set_num_threads(1)
TOL = 1e-5


class Scene:
    """Two fragments of the tiny model; per fragment, miners of graded quality plus bad uploads."""

    def __init__(self) -> None:
        self.pages = load_pages(DataConfig(vocab_size=2048))
        self.model = build_model("tiny", seed=0)
        opt = torch.optim.AdamW(self.model.parameters(), lr=3e-3)
        for s in range(10):
            b = self.pages.batch(range(s * 8, s * 8 + 8))
            loss = F.cross_entropy(self.model(input_ids=b[:, :-1]).logits.flatten(0, 1), b[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.model.zero_grad(set_to_none=True)
        self.base = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.frags = partition(self.model, 2)
        cfg = NETWORK_SCORE
        self.held = page_batches(self.pages, range(0, 16), "heldout", cfg.batch_size, cfg.n_heldout_batches)
        self.rand = (page_batches(self.pages, range(9000, 9008), "train", cfg.pow_batch_size, cfg.n_random_batches)
                     if cfg.n_random_batches else [])
        self.baseline = compute_baseline(self.model, self.held, self.rand)

    def miner(self, frag: int, uid: int, noise: float) -> tuple[list[SparseTensor], list[torch.Tensor]]:
        """A real 3-step AdamW update on this uid's pages, blended with `noise` of same-norm noise, encoded."""
        f = self.frags[frag]
        pages = list(range(2000 + 64 * uid, 2000 + 64 * uid + 16))
        params = trainable_parameters(self.model, f)
        start = fragment_state(self.model, f)
        opt = torch.optim.AdamW(list(params.values()), lr=1e-3)
        for h in range(3):
            b = self.pages.batch(pages[h * 4:h * 4 + 8] if h * 4 + 8 <= 16 else pages[:8])
            loss = F.cross_entropy(self.model(input_ids=b[:, :-1]).logits.flatten(0, 1), b[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        end = fragment_state(self.model, f)
        self.model.load_state_dict(self.base)
        self.model.zero_grad(set_to_none=True)
        g = torch.Generator().manual_seed(uid)
        pg = {}
        for k in start:
            d = start[k] - end[k]
            r = torch.randn(d.shape, generator=g)
            pg[k] = (1 - noise) * d + noise * r * (d.norm() / r.norm().clamp_min(1e-12))
        sparse = decode_sparse(Encoder(fragment_shapes(self.model, f), CodecConfig()).encode(pg))
        assigned = page_batches(self.pages, pages, "train", NETWORK_SCORE.pow_batch_size,
                                NETWORK_SCORE.n_assigned_batches)
        return sparse, assigned

    def params(self, frag: int):
        return trainable_parameters(self.model, self.frags[frag])


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene()


def _assert_same(a, b) -> None:
    assert a.reason == b.reason and a.proof_of_work == b.proof_of_work
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, float):
            assert (math.isnan(x) and math.isnan(y)) or abs(x - y) < TOL, (f.name, x, y)
        elif isinstance(x, tuple):
            assert len(x) == len(y) and all(abs(p - q) < TOL for p, q in zip(x, y)), f.name
        else:
            assert x == y, f.name


@pytest.mark.parametrize("frag", [0, 1])
def test_batched_scores_equal_one_at_a_time_and_rank_the_same(scene: Scene, frag: int) -> None:
    ups = [scene.miner(frag, uid, noise) for uid, noise in enumerate((0.0, 0.5, 1.0))]
    scaled = [SparseTensor(name=t.name, shape=t.shape, index=t.index, values=t.values * 20) for t in ups[0][0]]
    ups.append((scaled, ups[0][1]))  # scaled up: a different (larger) step, on the same pages
    before = model_hash(scene.model)
    one = [score_contribution(scene.model, scene.params(frag), d, NETWORK_SCORE, a, scene.held, scene.rand,
                              scene.baseline) for d, a in ups]
    many = score_batch(scene.model, [Item(params=scene.params(frag), delta=d, assigned=a) for d, a in ups],
                       NETWORK_SCORE, scene.held, scene.rand, scene.baseline)
    assert model_hash(scene.model) == before  # the live weights were never touched
    for a, b in zip(one, many):
        _assert_same(a, b)
    order = lambda scores: sorted(range(len(scores)), key=lambda i: -scores[i].score)  # noqa: E731
    assert order(one) == order(many)
    assert one[0].score > 0 and len({round(c.score, 8) for c in one}) == len(one)  # the scene has signal


def test_bad_uploads_get_the_scorers_own_verdict_inside_a_batch(scene: Scene) -> None:
    good, assigned = scene.miner(0, 7, 0.2)
    empty = [SparseTensor(name=t.name, shape=t.shape, index=t.index, values=torch.zeros_like(t.values))
             for t in good]
    nan = [SparseTensor(name=t.name, shape=t.shape, index=t.index, values=t.values.clone()) for t in good]
    nan[0].values[0] = float("nan")
    wrong = [SparseTensor(name="no.such.param", shape=good[0].shape, index=good[0].index, values=good[0].values)]
    ups = [good, empty, nan, wrong, good]
    before = model_hash(scene.model)
    many = score_batch(scene.model, [Item(params=scene.params(0), delta=d, assigned=assigned) for d in ups],
                       NETWORK_SCORE, scene.held, scene.rand, scene.baseline)
    assert model_hash(scene.model) == before
    reasons = [cs.reason for cs in many]
    assert reasons[1] == "empty update" and reasons[2] == "non-finite update"
    assert reasons[3].startswith("malformed update")
    one = score_contribution(scene.model, scene.params(0), good, NETWORK_SCORE, assigned, scene.held, scene.rand,
                             scene.baseline)
    _assert_same(one, many[0])
    _assert_same(one, many[4])


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        BatchedEvalConfig(batch_contributions=0)


def test_the_evaluate_stage_gives_the_same_outcomes_batched() -> None:
    """Through the pipeline: honest, scaled, noise and zero uploads, evaluated 3 per pass vs one at a time."""
    w = world()
    win = w.window()
    for uid, update in ((1, w.honest(1)), (2, w.honest(2)), (3, {n: 10 * t for n, t in w.honest(3).items()}),
                        (4, w.noise(4)), (5, w.zero()), (6, w.honest(6))):
        win.add(uid, Upload(uid=uid, data=w.sign(uid, update)))
    snap = win.snapshot()
    gated = gate(win.verified(), snap.competitors, {}, w.opts)
    ctx = w.ctx(snap)
    before = model_hash(w.gm.model)
    one = evaluate(gated.subs, snap.assignments, ctx)
    many = evaluate(gated.subs, snap.assignments, ctx, batched=BatchedEvalConfig(batch_contributions=3))
    assert model_hash(w.gm.model) == before
    assert [s.uid for s in one] == [s.uid for s in many]
    scored = 0
    for a, b in zip(one, many):
        assert a.outcome == b.outcome and a.reason == b.reason, a.uid
        if a.score is not None:
            scored += 1
            assert abs(a.score - b.score) < TOL, a.uid
    assert scored >= 5
