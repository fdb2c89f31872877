"""The two ranks of test_miner_ddp: rank 0 runs DistributedTrainer (the miner's rank 0), others `serve`.

Run as a process target (torch.multiprocessing) or under torchrun itself:
    python -m torch.distributed.run --nproc_per_node=2 validator_tests/harness/ddp_ranks.py OUT FAIL_RANK FAIL_ON
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from subnet.data.pages import TokenPages
from subnet.miner.config import TrainConfig
from subnet.model.fragments import partition
from subnet.model.presets import build_model

DDP_PAGE_LEN = 33
WINDOWS = ((0, (0, 1, 2, 3, 4, 5, 6, 7)), (1, (8, 9, 10, 11, 12, 13, 14, 15)))  # (window, assigned pages)
FRAGMENT = 1
PG_TOLERANCE = 1e-5
"""Max |2-rank - 1-rank| of any pseudo-gradient entry, relative to the tensor's largest entry."""


def ddp_pages() -> TokenPages:
    rng = np.random.default_rng(1)
    starts = rng.integers(0, 211, size=300)
    tokens = np.concatenate([(s + 5 * np.arange(40)) % 211 for s in starts]).astype(np.uint16)
    return TokenPages(tokens, page_len=DDP_PAGE_LEN, heldout_fraction=0.1)


def ddp_cfg() -> TrainConfig:
    return TrainConfig(inner_steps=3, lr=3e-3, batch_size=4, warmup_steps=2, weight_decay=0.1)


class FailingPages:
    """An injected fault: this rank's page reads fail on the `fail_on`-th batch call."""

    def __init__(self, pages: TokenPages, fail_on: int) -> None:
        self.pages, self.fail_on, self.calls = pages, fail_on, 0

    def batch(self, indices, split="train"):
        self.calls += 1
        if self.calls == self.fail_on:
            raise OSError("injected: shard read failed")
        return self.pages.batch(indices, split)


def spawned_rank(rank: int, world: int, port: int, out: str, fail_rank: int, fail_on: int) -> None:
    """torch.multiprocessing target: the environment torchrun would give, then `rank_main`."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    rank_main(out, fail_rank, fail_on)


def rank_main(out: str, fail_rank: int, fail_on: int) -> None:
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    from subnet.miner.distributed import DistCollective, DistContext, DistributedTrainer, serve
    from subnet.miner.train import TrainRuntime, WindowAborted

    ctx = DistContext(timeout_s=30, device=torch.device("cpu"))
    run = TrainRuntime(collective=DistCollective(ctx))
    model = build_model("tiny", seed=0)
    frags = partition(model, 2)
    pages = ddp_pages()
    src = FailingPages(pages, fail_on) if rank == fail_rank else pages
    cfg = ddp_cfg()
    report: dict = {"rank": rank, "trained": [], "aborted": []}
    t0 = time.monotonic()
    if rank == 0:
        trainer = DistributedTrainer(ctx, run)
        state, step = None, 0
        for w, idx in WINDOWS:
            try:
                res = trainer.train(model, frags[FRAGMENT], src, idx, cfg, state, window=w, start_step=step)
            except WindowAborted as exc:
                report["aborted"].append(w)
                report["error"] = str(exc)
                continue
            state, step = res.optimizer_state, res.stats.end_step
            save_file({k: v.contiguous() for k, v in res.pseudo_grad.items()}, f"{out}/rank0_w{w}.safetensors")
            report["trained"].append(w)
            report[f"losses_{w}"] = list(res.stats.losses)
        trainer.stop()
    else:
        rep = serve(ctx, model, frags, src, cfg, run)
        report["trained"], report["aborted"] = rep.trained, rep.aborted
    report["seconds"] = time.monotonic() - t0
    ctx.close()
    Path(f"{out}/report{rank}.json").write_text(json.dumps(report))




if __name__ == "__main__":
    rank_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
