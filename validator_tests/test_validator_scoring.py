"""Tests for contribution scoring on the real tiny model and the embedded corpus.

A base model is trained briefly (so updates have something to improve), then
simulated miners run real AdamW inner steps on their pages and publish
SparseLoCo-encoded pseudo-gradients, exactly as the miner will.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from subnet.codec.sparseloco import CodecConfig, Encoder, decode, decode_sparse
from subnet.data.config import DataConfig
from subnet.data.pages import TokenPages, load_pages
from subnet.errors import ConfigError
from subnet.model.fragments import fragment_shapes, fragment_state, partition, trainable_parameters
from subnet.model.presets import build_model
from subnet.model.state import model_hash
from subnet.validator.scoring import (
    NO_PROOF_OF_WORK,
    ScoreConfig,
    applied,
    compute_baseline,
    mean_loss,
    page_batches,
    score_contribution,
)

torch.set_num_threads(1)
B = 8


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: torch.Tensor) -> None:
    logits = model(input_ids=batch[:, :-1]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()


class World:
    def __init__(self) -> None:
        self.pages: TokenPages = load_pages(DataConfig(vocab_size=2048))
        self.model = build_model("tiny", seed=0)
        opt = torch.optim.AdamW(self.model.parameters(), lr=3e-3)
        for s in range(25):
            _step(self.model, opt, self.pages.batch(range(s * B, s * B + B)))
        self.base = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.frag = partition(self.model, 1)[0]
        self.params = trainable_parameters(self.model, self.frag)
        self.shapes = fragment_shapes(self.model, self.frag)
        self.held = page_batches(self.pages, range(0, B), "heldout", B, 1)
        self.rand = page_batches(self.pages, range(9000, 9000 + B), "train", B, 1)
        self.baseline = compute_baseline(self.model, self.held, self.rand)

    def train(self, pages: list[int], steps: int = 8, lr: float = 1e-3) -> dict[str, torch.Tensor]:
        """A miner's window: AdamW steps from the base on `pages`; returns start - end."""
        self.model.load_state_dict(self.base)
        start = fragment_state(self.model, self.frag)
        opt = torch.optim.AdamW(self.model.parameters(), lr=lr)
        for h in range(steps):
            _step(self.model, opt, self.pages.batch([pages[(h * B + i) % len(pages)] for i in range(B)]))
        end = fragment_state(self.model, self.frag)
        self.model.load_state_dict(self.base)
        return {k: start[k] - end[k] for k in start}

    def score(self, delta, assigned: list[int], cfg: ScoreConfig = ScoreConfig()):
        return score_contribution(self.model, self.params, delta, cfg,
                                  page_batches(self.pages, assigned, "train", B, 1),
                                  self.held, self.rand, self.baseline)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def _assigned(m: int) -> list[int]:
    return list(range(1000 + 200 * m, 1000 + 200 * m + 64))


def test_mean_loss_matches_transformers_loss(world: World) -> None:
    batch = world.held[0]
    ours = mean_loss(world.model, [batch])
    with torch.no_grad():
        theirs = float(world.model(input_ids=batch, labels=batch).loss)
    assert ours == pytest.approx(theirs, rel=1e-5)
    world.model.train()
    mean_loss(world.model, [batch])
    assert world.model.training  # mode restored
    with pytest.raises(ConfigError):
        mean_loss(world.model, [])


def test_honest_encoded_update_scores_positive_with_proof_of_work(world: World) -> None:
    enc = Encoder(world.shapes, CodecConfig()).encode(world.train(_assigned(0)))
    before = model_hash(world.model)
    s = world.score(enc, _assigned(0))
    assert model_hash(world.model) == before
    assert s.proof_of_work and s.reason == "ok"
    assert s.score > 0 and s.score == s.heldout_improvement
    assert s.heldout_improvement == pytest.approx((s.heldout_before - s.heldout_after) / s.heldout_before)
    assert s.assigned_improvement > s.random_improvement
    # absolute mode: same sign, loss units
    s_abs = world.score(enc, _assigned(0), ScoreConfig(relative=False))
    assert s_abs.score == pytest.approx(s.heldout_before - s.heldout_after)


