"""The reference-set control variate of subnet/validator/scoring.py, on the real tiny model.

A base model is trained briefly, real AdamW miners produce SparseLoCo-encoded
pseudo-gradients, and the scores with and without the window's reference
gradients are compared: the first-order term matches the measured loss change
(sign and scale), the estimate is the measurement when the reference is the
scored set itself, the estimate varies less than the measurement across
held-out draws, and noise or scaled-up updates gain nothing from it.
"""

from __future__ import annotations

import statistics

import pytest
import torch
import torch.nn.functional as F

from subnet.codec.sparseloco import CodecConfig, Encoder, decode_sparse
from subnet.data.config import DataConfig
from subnet.data.pages import load_pages
from subnet.errors import ConfigError
from subnet.model.fragments import fragment_shapes, fragment_state, partition, trainable_parameters
from subnet.model.presets import build_model
from subnet.model.state import model_hash
from subnet.protocol.assignment import AssignmentParams
from subnet.validator.scoring import (
    ScoreConfig,
    compute_baseline,
    loss_and_grad,
    mean_loss,
    page_batches,
    reference_pages,
    score_contribution,
)

torch.set_num_threads(1)
B = 8
CFG = ScoreConfig(n_assigned_batches=2, n_heldout_batches=2, n_random_batches=2, pow_ratio=0.1)


