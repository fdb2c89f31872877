"""Inner training that rebases onto a newer global mid-window (subnet.miner.rebase, issue 12)."""

from __future__ import annotations

import pytest
import torch
from harness.pages import stride_pages

from subnet.data.pages import TokenPages
from subnet.errors import ConfigError
from subnet.miner.config import TrainConfig
from subnet.miner.rebase import train_rebasing
from subnet.miner.rebase_config import RebaseConfig
from subnet.miner.train import AdamState, inner_train
from subnet.model.fragments import partition, trainable_parameters
from subnet.model.presets import build_model
from subnet.model.state import model_hash

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def rebase_pages() -> TokenPages:
    return stride_pages(seed=3, docs=300, step=5, modulus=211)


def _stream(pages: TokenPages, n: int) -> list[torch.Tensor]:
    return [pages.batch([(4 * s + j) % 64 for j in range(4)]) for s in range(n)]


def _cfg(steps: int = 6) -> TrainConfig:
    return TrainConfig(inner_steps=steps, lr=3e-3, batch_size=4, warmup_steps=0, weight_decay=0.0)


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal up to fp32 rounding of `global - accumulated` (AdamW may amplify it on a few near-zero entries)."""
    assert float(torch.linalg.vector_norm(got - want)) <= 1e-3 * float(torch.linalg.vector_norm(want)) + 1e-7


def _newer_model(seed: int) -> dict[str, torch.Tensor]:
    """A different 'newest global': the seed-0 model moved by a small fixed step."""
    base = build_model("tiny", seed=0).state_dict()
    gen = torch.Generator().manual_seed(seed)
    return {k: (v + 1e-3 * torch.randn(v.shape, generator=gen)) if v.is_floating_point() else v.clone()
            for k, v in base.items()}


def test_no_hook_is_exactly_inner_train(rebase_pages: TokenPages) -> None:
    data = _stream(rebase_pages, 6)
    a, b = build_model("tiny", seed=0), build_model("tiny", seed=0)
    fa, fb = partition(a, 2)[1], partition(b, 2)[1]
    ref = inner_train(a, fa, iter(data), _cfg(), AdamState())
    out = train_rebasing(b, fb, iter(data), _cfg(), AdamState(), check_every=2, newer=None)
    assert out.rebased_after is None and out.polls == 0
    for n, g in ref.pseudo_grad.items():
        assert torch.equal(g, out.result.pseudo_grad[n])


def test_rebase_moves_the_base_and_keeps_progress(rebase_pages: TokenPages) -> None:
    data = _stream(rebase_pages, 6)
    newest = _newer_model(1)
    # reference by hand: 2 steps on the old base, then local += newest - old, 4 more steps, pg vs newest
    ref = build_model("tiny", seed=0)
    frag = partition(ref, 2)[0]
    r1 = inner_train(ref, frag, iter(data[:2]), _cfg(2), AdamState())
    ref.load_state_dict(newest)
    params = trainable_parameters(ref, frag)
    with torch.no_grad():
        for n, p in params.items():
            p.sub_(r1.pseudo_grad[n])
    local_start = {n: p.detach().clone() for n, p in params.items()}
    r2 = inner_train(ref, frag, iter(data[2:]), _cfg(4), r1.optimizer_state, start_step=2)
    expect = {n: newest[n] - (local_start[n] - r2.pseudo_grad[n]) for n in params}

    model = build_model("tiny", seed=0)
    calls: list[int] = []

    def newer() -> bool:
        calls.append(1)
        if len(calls) < 2:
            return False  # not there after the first segment
        model.load_state_dict(newest)
        return True

    out = train_rebasing(model, partition(model, 2)[0], iter(data), _cfg(6), AdamState(), check_every=1,
                         newer=newer)
    assert out.rebased_after == 2 and out.polls == 2  # no polling once rebased
    assert out.result.stats.steps == 6 and out.result.stats.end_step == 6
    assert set(out.result.optimizer_state.step.values()) == {6}  # AdamW moments carried across the rebase
    for n in params:
        _close(out.result.pseudo_grad[n], expect[n])
    # the training copy is the newest global, byte for byte (on the CPU it is the consensus copy)
    ref_global = build_model("tiny", seed=0)
    ref_global.load_state_dict(newest)
    assert model_hash(model) == model_hash(ref_global)


def test_polls_that_find_nothing_leave_the_model_and_match_one_segment(rebase_pages: TokenPages) -> None:
    data = _stream(rebase_pages, 6)
    a, b = build_model("tiny", seed=0), build_model("tiny", seed=0)
    before = model_hash(b)
    ref = inner_train(a, partition(a, 2)[0], iter(data), _cfg(), AdamState())
    out = train_rebasing(b, partition(b, 2)[0], iter(data), _cfg(), AdamState(), check_every=1, newer=lambda: False)
    assert out.rebased_after is None and out.polls == 5
    assert model_hash(b) == before
    for n, g in ref.pseudo_grad.items():
        _close(out.result.pseudo_grad[n], g)


def test_rebase_config_refuses_a_zero_interval() -> None:
    assert RebaseConfig().enabled and RebaseConfig().check_every == 1
    with pytest.raises(ConfigError):
        RebaseConfig(check_every=0)
