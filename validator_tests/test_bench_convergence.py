"""bench/convergence.py measures the deployed defaults, and its rebasing miner means what it says."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from subnet.codec.config import CodecConfig
from subnet.data.pages import TokenPages
from subnet.miner.config import TrainConfig
from subnet.miner.rebase_config import RebaseConfig
from subnet.miner.train import AdamState, inner_train
from subnet.model.config import ModelConfig
from subnet.model.fragments import partition
from subnet.model.presets import build_model
from subnet.sync.config import SyncConfig

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
    assert net.staleness == 1  # one window of delay, as the live timeline has
    # the miner's rebase onto the manifest that lands mid-window, as RebaseConfig sets it
    assert net.rebase_at == (convergence.LIVE_ARRIVAL if RebaseConfig().enabled else 1.0) < 1.0


def test_sweep_rows_override_named_fields_and_keep_total_steps() -> None:
    base = convergence.deployed(30)
    row = convergence.parse_row("inner_steps=20,rule=median_norm_clip_mean,select=false", base)
    assert (row.inner_steps, row.rounds, row.rule, row.select) == (20, 15, "median_norm_clip_mean", False)
    assert row.steps == base.steps and "keep-all" in row.label()
    with pytest.raises(SystemExit, match="unknown field"):
        convergence.parse_row("momentum_of_the_moon=0.9", base)
    assert "bench-only" in convergence.parse_row("outer_momentum=0.9", base).label()
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


def test_bench_only_outer_momentum_is_nesterov_on_the_applied_step() -> None:
    from convergence_sim import _outer_momentum

    model = torch.nn.Linear(3, 2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(0.5 * torch.ones_like(p))  # the protocol's step at outer lr 0.5: d = 1 everywhere
    mom: dict[str, torch.Tensor] = {}
    _outer_momentum(model, before, mom, 0.5, 0.9)
    for n, p in model.named_parameters():  # first step: m = d, p = before - lr (d + beta m) = before - 0.95
        torch.testing.assert_close(p.detach(), before[n] - 0.95)
        torch.testing.assert_close(mom[n], torch.ones_like(p))
    again = {n: p.detach().clone() for n, p in model.named_parameters()}
    _outer_momentum(model, again, mom, 0.5, 0.9)  # no new step (d = 0): momentum alone moves it
    for n, p in model.named_parameters():
        torch.testing.assert_close(mom[n], 0.9 * torch.ones_like(p))
        torch.testing.assert_close(p.detach(), again[n] - 0.5 * 0.81)


def test_merge_joins_one_seed_per_process_and_refuses_mixed_headlines(tmp_path: Path) -> None:
    def part(seed: int, ratio: float, label: str = "H=10 rebase@0.5") -> Path:
        summ = {"loss_ratio": ratio, "token_equivalence": 0.3, "upload_reduction_vs_ddp_fp32": 3400.0}
        doc = {"command": f"run {seed}", "config": {"seeds": [seed]}, "complete": True, "elapsed_s": 1.0,
               "cpu_s": 1.0, "main": {"label": label, "runs": [{"seed": seed, "summary": summ}]}, "sweep": []}
        path = tmp_path / f"s{seed}-{label}.json"
        path.write_text(__import__("json").dumps(doc))
        return path

    merged = convergence.merge([part(0, 1.1), part(1, 1.2), part(2, 1.3)])
    assert [r["seed"] for r in merged["main"]["runs"]] == [0, 1, 2] and merged["config"]["seeds"] == [0, 1, 2]
    assert merged["commands"] == ["run 0", "run 1", "run 2"] and merged["complete"]
    torch.testing.assert_close(merged["main"]["summary"]["loss_ratio"]["mean"], 1.2)
    torch.testing.assert_close(merged["main"]["summary"]["loss_ratio"]["stdev"], 0.1)
    with pytest.raises(SystemExit, match="different headlines"):
        convergence.merge([part(0, 1.1), part(1, 1.2, "stale=1")])


def test_merge_attaches_the_centralized_curve_to_network_only_arms(tmp_path: Path) -> None:
    import json

    net = {"curve": {"tokens": [0, 100], "loss": [10.0, 6.0]}, "uploaded_bytes_per_miner": {0: 10, 1: 30}}
    doc = {"command": "net-only", "config": {"seeds": [0], "n_params": 5, "steps": 4}, "complete": True,
           "main": {"label": "L", "runs": [{"seed": 0, "network": net}]}, "sweep": [{"seed": 0, "network": net}]}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(doc))
    central = {"curve": {"tokens": [0, 50, 100], "loss": [10.0, 6.0, 5.0]}}
    merged = convergence.merge([path], central)
    for arm in (merged["main"]["runs"][0], merged["sweep"][0]):
        summ = arm["summary"]
        torch.testing.assert_close(summ["loss_ratio"], 6.0 / 5.0)  # equal tokens: 6 vs 5
        torch.testing.assert_close(summ["token_equivalence"], 0.5)  # centralized reached 6.0 at 50 of 100 tokens
        assert summ["upload_reduction_vs_ddp_fp32"] == 4 * 5 * 4 / 20
