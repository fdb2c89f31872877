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
    # another H trains on other pages: its own centralized twin, not the headline's
    assert convergence.own_twin(row, base) and convergence.own_twin(convergence.parse_row("fragments=1", base), base)
    assert not convergence.own_twin(convergence.parse_row("outer_lr=2,aggregate_z=1", base), base)
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


def test_a_cut_short_arm_is_read_back_from_its_progress_lines() -> None:
    from convergence_partial import PartialLogError, format_progress, partial_network, read_progress

    label = convergence.deployed(100).label()
    lines = [format_progress(seed=1, label=label, round=r, tokens=40960 * r, loss=6.0 - 0.1 * r, kept=3,
                             uploaded=4 * 13_900 * r, seconds=9.4 * r) for r in (1, 2, 3)]
    other = format_progress(seed=2, label=label, round=1, tokens=1, loss=1.0, kept=1, uploaded=1, seconds=1)
    old = f"network seed 1 {label}: round 1 tokens 40960 loss 5.9000 kept 4 [9s]"  # logs from before 'uploaded'
    text = "\n".join(["central seed 1: step 100 loss 5.1 [3s]", lines[0], other, *lines[1:], "Traceback"])
    points = read_progress(text, seed=1, label=label)
    assert [(p.round, p.tokens, p.kept, p.uploaded) for p in points] == [
        (r, 40960 * r, 3, 4 * 13_900 * r) for r in (1, 2, 3)]
    torch.testing.assert_close(points[-1].loss, 5.7)
    assert read_progress(old, seed=1, label=label)[0].uploaded is None
    with pytest.raises(PartialLogError, match="no progress"):
        read_progress(text, seed=0, label=label)
    with pytest.raises(PartialLogError, match="consecutive"):
        read_progress("\n".join([lines[0], lines[2]]), seed=1, label=label)

    net = partial_network(points, rounds=2, initial=(0, 7.5), miners=4, artifact_bytes=1e9)
    assert net["curve"] == {"tokens": [0, 40960, 81920], "loss": [7.5, 5.9, 5.8]} and net["partial"]
    assert net["uploaded_bytes_per_miner"] == {u: 2 * 13_900 for u in range(4)}  # the log's count, not the guess
    guessed = partial_network(read_progress(old, seed=1, label=label), rounds=1, initial=(0, 7.5), miners=4,
                              artifact_bytes=13_000.0)
    assert guessed["uploaded_bytes_per_miner"][0] == 13_000.0 and "one signed artifact" in guessed["upload_source"]
    with pytest.raises(PartialLogError, match="asked for 4"):
        partial_network(points, rounds=4, initial=(0, 7.5), miners=4, artifact_bytes=1.0)


def test_from_logs_truncates_every_seed_to_the_rounds_all_reached(tmp_path: Path) -> None:
    import json
    from dataclasses import replace

    from convergence_partial import format_progress
    from convergence_sim import Gates, Setup

    from subnet.node.config import NETWORK_SCORE

    net = convergence.deployed(3)
    setup = Setup(preset="tiny", miners=4, batch=8, pages_per_miner=16, heldout_per_window=8,
                  train=replace(TrainConfig(), batch_size=8), score=NETWORK_SCORE,
                  gates=Gates(norm_outlier=3.0, min_score=0.0), eval_pages=(0, 1), eval_batch=2,
                  central_eval_every=10)
    cache = tmp_path / "cc"
    cache.mkdir()
    tokens = 10 * 4096
    for seed in (0, 1):
        central = {"curve": {"tokens": [0, tokens, 2 * tokens, 3 * tokens], "loss": [8.0, 6.0, 5.0, 4.5]}}
        convergence.central_path(cache, setup, seed, net).write_text(json.dumps(central))
    logs = []
    for seed, rounds in ((0, 3), (1, 2)):  # seed 1 was killed after round 2
        log = tmp_path / f"s{seed}.log"
        log.write_text("\n".join(format_progress(seed=seed, label=net.label(), round=r, tokens=r * tokens,
                                                 loss=7.0 - r, kept=4, uploaded=4 * 14_000 * r, seconds=r)
                                 for r in range(1, rounds + 1)))
        logs.append(log)
    results = {"config": {"steps": net.steps}, "main": {"runs": []}}
    convergence.from_logs(logs, [0, 1], cache, setup, net, 1_000, results)
    assert results["partial"]["rounds_done"] == 2 and results["config"]["steps"] == 20
    for run in results["main"]["runs"]:
        s = run["summary"]
        torch.testing.assert_close(s["loss_ratio"], 5.0 / 5.0)  # round 2: 7 - 2 = 5 vs centralized 5.0
        assert s["upload_reduction_vs_ddp_fp32"] == 4 * 1_000 * 20 / (2 * 14_000)
    with pytest.raises(SystemExit, match="in 0 logs"):
        convergence.from_logs(logs, [0, 2], cache, setup, net, 1_000, {"config": {}, "main": {"runs": []}})


def test_a_sweep_row_cut_short_is_set_against_the_centralized_curve_at_the_tokens_it_reached(tmp_path: Path) -> None:
    from convergence_partial import format_progress

    row = convergence.parse_row("topk=128", convergence.deployed(100))
    log = tmp_path / "row.log"
    log.write_text("\n".join(format_progress(seed=0, label=row.label(), round=r, tokens=r * 40960, loss=7.0 - r,
                                             kept=2, uploaded=4 * 23_000 * r, seconds=r) for r in (1, 2)))
    central = {"curve": {"tokens": [0, 40960, 81920, 122880], "loss": [8.0, 6.0, 4.0, 3.0]}}
    (got,) = convergence.partial_rows([log], [row], 0, central, 1_000, 4, "tiny")
    assert "partial: 2 of 100 rounds" in got["label"] and got["network"]["rounds_done"] == 2
    torch.testing.assert_close(got["summary"]["loss_ratio"], 5.0 / 4.0)  # round 2, not the centralized end
    assert got["summary"]["upload_reduction_vs_ddp_fp32"] == 4 * 1_000 * 20 / (2 * 23_000)
    with pytest.raises(SystemExit, match="in 0 logs"):
        convergence.partial_rows([log], [row], 1, central, 1_000, 4, "tiny")
