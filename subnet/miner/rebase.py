"""Inner training that rebases onto a newer global model when it lands mid-window (issue 12).

In the live timeline a miner starts window `w` on the version before manifest
`w-1`, which the lead publishes part-way through `w`. Trained through, the
miner's pseudo-gradient is one version stale: the validator scores it on the
newer model, where it shows less improvement, and aggregation applies it
there. Rebasing keeps the miner's progress and moves its base instead:

    local += new_global - old_global     (AdamW moments kept)

so its pseudo-gradient is taken against the newest global, the version the
validator scores on and aggregation applies to (the artifact names that base).

`train_rebasing` is the one implementation: the miner loop (subnet/miner/loop.py)
and the convergence bench (bench/convergence_sim.py) both call it, and differ
only in `newer`, the callback that brings the model to the newest version
(the loop: follow the lead's store; the bench: load the simulated newest version).

Mechanics: training runs in segments of `check_every` steps through `inner_train`,
which returns each segment's pseudo-gradient and restores the model to its start.
Between segments the model therefore holds the global version exactly (on the
CPU the training model is the host's consensus copy), so `newer` may apply a
manifest to it; the next segment starts from `global - accumulated` (the rebased
local weights) and the global's own bytes are copied back afterwards, so the
consensus copy is never touched by training. Once rebased (or with no `newer`),
the rest of the window is one segment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
from loguru import logger
from torch import nn

from subnet.miner.config import TrainConfig
from subnet.miner.train import AdamState, InnerResult, TrainRuntime, TrainStats, inner_train
from subnet.model.fragments import Fragment, trainable_parameters

Newer = Callable[[], bool]
"""Bring the model (between segments, holding the global version) to the newest version; True if it moved."""


@dataclass(frozen=True, kw_only=True)
class RebaseResult:
    """What `train_rebasing` did: the window's InnerResult and where (if anywhere) it rebased."""

    result: InnerResult
    rebased_after: int | None
    """Inner steps done on the old base before the rebase (None: trained on one base throughout)."""
    polls: int
    """Calls of `newer` (the store reads the loop paid for)."""


def train_rebasing(model: nn.Module, fragment: Fragment, batches: Iterator[torch.Tensor], cfg: TrainConfig,
                   optimizer_state: AdamState | None = None, *, start_step: int = 0, check_every: int = 0,
                   newer: Newer | None = None, runtime: TrainRuntime | None = None) -> RebaseResult:
    """`cfg.inner_steps` AdamW steps on `fragment`, rebasing once onto what `newer` brings.

    `check_every` = 0 or `newer` None: exactly `inner_train` (one segment). Otherwise `newer`
    is called after every `check_every` steps until it returns True (at most once per window:
    the miner waits for one manifest, w-1). The pseudo-gradient is against the model's version
    at return. The model's parameters are the (possibly newer) global version on return.
    """
    if newer is None or check_every <= 0 or check_every >= cfg.inner_steps:
        return RebaseResult(result=inner_train(model, fragment, batches, cfg, optimizer_state,
                                               start_step=start_step, runtime=runtime),
                            rebased_after=None, polls=0)
    params = trainable_parameters(model, fragment)
    acc: dict[str, torch.Tensor] | None = None  # pseudo-gradient so far (host fp32): local = global - acc
    state = optimizer_state
    step, done, polls = start_step, 0, 0
    rebased_after: int | None = None
    losses: list[float] = []
    norms: list[float] = []
    tokens, seconds, last_lr = 0, 0.0, 0.0
    t0 = time.perf_counter()
    while done < cfg.inner_steps:
        seg = cfg.inner_steps - done if rebased_after is not None else min(check_every, cfg.inner_steps - done)
        res = _segment(model, params, fragment, batches, replace(cfg, inner_steps=seg), state, step, acc, runtime)
        acc = res.pseudo_grad if acc is None else {n: acc[n] + g for n, g in res.pseudo_grad.items()}
        state, step = res.optimizer_state, res.stats.end_step
        done += res.stats.steps
        losses += res.stats.losses
        norms += res.stats.grad_norms
        tokens += res.stats.tokens
        seconds += res.stats.seconds
        last_lr = res.stats.last_lr
        if res.stats.steps < seg:  # the data ran out (inner_train logged it)
            break
        if rebased_after is None and done < cfg.inner_steps:
            polls += 1
            if newer():
                rebased_after = done
                logger.info("fragment {}: rebased onto the newest global after {} of {} inner steps",
                            fragment.index, done, cfg.inner_steps)
    assert acc is not None and state is not None
    stats = TrainStats(losses=tuple(losses), grad_norms=tuple(norms), start_step=start_step, end_step=step,
                       last_lr=last_lr, tokens=tokens, seconds=max(seconds, time.perf_counter() - t0))
    return RebaseResult(result=InnerResult(acc, state, stats), rebased_after=rebased_after, polls=polls)


def _segment(model: nn.Module, params: dict[str, nn.Parameter], fragment: Fragment, batches: Iterator[torch.Tensor],
             cfg: TrainConfig, state: AdamState | None, step: int, acc: dict[str, torch.Tensor] | None,
             runtime: TrainRuntime | None) -> InnerResult:
    """One inner_train call from `global - acc`; the global's exact bytes are restored afterwards."""
    if acc is None:
        return inner_train(model, fragment, batches, cfg, state, start_step=step, runtime=runtime)
    saved = {n: p.detach().clone() for n, p in params.items()}
    try:
        with torch.no_grad():
            for n, p in params.items():
                p.sub_(acc[n].to(p.device, p.dtype))
        return inner_train(model, fragment, batches, cfg, state, start_step=step, runtime=runtime)
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])
