"""The miner's inner loop: H AdamW steps on one fragment, returned as a pseudo-gradient.

The miner holds the network's global model. Per window it trains only its
assigned fragment (every other parameter frozen, with no gradient buffers or
optimizer state), measures pseudo_grad = start - end on that fragment, and
then puts the fragment's parameters back to `start`: the global model only
moves when a manifest is applied (subnet.sync), so the miner stays bitwise in
sync with validators and other miners, and its next window starts from the
same version everyone else holds.

Optimizer state is keyed by parameter name (not by torch's param index) so it
survives a change of fragment between windows and persists as safetensors
(miner/state.py). The learning rate warms up linearly over `warmup_steps`
inner steps counted across windows (the count is persisted too), then stays
at `lr`: training is open-ended, so there is no decay horizon.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from loguru import logger
from torch import nn

from subnet.config import TrainConfig
from subnet.data.pages import inputs_targets
from subnet.errors import ModelError
from subnet.model.fragments import Fragment, trainable_parameters


class TrainingError(ModelError):
    """Inner training produced a non-finite loss or gradient; nothing should be uploaded."""


@dataclass(kw_only=True)
class AdamState:
    """AdamW moments and step counts by parameter name (any fragment)."""

    step: dict[str, int] = field(default_factory=dict)
    exp_avg: dict[str, torch.Tensor] = field(default_factory=dict)
    exp_avg_sq: dict[str, torch.Tensor] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.step)


@dataclass(frozen=True, kw_only=True)
class TrainStats:
    """What one window of inner training did."""

    losses: tuple[float, ...]
    """Training loss of each inner step, measured before that step's update."""
    grad_norms: tuple[float, ...]
    """Fragment gradient norm of each step, before clipping."""
    start_step: int
    end_step: int
    """Global inner-step count after this window (persist it for the warm-up)."""
    last_lr: float
    tokens: int
    seconds: float

    @property
    def steps(self) -> int:
        return self.end_step - self.start_step


class InnerResult(NamedTuple):
    pseudo_grad: dict[str, torch.Tensor]
    optimizer_state: AdamState
    stats: TrainStats


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from lr/warmup_steps to lr over the first `warmup_steps` steps, then flat."""
    if cfg.warmup_steps <= 0:
        return cfg.lr
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)


def lm_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) of [B, page_len] pages."""
    inputs, targets = inputs_targets(batch)
    logits = model(input_ids=inputs).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def _load_into(opt: torch.optim.Optimizer, params: dict[str, nn.Parameter], state: AdamState) -> None:
    for name, p in params.items():
        if name not in state.step:
            continue
        ea, eas = state.exp_avg[name], state.exp_avg_sq[name]
        if ea.shape != p.shape or eas.shape != p.shape:
            logger.warning("optimizer state for {} has the wrong shape; starting it fresh", name)
            continue
        opt.state[p] = {
            "step": torch.tensor(float(state.step[name])),
            "exp_avg": ea.to(device=p.device, dtype=p.dtype).clone(),
            "exp_avg_sq": eas.to(device=p.device, dtype=p.dtype).clone(),
        }


def _export(opt: torch.optim.Optimizer, params: dict[str, nn.Parameter], previous: AdamState) -> AdamState:
    out = AdamState(step=dict(previous.step), exp_avg=dict(previous.exp_avg), exp_avg_sq=dict(previous.exp_avg_sq))
    for name, p in params.items():
        st = opt.state.get(p)
        if not st:
            continue
        out.step[name] = int(float(st["step"]))
        out.exp_avg[name] = st["exp_avg"].detach().to("cpu", torch.float32).clone()
        out.exp_avg_sq[name] = st["exp_avg_sq"].detach().to("cpu", torch.float32).clone()
    return out


def inner_train(
    model: nn.Module,
    fragment: Fragment,
    batches: Iterator[torch.Tensor],
    cfg: TrainConfig,
    optimizer_state: AdamState | None = None,
    *,
    start_step: int = 0,
) -> InnerResult:
    """Run up to `cfg.inner_steps` AdamW steps on `fragment`; return (pseudo_grad, state, stats).

    `batches` yields LongTensor[B, page_len] pages; if it runs out early the
    window ends with fewer steps (logged). On return the model's parameters,
    requires_grad flags and train/eval mode are exactly as on entry, also
    when training fails (TrainingError on a non-finite loss or gradient).
    """
    params = trainable_parameters(model, fragment)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    start = {n: p.detach().clone() for n, p in params.items()}
    prev_state = optimizer_state or AdamState()
    for n, p in model.named_parameters():
        p.requires_grad_(n in params)
    decay = [p for p in params.values() if p.ndim >= 2]  # matrices decay; norms and biases do not
    no_decay = [p for p in params.values() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
    )
    _load_into(opt, params, prev_state)
    losses: list[float] = []
    norms: list[float] = []
    tokens = 0
    lr = lr_at(start_step, cfg)
    t0 = time.perf_counter()
    try:
        model.train()
        for i in range(cfg.inner_steps):
            batch = next(batches, None)
            if batch is None:
                logger.warning("data ran out after {} of {} inner steps", i, cfg.inner_steps)
                break
            lr = lr_at(start_step + i, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = lm_loss(model, batch)
            if not torch.isfinite(loss.detach()):
                raise TrainingError(f"non-finite training loss at inner step {i}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p for p in params.values() if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(grads, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            if not torch.isfinite(norm):
                raise TrainingError(f"non-finite gradient norm at inner step {i}")
            opt.step()
            losses.append(float(loss.detach()))
            norms.append(float(norm))
            tokens += batch[:, 1:].numel()
        with torch.no_grad():
            pseudo_grad = {n: (start[n] - p.detach()).to(torch.float32) for n, p in params.items()}
        new_state = _export(opt, params, prev_state)
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(start[n])  # the global model only moves through manifests
                p.grad = None
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
        model.train(was_training)
    stats = TrainStats(losses=tuple(losses), grad_norms=tuple(norms), start_step=start_step,
                       end_step=start_step + len(losses), last_lr=lr, tokens=tokens,
                       seconds=time.perf_counter() - t0)
    if losses:
        logger.info("fragment {}: {} inner steps, loss {:.4f} -> {:.4f}, lr {:.2e}, {:.1f}s", fragment.index,
                    stats.steps, losses[0], losses[-1], lr, stats.seconds)
    return InnerResult(pseudo_grad, new_state, stats)
