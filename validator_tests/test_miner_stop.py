"""A stop request between inner steps abandons the window: StopRequested, the model exactly as on entry.

Why: a window of training can take minutes on a real model, and `systemctl stop`
or a test's teardown should not wait for it (subnet/miner/train.py
`stop_between_steps`; subnet/miner/loop.py ends the run on StopRequested with
nothing uploaded and the window not marked done).
"""

from __future__ import annotations

import pytest
import torch
from harness.pages import stride_pages

from subnet.data.pages import TokenPages
from subnet.miner.config import TrainConfig
from subnet.miner.train import StopRequested, inner_train, stop_between_steps
from subnet.model.fragments import partition
from subnet.model.presets import build_model

torch.set_num_threads(1)


def _pages() -> TokenPages:
    return stride_pages(seed=5, docs=200, step=7, modulus=211)


def test_the_wrapper_passes_batches_until_the_stop_then_raises() -> None:
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    it = stop_between_steps(iter(range(10)), should_stop)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(StopRequested):
        next(it)


@pytest.mark.parametrize("stop_after", [0, 2, 5])
def test_inner_train_stopped_mid_window_leaves_the_model_exactly_as_on_entry(stop_after: int) -> None:
    pages = _pages()
    model = build_model("tiny", seed=0)
    frag = partition(model, 2)[1]
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    seen = {"steps": 0}

    def batches():
        for s in range(6):
            seen["steps"] = s
            yield pages.batch([(4 * s + j) % 64 for j in range(4)])

    cfg = TrainConfig(inner_steps=6, lr=3e-3, batch_size=4, warmup_steps=0, weight_decay=0.0)
    with pytest.raises(StopRequested):
        inner_train(model, frag, stop_between_steps(batches(), lambda: seen["steps"] >= stop_after), cfg)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


def test_without_a_stop_the_wrapper_changes_nothing() -> None:
    pages = _pages()
    cfg = TrainConfig(inner_steps=4, lr=3e-3, batch_size=4, warmup_steps=0, weight_decay=0.0)
    stream = [pages.batch([(4 * s + j) % 64 for j in range(4)]) for s in range(4)]
    got = []
    for wrap in (False, True):
        model = build_model("tiny", seed=0)
        frag = partition(model, 2)[0]
        src = iter(stream)
        res = inner_train(model, frag, stop_between_steps(src, lambda: False) if wrap else src, cfg)
        got.append(res.pseudo_grad)
    assert got[0].keys() == got[1].keys()
    assert all(torch.equal(got[0][k], got[1][k]) for k in got[0])
