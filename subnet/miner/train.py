"""The miner's inner loop: H AdamW steps on one fragment, returned as a pseudo-gradient.

The miner holds the network's global model (fp32, on the host). Per window it
trains only its assigned fragment (every other parameter frozen, with no
gradient buffers or optimizer state) on a device replica of it
(subnet.device.consensus.DeviceReplica; the host model itself on a CPU node),
measures pseudo_grad = start - end on that fragment in fp32, and then puts the
fragment's parameters back to `start`: the global model only moves when a
manifest is applied (subnet.sync), so the miner stays bitwise in sync with
validators and other miners, and its next window starts from the same version
everyone else holds.

Speed knobs (`TrainRuntime`, from `--device` / `--compute.*`) never change
what a step means: autocast (bf16 on CUDA) only around forward passes, fp32
master weights and AdamW moments on the device; micro-batches accumulate to
the full `batch_size` step; under torchrun each rank takes an equal share of
the step's pages and the fragment's gradients are summed across ranks before
clipping (subnet.miner.distributed), so one step is the same step on 1 or K
ranks up to float summation order.

Collective decisions: with several ranks every step first runs locally (data,
forward, backward), then all ranks agree on one status with an all-reduce
(`Collective.agree`) before any gradient is exchanged: a rank that failed
makes every rank abort the window together (`WindowAborted`), and no rank is
ever left inside a collective the others will not join.

Optimizer state is keyed by parameter name (not by torch's param index) so it
survives a change of fragment between windows and persists as safetensors
(miner/state.py). The learning rate warms up linearly over `warmup_steps`
inner steps counted across windows (the count is persisted too), then stays
at `lr`: training is open-ended, so there is no decay horizon.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from loguru import logger
from torch import nn

from subnet.data.pages import inputs_targets
from subnet.device.precision import autocast
from subnet.errors import ModelError
from subnet.miner.config import TrainConfig
from subnet.model.fragments import Fragment, trainable_parameters


class TrainingError(ModelError):
    """Inner training produced a non-finite loss or gradient; nothing should be uploaded."""


class WindowAborted(TrainingError):
    """A rank failed during the window; every rank stops it together and nothing is uploaded."""


class StopRequested(Exception):  # noqa: N818 - a request, not an error: the operator stopped the miner
    """SIGTERM/SIGINT arrived between inner steps: the window is abandoned (nothing uploaded, not marked done)."""


def stop_between_steps(batches: Iterator[torch.Tensor], should_stop: Callable[[], bool]) -> Iterator[torch.Tensor]:
    """`batches`, but raising StopRequested before the next step once `should_stop()` is true.

    Why: a window of inner steps can take minutes on a real model; an operator's
    `systemctl stop` (or a test's teardown) should not wait for it, and
    `inner_train` restores the model exactly when its data source raises.
    """
    for batch in batches:
        if should_stop():
            raise StopRequested("stop requested between inner steps")
        yield batch


class StepStatus(IntEnum):
    """What a rank reports after the local part of a step; the all-reduce takes the maximum."""

    OK = 0
    DATA_ENDED = 1
    FAILED = 2


class Collective(Protocol):
    """What inner training needs from the ranks it trains with (subnet.miner.distributed)."""

    rank: int
    world_size: int

    def agree(self, status: StepStatus) -> StepStatus:
        """The worst status over all ranks (every rank gets the same answer)."""

    def sum_(self, tensors: list[torch.Tensor]) -> None:
        """In-place sum of each tensor over all ranks."""


class Solo:
    """One process: every collective is the identity."""

    rank = 0
    world_size = 1

    def agree(self, status: StepStatus) -> StepStatus:
        return status

    def sum_(self, tensors: list[torch.Tensor]) -> None:
        return None


SOLO = Solo()


@dataclass(frozen=True, kw_only=True)
class TrainRuntime:
    """Where and how inner training runs (subnet.device); the default is the CPU in fp32, one process."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    autocast_dtype: torch.dtype | None = None
    """Autocast dtype of the forward passes; None: fp32."""
    micro_batch_size: int = 0
    """Pages per forward/backward (0: the whole local batch)."""
    collective: Collective = SOLO
    forward: nn.Module | None = None
    """A compiled wrapper of the model to run forward passes through (torch.compile); None: the model."""


@dataclass(kw_only=True)
class AdamState:
    """AdamW moments and step counts by parameter name (any fragment); moments fp32 on the training device."""

    step: dict[str, int] = field(default_factory=dict)
    exp_avg: dict[str, torch.Tensor] = field(default_factory=dict)
    exp_avg_sq: dict[str, torch.Tensor] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.step)