def test_update_trained_on_other_pages_fails_proof_of_work(world: World) -> None:
    enc = Encoder(world.shapes, CodecConfig()).encode(world.train(list(range(7000, 7064))))
    s = world.score(enc, _assigned(1))  # validator evaluates on the pages uid was *assigned*
    assert not s.proof_of_work
    assert s.reason == NO_PROOF_OF_WORK
    assert s.heldout_improvement > 0  # it helps, but earns nothing
    assert s.score == 0.0


def test_noise_update_scores_zero_or_negative(world: World) -> None:
    honest = decode(Encoder(world.shapes, CodecConfig()).encode(world.train(_assigned(2))))
    gen = torch.Generator().manual_seed(0)
    noise = {}
    for k, v in honest.items():  # same support and norm, random values
        r = torch.randn(v.shape, generator=gen) * (v != 0)
        noise[k] = r * (v.norm() / r.norm().clamp_min(1e-12))
    s = world.score(noise, _assigned(2))
    assert s.score <= 0.0
    assert s.heldout_improvement < 0


def test_zero_and_non_finite_and_malformed_updates_score_zero(world: World) -> None:
    zero = {k: torch.zeros(v) for k, v in world.shapes.items()}
    s = world.score(zero, _assigned(0))
    assert (s.score, s.reason, s.proof_of_work) == (0.0, "empty update", False)
    bad = dict(zero)
    name = next(iter(bad))
    bad[name] = bad[name].clone()
    bad[name].view(-1)[0] = float("nan")
    s = world.score(bad, _assigned(0))
    assert (s.score, s.reason) == (0.0, "non-finite update")
    before = model_hash(world.model)
    s = world.score({"no.such.param": torch.ones(3)}, _assigned(0))
    assert s.score == 0.0 and s.reason.startswith("malformed update")
    assert model_hash(world.model) == before


def test_huge_update_gives_finite_negative_or_zero(world: World) -> None:
    big = {k: torch.full(v, 1e4) for k, v in world.shapes.items()}
    s = world.score(big, _assigned(0))
    assert s.score <= 0.0 and math.isfinite(s.score)


@pytest.mark.parametrize("form", ["dense", "sparse", "encoded"])
def test_applied_restores_bitwise_even_on_error(world: World, form: str) -> None:
    pg = world.train(_assigned(3), steps=2)
    enc = Encoder(world.shapes, CodecConfig()).encode(pg)
    delta = {"dense": pg, "sparse": decode_sparse(enc), "encoded": enc}[form]
    before = model_hash(world.model)
    name = next(iter(world.params))
    original = world.params[name].detach().clone()
    with applied(world.params, delta, 0.7):
        assert model_hash(world.model) != before
        if form == "dense":
            assert torch.allclose(world.params[name], original - 0.7 * pg[name], atol=1e-7)
    assert model_hash(world.model) == before
    with pytest.raises(RuntimeError, match="boom"):
        with applied(world.params, delta, 0.7):
            raise RuntimeError("boom")
    assert model_hash(world.model) == before


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        ScoreConfig(eval_lr=0.0)
    with pytest.raises(ConfigError):
        ScoreConfig(n_heldout_batches=0)
    with pytest.raises(ConfigError):
        ScoreConfig(pow_ratio=float("nan"))


def test_heldout_only_control_when_no_random_batches(world: World) -> None:
    enc = Encoder(world.shapes, CodecConfig()).encode(world.train(_assigned(0)))
    bl = compute_baseline(world.model, world.held, [])
    assert math.isnan(bl.random_loss)
    cfg = ScoreConfig(n_random_batches=0)
    s = score_contribution(world.model, world.params, enc, cfg, page_batches(world.pages, _assigned(0), "train", 4, 1),
                           world.held, [], bl)
    assert s.proof_of_work and s.score > 0 and s.control_improvement == s.heldout_improvement
    lazy = Encoder(world.shapes, CodecConfig()).encode(world.train(list(range(7000, 7064))))
    s = score_contribution(world.model, world.params, lazy, cfg, page_batches(world.pages, _assigned(1), "train", 4, 1),
                           world.held, [], bl)
    assert not s.proof_of_work and s.score == 0.0