def _adam_step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: torch.Tensor) -> None:
    logits = model(input_ids=batch[:, :-1]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()


class RefWorld:
    def __init__(self) -> None:
        self.pages = load_pages(DataConfig(vocab_size=2048))
        self.model = build_model("tiny", seed=0)
        opt = torch.optim.AdamW(self.model.parameters(), lr=3e-3)
        for s in range(25):
            _adam_step(self.model, opt, self.pages.batch(range(s * B, s * B + B)))
        self.base = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.frag = partition(self.model, 1)[0]
        self.params = trainable_parameters(self.model, self.frag)
        self.shapes = fragment_shapes(self.model, self.frag)
        self.rand = page_batches(self.pages, range(9000, 9008), "train", 4, 2)
        self.reference = page_batches(self.pages, range(200, 264), "heldout", B, 8)

    def held(self, draw: int) -> list[torch.Tensor]:
        return page_batches(self.pages, range(16 * draw, 16 * draw + 16), "heldout", B, 2)

    def train(self, pages: list[int], steps: int = 8, lr: float = 1e-3) -> dict[str, torch.Tensor]:
        self.model.load_state_dict(self.base)
        start = fragment_state(self.model, self.frag)
        opt = torch.optim.AdamW(self.model.parameters(), lr=lr)
        for h in range(steps):
            _adam_step(self.model, opt, self.pages.batch([pages[(h * B + i) % len(pages)] for i in range(B)]))
        end = fragment_state(self.model, self.frag)
        self.model.load_state_dict(self.base)
        return {k: start[k] - end[k] for k in start}

    def assigned(self, pages: list[int]) -> list[torch.Tensor]:
        return page_batches(self.pages, pages, "train", 4, 2)


@pytest.fixture(scope="module")
def rw() -> RefWorld:
    return RefWorld()


PAGES = list(range(3000, 3016))


@pytest.fixture(scope="module")
def honest(rw: RefWorld):
    return Encoder(rw.shapes, CodecConfig()).encode(rw.train(PAGES))


def test_loss_and_grad_leaves_the_model_alone_and_matches_mean_loss(rw: RefWorld) -> None:
    before = model_hash(rw.model)
    flags = {n: p.requires_grad for n, p in rw.model.named_parameters()}
    old_grads = [p.grad for p in rw.model.parameters()]
    loss, grads = loss_and_grad(rw.model, rw.held(0))
    assert loss == pytest.approx(mean_loss(rw.model, rw.held(0)), rel=1e-5)
    assert set(grads) == {n for n, _ in rw.model.named_parameters()}
    assert model_hash(rw.model) == before
    assert flags == {n: p.requires_grad for n, p in rw.model.named_parameters()}
    assert all(p.grad is g for p, g in zip(rw.model.parameters(), old_grads))  # existing .grad kept
    with pytest.raises(ConfigError):
        loss_and_grad(rw.model, [])


def test_first_order_term_predicts_a_small_step(rw: RefWorld, honest) -> None:
    """At a small eval lr the loss change is linear: the prediction matches sign and size."""
    held = rw.held(0)
    cfg = ScoreConfig(eval_lr=0.02, n_assigned_batches=2, n_heldout_batches=2, n_random_batches=2)
    bl = compute_baseline(rw.model, held, rw.rand, reference=held)
    s = score_contribution(rw.model, rw.params, honest, cfg, rw.assigned(PAGES), held, rw.rand, bl)
    assert s.heldout_linear > 0
    assert s.heldout_improvement == pytest.approx(s.heldout_linear, rel=0.1)
    # the reference is the scored set itself: the correction cancels exactly
    assert s.reference_linear == pytest.approx(s.heldout_linear, rel=1e-9)
    assert s.estimated_improvement == pytest.approx(s.heldout_improvement, rel=1e-6)


def test_sparse_and_dense_updates_give_the_same_estimate(rw: RefWorld, honest) -> None:
    held = rw.held(1)
    bl = compute_baseline(rw.model, held, rw.rand, reference=rw.reference)
    sparse = score_contribution(rw.model, rw.params, decode_sparse(honest), CFG, rw.assigned(PAGES), held,
                                rw.rand, bl)
    from subnet.codec.sparseloco import decode
    dense = score_contribution(rw.model, rw.params, decode(honest, rw.shapes), CFG, rw.assigned(PAGES), held,
                               rw.rand, bl)
    assert sparse.score == pytest.approx(dense.score, rel=1e-5, abs=1e-9)
    assert sparse.score == sparse.estimated_improvement
    assert sparse.proof_of_work and sparse.score > 0


def test_estimate_varies_less_than_the_measurement_across_heldout_draws(rw: RefWorld, honest) -> None:
    """Same update, four disjoint 16-page held-out draws: the control variate shrinks the spread."""
    measured, estimated = [], []
    for draw in range(4):
        held = rw.held(draw)
        bl = compute_baseline(rw.model, held, rw.rand, reference=rw.reference)
        s = score_contribution(rw.model, rw.params, honest, CFG, rw.assigned(PAGES), held, rw.rand, bl)
        measured.append(s.heldout_improvement)
        estimated.append(s.estimated_improvement)
    assert statistics.pstdev(estimated) < 0.5 * statistics.pstdev(measured), (measured, estimated)


def test_noise_and_scaled_updates_gain_nothing_from_the_correction(rw: RefWorld, honest) -> None:
    held = rw.held(2)
    bl = compute_baseline(rw.model, held, rw.rand, reference=rw.reference)
    assigned = rw.assigned(PAGES)
    base = score_contribution(rw.model, rw.params, honest, CFG, assigned, held, rw.rand, bl)
    dense = {t.name: t for t in decode_sparse(honest)}
    gen = torch.Generator().manual_seed(3)
    noise = []
    for t in dense.values():
        r = torch.randn(t.values.shape, generator=gen)
        noise.append(type(t)(name=t.name, shape=t.shape, index=t.index, values=r * t.values.norm() / r.norm()))
    s_noise = score_contribution(rw.model, rw.params, noise, CFG, assigned, held, rw.rand, bl)
    assert s_noise.score <= 0.0
    scaled = [type(t)(name=t.name, shape=t.shape, index=t.index, values=t.values * 30) for t in dense.values()]
    s_scaled = score_contribution(rw.model, rw.params, scaled, CFG, assigned, held, rw.rand, bl)
    assert s_scaled.score < base.score  # curvature is measured in full, not extrapolated


def test_reference_pages_are_a_deterministic_larger_draw() -> None:
    p = AssignmentParams(n_fragments=2, pages_per_miner=16, n_train_pages=10000, n_heldout_pages=500,
                         heldout_per_window=16)
    a = reference_pages(12345, p, 64)
    assert a == reference_pages(12345, p, 64) and len(set(a)) == 64
    assert a != reference_pages(12346, p, 64)
    assert all(0 <= i < 500 for i in a)
    assert len(reference_pages(1, p, 10_000)) == 500
    with pytest.raises(ConfigError):
        reference_pages(1, p, 0)
    with pytest.raises(ConfigError):
        ScoreConfig(n_reference_batches=-1)


def test_proof_of_work_standard_error_test(rw: RefWorld, honest) -> None:
    """pow_t measures the assigned-vs-control gap in standard errors; pow_z gates on it."""
    held = rw.held(3)
    bl = compute_baseline(rw.model, held, rw.rand, reference=rw.reference)
    assert len(bl.heldout_page_losses) == 16 and len(bl.random_page_losses) == 8
    s = score_contribution(rw.model, rw.params, honest, CFG, rw.assigned(PAGES), held, rw.rand, bl)
    assert s.proof_of_work and s.pow_t > 1.0
    wrong = score_contribution(rw.model, rw.params, honest, CFG, rw.assigned(list(range(5000, 5016))), held,
                               rw.rand, bl)
    assert wrong.pow_t < s.pow_t and not wrong.proof_of_work
    strict = ScoreConfig(n_assigned_batches=2, n_heldout_batches=2, n_random_batches=2, pow_ratio=0.1,
                         pow_z=s.pow_t + 1.0)
    gated = score_contribution(rw.model, rw.params, honest, strict, rw.assigned(PAGES), held, rw.rand, bl)
    assert not gated.proof_of_work and gated.score <= 0.0