@dataclass(frozen=True, kw_only=True)
class TrainStats:
    """What one window of inner training did."""

    losses: tuple[float, ...]
    """Training loss of each inner step (mean over the global batch), measured before that step's update."""
    grad_norms: tuple[float, ...]
    """Fragment gradient norm of each step, before clipping."""
    start_step: int
    end_step: int
    """Global inner-step count after this window (persist it for the warm-up)."""
    last_lr: float
    tokens: int
    """Tokens this rank trained on (all ranks together: tokens x world size)."""
    seconds: float

    @property
    def steps(self) -> int:
        return self.end_step - self.start_step


class InnerResult(NamedTuple):
    pseudo_grad: dict[str, torch.Tensor]
    """fp32 on the host, by parameter name."""
    optimizer_state: AdamState
    stats: TrainStats


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from lr/warmup_steps to lr over the first `warmup_steps` steps, then flat."""
    if cfg.warmup_steps <= 0:
        return cfg.lr
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)


def lm_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) of [B, page_len] pages, computed in fp32."""
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
            # a copy: a window that fails half-way must leave the caller's state untouched
            "exp_avg": ea.to(device=p.device, dtype=p.dtype).clone(),
            "exp_avg_sq": eas.to(device=p.device, dtype=p.dtype).clone(),
        }


def _export(opt: torch.optim.Optimizer, params: dict[str, nn.Parameter], previous: AdamState) -> AdamState:
    """The moments stay where they were trained (the device); MinerState moves them to the host to save."""
    out = AdamState(step=dict(previous.step), exp_avg=dict(previous.exp_avg), exp_avg_sq=dict(previous.exp_avg_sq))
    for name, p in params.items():
        st = opt.state.get(p)
        if not st:
            continue
        out.step[name] = int(float(st["step"]))
        out.exp_avg[name] = st["exp_avg"].detach().to(torch.float32)
        out.exp_avg_sq[name] = st["exp_avg_sq"].detach().to(torch.float32)
    return out


def _micro(batch: torch.Tensor, size: int) -> list[torch.Tensor]:
    if size <= 0 or size >= batch.shape[0]:
        return [batch]
    return list(batch.split(size, dim=0))


def _local_step(model: nn.Module, run: TrainRuntime, batch: torch.Tensor) -> float:
    """Forward/backward of this rank's pages, gradients accumulated; returns its share of the global mean loss."""
    batch = batch.to(run.device, non_blocking=True)
    global_pages = batch.shape[0] * run.collective.world_size  # every rank holds an equal share
    fwd = run.forward if run.forward is not None else model
    share = 0.0
    for mb in _micro(batch, run.micro_batch_size):
        with autocast(run.device, run.autocast_dtype):
            loss = lm_loss(fwd, mb)
        if not torch.isfinite(loss.detach()):
            raise TrainingError("non-finite training loss")
        weight = mb.shape[0] / global_pages  # pages are equally long: a page-weighted mean is the token mean
        (loss * weight).backward()
        share += float(loss.detach()) * weight
    return share


