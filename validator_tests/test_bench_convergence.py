"""bench/convergence.py measures the deployed defaults, and its rebasing miner means what it says."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from subnet.codec.config import CodecConfig
from subnet.config import ModelConfig, SyncConfig, TrainConfig
from subnet.data.pages import TokenPages
from subnet.miner.train import AdamState, inner_train
from subnet.model.fragments import partition
from subnet.model.presets import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import convergence  # noqa: E402
from convergence_sim import _train_miner  # noqa: E402

torch.set_num_threads(1)


def test_the_headline_row_is_the_default_configuration() -> None:
    net = convergence.deployed(7)
    codec, train, sync = CodecConfig(), TrainConfig(), SyncConfig()
    assert (net.chunk, net.topk, net.value_bits, net.ef_decay) == (codec.chunk, codec.topk, codec.value_bits,
                                                                  codec.ef_decay)
    assert (net.inner_steps, net.outer_lr, net.top_g, net.rule) == (train.inner_steps, sync.outer_lr, sync.top_g,
                                                                    sync.rule)
    assert net.fragments == ModelConfig().n_fragments and net.select and net.rounds == 7
    assert net.staleness == 1 and net.rebase_at == 1.0  # one window of delay, as the live timeline has


def test_sweep_rows_override_named_fields_and_keep_total_steps() -> None:
    base = convergence.deployed(30)
    row = convergence.parse_row("inner_steps=20,rule=median_norm_clip_mean,select=false", base)
    assert (row.inner_steps, row.rounds, row.rule, row.select) == (20, 15, "median_norm_clip_mean", False)
    assert row.steps == base.steps and "keep-all" in row.label()
    with pytest.raises(SystemExit, match="unknown field"):
        convergence.parse_row("outer_momentum=0.9", base)
    with pytest.raises(SystemExit, match="multiple"):
        convergence.parse_row("inner_steps=7", base)


def _pages() -> TokenPages:
    rng = np.random.default_rng(1)
    starts = rng.integers(0, 300, size=120)
    tokens = np.concatenate([(s + 7 * np.arange(40)) % 301 for s in starts]).astype(np.uint16)
    return TokenPages(tokens, page_len=33, heldout_fraction=0.1)


def test_rebasing_at_zero_is_training_from_the_newest_version_and_at_h_is_not_rebasing() -> None:
    pages = _pages()
    stale = build_model("tiny", seed=1)
    newest = build_model("tiny", seed=2).state_dict()
    frag = partition(stale, 2)[1]
    cfg = TrainConfig(inner_steps=2, batch_size=2, lr=3e-3, warmup_steps=0)
    batches = [pages.batch([2 * i, 2 * i + 1], "train") for i in range(2)]
    stale_state = {k: v.clone() for k, v in stale.state_dict().items()}

    got, _, end = _train_miner(stale, newest, frag, batches, cfg, AdamState(), 0, rebase_steps=0)
    ref_model = build_model("tiny", seed=2)
    ref = inner_train(ref_model, frag, iter(batches), cfg, AdamState()).pseudo_grad
    assert end == 2 and all(torch.equal(got[n], ref[n]) for n in ref)

    stale.load_state_dict(stale_state)
    got, _, _ = _train_miner(stale, newest, frag, batches, cfg, AdamState(), 0, rebase_steps=2)
    stale.load_state_dict(stale_state)
    ref = inner_train(stale, frag, iter(batches), cfg, AdamState()).pseudo_grad
    assert all(torch.equal(got[n], ref[n]) for n in ref)  # the manifest landed after the last step

    stale.load_state_dict(stale_state)
    half, _, _ = _train_miner(stale, newest, frag, batches, cfg, AdamState(), 0, rebase_steps=1)
    assert any(not torch.allclose(half[n], ref[n]) for n in ref)  # a mid-window rebase changes the update
