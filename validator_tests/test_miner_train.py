"""The miner's inner training on one fragment (subnet.miner.train)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import torch
from harness.pages import stride_pages

from subnet.data.pages import TokenPages
from subnet.miner.config import TrainConfig
from subnet.miner.train import AdamState, TrainingError, inner_train, lm_loss, lr_at
from subnet.model.fragments import partition
from subnet.model.presets import build_model
from subnet.model.state import model_hash, tensor_bytes

torch.set_num_threads(1)
PAGE_LEN = 33


def make_pages() -> TokenPages:
    # A learnable stream: next token = (token + 7) mod 211, with a random restart every 40 tokens.
    return stride_pages(seed=0, docs=400, step=7, modulus=211, page_len=PAGE_LEN)


def batches(pages: TokenPages, indices: list[int], batch_size: int) -> Iterator[torch.Tensor]:
    i = 0
    while True:
        yield pages.batch([indices[(i + j) % len(indices)] for j in range(batch_size)])
        i += batch_size


@pytest.fixture(scope="module")
def pages() -> TokenPages:
    return make_pages()


def _cfg(**kw) -> TrainConfig:
    base = dict(inner_steps=4, lr=3e-3, batch_size=4, warmup_steps=0, weight_decay=0.0)
    base.update(kw)
    return TrainConfig(**base)


def test_pseudo_grad_only_on_fragment_and_model_restored(pages: TokenPages) -> None:
    model = build_model("tiny", seed=0)
    frags = partition(model, 2)
    frag = frags[1]
    before = model_hash(model)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.eval()
    other = [n for n, _ in model.named_parameters() if n not in frag.param_names]
    params = dict(model.named_parameters())
    seen_other: list[str] = []

    def watching() -> Iterator[torch.Tensor]:
        # Called between inner steps: frozen parameters must never move.
        for b in batches(pages, list(range(16)), 4):
            h = hashlib.sha256()
            for n in other:
                h.update(tensor_bytes(params[n]))
            seen_other.append(h.hexdigest())
            yield b

    pg, state, stats = inner_train(model, frag, watching(), _cfg())
    assert set(pg) == set(frag.param_names)
    assert all(torch.isfinite(t).all() for t in pg.values())
    assert sum(float(t.abs().sum()) for t in pg.values()) > 0
    assert all(float(t.abs().max()) > 0 for n, t in pg.items() if "weight" in n)
    assert len(set(seen_other)) == 1 and len(seen_other) == 4
    assert state.names() == set(frag.param_names)  # no optimizer state for frozen params
    assert model_hash(model) == before  # the global model stays at the network's version
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert stats.steps == 4 and len(stats.losses) == 4 and stats.tokens == 4 * 4 * (PAGE_LEN - 1)


def test_training_reduces_loss_over_windows(pages: TokenPages) -> None:
    model = build_model("tiny", seed=1)
    frag = partition(model, 1)[0]
    idx = list(range(12))
    eval_batch = pages.batch(idx)
    with torch.no_grad():
        first = float(lm_loss(model, eval_batch))
    state: AdamState | None = None
    step = 0
    curve = [first]
    for _ in range(4):
        pg, state, stats = inner_train(model, frag, batches(pages, idx, 4), _cfg(inner_steps=5, lr=5e-3),
                                       state, start_step=step)
        assert stats.start_step == step and stats.end_step == step + 5
        step = stats.end_step
        with torch.no_grad():  # outer step with lr 1: p <- p - pg (what a one-miner manifest does)
            for n, p in model.named_parameters():
                p.sub_(pg[n])
            curve.append(float(lm_loss(model, eval_batch)))
    assert all(b < a for a, b in zip(curve, curve[1:])), curve
    assert curve[-1] < 0.75 * first, curve
    assert all(s == 20 for s in state.step.values())


def test_warmup_schedule_counts_across_windows() -> None:
    cfg = _cfg(warmup_steps=10, lr=1e-3)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(4, cfg) == pytest.approx(5e-4)
    assert lr_at(9, cfg) == lr_at(500, cfg) == pytest.approx(1e-3)
    assert lr_at(0, _cfg(warmup_steps=0, lr=2e-3)) == 2e-3


def test_warmup_resumes_from_persisted_step(pages: TokenPages) -> None:
    model = build_model("tiny", seed=0)
    frag = partition(model, 2)[0]
    cfg = _cfg(inner_steps=2, warmup_steps=10, lr=1e-3)
    _, _, early = inner_train(model, frag, batches(pages, [0, 1], 2), cfg, start_step=0)
    _, _, late = inner_train(model, frag, batches(pages, [0, 1], 2), cfg, start_step=20)
    assert early.last_lr == pytest.approx(2e-4) and late.last_lr == pytest.approx(1e-3)


def test_fragment_switch_keeps_both_states(pages: TokenPages) -> None:
    model = build_model("tiny", seed=0)
    f0, f1 = partition(model, 2)
    _, state, _ = inner_train(model, f0, batches(pages, [0, 1, 2], 2), _cfg(inner_steps=2))
    saved = {n: t.clone() for n, t in state.exp_avg.items()}
    _, state, _ = inner_train(model, f1, batches(pages, [3, 4], 2), _cfg(inner_steps=3), state)
    assert state.names() == set(f0.param_names) | set(f1.param_names)
    assert all(state.step[n] == 2 for n in f0.param_names) and all(state.step[n] == 3 for n in f1.param_names)
    assert all(torch.equal(saved[n], state.exp_avg[n]) for n in f0.param_names)


def test_short_data_ends_the_window_early(pages: TokenPages) -> None:
    model = build_model("tiny", seed=0)
    frag = partition(model, 2)[0]
    two = iter([pages.batch([0, 1]), pages.batch([2, 3])])
    _, _, stats = inner_train(model, frag, two, _cfg(inner_steps=5))
    assert stats.steps == 2


def test_non_finite_loss_raises_and_restores(pages: TokenPages) -> None:
    model = build_model("tiny", seed=0)
    f0, f1 = partition(model, 2)
    with torch.no_grad():
        dict(model.named_parameters())[f1.param_names[0]].view(-1)[0] = float("nan")  # poison a frozen layer
    before = model_hash(model)
    with pytest.raises(TrainingError, match="non-finite"):
        inner_train(model, f0, batches(pages, [0, 1], 2), _cfg())
    assert model_hash(model) == before
    assert all(p.requires_grad for p in model.parameters())