def inner_train(
    model: nn.Module,
    fragment: Fragment,
    batches: Iterator[torch.Tensor],
    cfg: TrainConfig,
    optimizer_state: AdamState | None = None,
    *,
    start_step: int = 0,
    runtime: TrainRuntime | None = None,
) -> InnerResult:
    """Run up to `cfg.inner_steps` AdamW steps on `fragment`; return (pseudo_grad, state, stats).

    `batches` yields this rank's LongTensor[b, page_len] pages of each step
    (b = batch_size / world size); if it runs out early the window ends with
    fewer steps (logged). `model` lives on `runtime.device`. On return the
    model's parameters, requires_grad flags and train/eval mode are exactly
    as on entry, also when training fails: TrainingError on a non-finite loss
    or gradient, WindowAborted when any rank of several failed, and, with one
    rank, the data source's own exception.
    """
    run = runtime or TrainRuntime()
    coll = run.collective
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
    ordered = list(params.values())
    losses: list[float] = []
    norms: list[float] = []
    tokens = 0
    lr = lr_at(start_step, cfg)
    t0 = time.perf_counter()
    try:
        model.train()
        for i in range(cfg.inner_steps):
            lr = lr_at(start_step + i, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            status, failure, share, batch = StepStatus.OK, None, 0.0, None
            try:  # the local part: nothing in here talks to another rank
                batch = next(batches, None)
                if batch is None:
                    status = StepStatus.DATA_ENDED
                else:
                    share = _local_step(model, run, batch)
            except Exception as exc:  # noqa: BLE001 - reported to every rank, then raised below
                status, failure = StepStatus.FAILED, exc
            agreed = coll.agree(status)
            if agreed is StepStatus.FAILED:
                if coll.world_size == 1 and failure is not None:
                    raise failure  # one process: the caller sees the error itself, as before
                where = f"rank {coll.rank}: {type(failure).__name__}: {failure}" if failure else "another rank failed"
                raise WindowAborted(f"inner step {i} failed ({where}); every rank skips this window") from failure
            if agreed is StepStatus.DATA_ENDED:
                logger.warning("data ran out after {} of {} inner steps", i, cfg.inner_steps)
                break
            if coll.world_size > 1:  # every rank must sum the same list of tensors
                for p in ordered:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
            grads = [p.grad for p in ordered if p.grad is not None]
            loss_t = torch.tensor([share], dtype=torch.float64, device=run.device)
            coll.sum_(grads + [loss_t])
            norm = torch.nn.utils.clip_grad_norm_(ordered, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            if not torch.isfinite(norm):  # the same summed gradients on every rank: all raise together
                raise TrainingError(f"non-finite gradient norm at inner step {i}")
            opt.step()
            losses.append(float(loss_t))
            norms.append(float(norm))
            tokens += batch[:, 1:].numel()
        with torch.no_grad():
            pseudo_grad = {n: (start[n] - p.detach()).to("cpu", torch.float32) for n, p in params.items()}
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
    if losses and coll.rank == 0:
        logger.info("fragment {}: {} inner steps, loss {:.4f} -> {:.4f}, lr {:.2e}, {:.1f}s on {}{}", fragment.index,
                    stats.steps, losses[0], losses[-1], lr, stats.seconds, run.device,
                    f" x{coll.world_size} ranks" if coll.world_size > 1 else "")
    return InnerResult(pseudo_grad, new_state, stats)


def prepare_training(model: nn.Module, device: torch.device, autocast_dtype: torch.dtype | None, compute: object,
                     *, collective: Collective = SOLO) -> TrainRuntime:
    """The TrainRuntime for a device replica: activation checkpointing and torch.compile as `compute` says.

    `compute` is a subnet.device.config.DeviceConfig. Checkpointing 'auto' turns on for models of 1e9
    parameters or more on an accelerator (where activations, not weights, fill the memory).
    """
    n_params = sum(p.numel() for p in model.parameters())
    mode = getattr(compute, "checkpointing", "off")
    ckpt = mode == "on" or (mode == "auto" and device.type != "cpu" and n_params >= 1_000_000_000)
    if ckpt:
        # non-reentrant: works with frozen inputs (only one fragment trains) and with several ranks
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    forward = None
    if getattr(compute, "compile", False):
        forward = torch.compile(model, backend=getattr(compute, "compile_backend", "inductor"))
    attn = getattr(getattr(model, "config", None), "_attn_implementation", "?")
    logger.info("inner loop on {}: autocast {}, micro-batch {}, checkpointing {}, compile {}, attention {}",
                device, str(autocast_dtype).replace("torch.", "") if autocast_dtype else "off (fp32)",
                getattr(compute, "micro_batch_size", 0) or "whole batch", "on" if ckpt else "off",
                getattr(compute, "compile_backend", "-") if forward is not None else "off", attn)
    return TrainRuntime(device=device, autocast_dtype=autocast_dtype,
                        micro_batch_size=int(getattr(compute, "micro_batch_size", 0)), collective=collective,
                        forward=forward)
