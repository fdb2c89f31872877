"""A miner on 2 torchrun-style ranks (gloo, CPU): same artifact as 1 rank, and failures skip together.

The ranks are real processes joined through env:// on a free port, each run
with a timeout: spawned by torch.multiprocessing with the environment torchrun
sets, and once under torchrun itself (its agent hosts the store);
rank 0 runs subnet.miner.distributed.DistributedTrainer (what the miner's rank
0 runs), rank 1 runs `serve` (what a worker rank runs).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from harness.ddp_ranks import FRAGMENT, WINDOWS, ddp_cfg, ddp_pages, spawned_rank
from safetensors.torch import load_file

from subnet.codec.config import CodecConfig
from subnet.codec.sparseloco import Encoder, decode
from subnet.miner.distributed import shard_batches
from subnet.miner.train import inner_train
from subnet.model.fragments import fragment_shapes, partition
from subnet.model.presets import build_model

ROOT = Path(__file__).resolve().parents[1]
PG_TOLERANCE = 1e-5
"""Max |2-rank - 1-rank| of any pseudo-gradient entry, relative to the tensor's largest entry."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_ranks(tmp_path: Path, *, fail_rank: int = -1, fail_on: int = 0, timeout: float = 120) -> list[dict]:
    port = _free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=spawned_rank, args=(r, 2, port, str(tmp_path), fail_rank, fail_on)) for r in range(2)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
        p.join(5)
    assert not alive, f"ranks still running after {timeout}s: a hang"
    assert [p.exitcode for p in procs] == [0, 0]
    return [json.loads((tmp_path / f"report{r}.json").read_text()) for r in range(2)]


def _one_rank(windows=WINDOWS, skip=()):
    """The same windows on one process, the global batch in two micro-batch halves."""
    from subnet.miner.train import TrainRuntime

    torch.set_num_threads(1)
    model = build_model("tiny", seed=0)
    frags = partition(model, 2)
    pages, cfg = ddp_pages(), ddp_cfg()
    state, step, out = None, 0, {}
    for w, idx in windows:
        if w in skip:
            continue
        res = inner_train(model, frags[FRAGMENT], shard_batches(pages, idx, cfg.batch_size, cfg.inner_steps), cfg,
                          state, start_step=step, runtime=TrainRuntime(micro_batch_size=cfg.batch_size // 2))
        state, step = res.optimizer_state, res.stats.end_step
        out[w] = res
    return model, frags, out


def _rel_err(a: dict, b: dict) -> float:
    return max(float((a[n] - b[n]).abs().max()) / max(float(b[n].abs().max()), 1e-30) for n in b)


@pytest.mark.slow
def test_two_ranks_upload_what_one_rank_uploads(tmp_path: Path) -> None:
    reports = _run_ranks(tmp_path)
    assert reports[0]["trained"] == [0, 1] and reports[1]["trained"] == [0, 1]
    model, frags, solo = _one_rank()
    shapes = fragment_shapes(model, frags[FRAGMENT])
    codec = CodecConfig()
    enc2, enc1 = Encoder(shapes, codec), Encoder(shapes, codec)
    for w, _ in WINDOWS:
        two = load_file(str(tmp_path / f"rank0_w{w}.safetensors"))
        one = solo[w].pseudo_grad
        assert set(two) == set(one)
        assert _rel_err(two, one) <= PG_TOLERANCE
        assert reports[0][f"losses_{w}"] == pytest.approx(list(solo[w].stats.losses), rel=1e-6)
        # the artifact payload: the same top-k indices, values within the tolerance after decoding
        d2, d1 = decode(enc2.encode(two), shapes), decode(enc1.encode(one), shapes)
        for n in d1:
            assert torch.equal(d2[n] != 0, d1[n] != 0), n
        assert _rel_err(d2, d1) <= PG_TOLERANCE


@pytest.mark.slow
def test_a_failure_on_one_rank_skips_the_window_on_both(tmp_path: Path) -> None:
    t0 = time.monotonic()
    reports = _run_ranks(tmp_path, fail_rank=1, fail_on=2, timeout=90)  # rank 1's 2nd page read of window 0
    assert time.monotonic() - t0 < 90
    assert reports[0]["aborted"] == [0] and reports[1]["aborted"] == [0]
    assert reports[0]["trained"] == [1] and reports[1]["trained"] == [1]
    assert "rank" in reports[0]["error"] and "every rank skips" in reports[0]["error"]
    # the skipped window left no trace: window 1 is what a fresh 1-rank miner makes of it
    _, _, solo = _one_rank(skip=(0,))
    two = load_file(str(tmp_path / "rank0_w1.safetensors"))
    assert _rel_err(two, solo[1].pseudo_grad) <= PG_TOLERANCE


@pytest.mark.slow
def test_under_torchrun_itself(tmp_path: Path) -> None:
    """The same two ranks launched by torchrun (agent-hosted store, its environment)."""
    port = _free_port()
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                          f"--master_port={port}", "--max_restarts=0",
                          str(ROOT / "validator_tests/harness/ddp_ranks.py"),
                          str(tmp_path), "-1", "0"], capture_output=True, text=True, timeout=180, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    reports = [json.loads((tmp_path / f"report{r}.json").read_text()) for r in range(2)]
    assert reports[0]["trained"] == [0, 1] and reports[1]["trained"] == [0, 1]
    _, _, solo = _one_rank()
    assert _rel_err(load_file(str(tmp_path / "rank0_w1.safetensors")), solo[1].pseudo_grad) <= PG_TOLERANCE
