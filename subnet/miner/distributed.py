"""A miner on several local GPUs: `torchrun --nproc_per_node=K neurons/miner.py ...`, data-parallel.

Roles. Rank 0 is the miner: it alone holds the wallet, talks to the chain,
follows the lead, reads and writes the store and persists state (it runs the
ordinary `Miner` loop). Ranks 1..K-1 are workers: they build the same model
and page source, then wait for rank 0's plan for each window and train their
share of it. Nothing a worker does reaches the network.

One window. Rank 0 posts a `TrainPlan` (JSON in torchrun's key-value store;
never pickle), then broadcasts the global model's bytes and the fragment's
AdamW moments from its device copy, so every rank starts the window bitwise
equal. Each step every rank trains on an equal share of the step's pages
(`shard_batches`), and inner training (subnet.miner.train) sums the fragment
gradients over ranks before clipping: the same step a single-rank miner takes
on the whole batch, up to float summation order. Rank 0 then encodes and
uploads; the workers' copies of the result are identical and dropped.

Collective decisions, never rank-specific exits: a step's local part (page
fetch, forward, backward) runs first, then one all-reduce of a status makes
every rank continue, end the window early, or abort it together
(`WindowAborted`); only then are gradients exchanged. Every collective runs
in a process group whose timeout is `--compute.dist_timeout_s`, so a rank that
dies or hangs costs the others at most that long before they fail (and
torchrun restarts the group). Between windows workers wait on the store in
short polls, which may last as long as rank 0 needs (a window, a chain
outage) without any collective timing out.

Gradient exchange is an explicit all-reduce of the fragment's gradients after
the agreement, not DDP's backward hooks: hooks overlap communication with the
backward pass, which is exactly what a rank cannot abandon when another has
failed. The cost is one bucketed all-reduce per step, small beside H steps of
compute for a fragment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from loguru import logger
from torch import nn

from subnet.data.source import PageSource
from subnet.errors import ConfigError
from subnet.miner.config import TrainConfig
from subnet.miner.train import AdamState, InnerResult, StepStatus, TrainingError, TrainRuntime, inner_train
from subnet.model.fragments import Fragment

_PLAN_PREFIX = "tessera/plan/"
_POLL = timedelta(seconds=5)


def launched_by_torchrun() -> bool:
    """True when torchrun (or any env:// launcher) started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def shard_batches(pages: PageSource, indices: tuple[int, ...], batch_size: int, steps: int, *,
                  rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
    """`steps` batches of `batch_size` pages drawn round-robin from `indices`; this rank's equal share of each."""
    if batch_size % world_size:
        raise ConfigError(f"--train.batch_size {batch_size} must be a multiple of the {world_size} torchrun ranks")
    idx = list(indices)
    per = batch_size // world_size
    for s in range(steps):
        sel = [idx[(s * batch_size + j) % len(idx)] for j in range(batch_size)]
        yield pages.batch(sel[rank * per:(rank + 1) * per], "train")


@dataclass(frozen=True, kw_only=True)
class TrainPlan:
    """What rank 0 tells the workers for one window (JSON)."""

    seq: int
    op: str  # "train" | "stop"
    window: int = -1
    fragment: int = -1
    pages: tuple[int, ...] = ()
    start_step: int = 0
    adam_steps: dict[str, int] = field(default_factory=dict)
    """AdamW step count of each fragment parameter rank 0 has moments for (broadcast in sorted name order)."""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainPlan:
        raw = json.loads(data.decode())
        return cls(seq=int(raw["seq"]), op=str(raw["op"]), window=int(raw["window"]), fragment=int(raw["fragment"]),
                   pages=tuple(int(p) for p in raw["pages"]), start_step=int(raw["start_step"]),
                   adam_steps={str(k): int(v) for k, v in raw["adam_steps"].items()})


class DistContext:
    """This process's place among the miner's ranks: process group, store, device."""

    def __init__(self, *, timeout_s: float, device: torch.device) -> None:
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.device = device
        timeout = timedelta(seconds=timeout_s)
        store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
        self.store = dist.PrefixStore(_PLAN_PREFIX, store)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, store=dist.PrefixStore("tessera/pg/", store), rank=rank,
                                world_size=world, timeout=timeout)
        logger.info("rank {}/{} (local {}) on {} with {}, collective timeout {:.0f}s", self.rank, self.world_size,
                    self.local_rank, device, backend, timeout_s)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    # -- plans (rank 0 -> workers), through the store: waits may be long, no collective is open ----
    def post(self, plan: TrainPlan) -> None:
        self.store.set(str(plan.seq), plan.to_bytes())
        if plan.seq >= 2:
            try:
                self.store.delete_key(str(plan.seq - 2))  # every worker has read it: it waited for seq-1's broadcast
            except Exception:  # noqa: BLE001 - a store without delete keeps a few hundred bytes per window
                pass

    def wait_plan(self, seq: int, stop: Any = None) -> TrainPlan | None:
        """Rank 0's plan number `seq`; polls the store so an idle rank 0 never trips a timeout."""
        while stop is None or not stop():
            try:
                self.store.wait([str(seq)], _POLL)
            except Exception:  # noqa: BLE001 - DistStoreError on a poll timeout: look again
                continue
            return TrainPlan.from_bytes(self.store.get(str(seq)))
        return None


class DistCollective:
    """The `Collective` of subnet.miner.train over torch.distributed (gloo on CPU, NCCL on CUDA)."""

    def __init__(self, ctx: DistContext) -> None:
        self.ctx = ctx
        self.rank = ctx.rank
        self.world_size = ctx.world_size

    def agree(self, status: StepStatus) -> StepStatus:
        t = torch.tensor([int(status)], dtype=torch.int64, device=self.ctx.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return StepStatus(int(t.item()))

    def sum_(self, tensors: list[torch.Tensor]) -> None:
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = torch.cat([t.reshape(-1) for t in group])  # one all-reduce per dtype
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            for t in group:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()


def _broadcast_start(model: nn.Module, fragment: Fragment, plan: TrainPlan, state: AdamState | None,
                     device: torch.device) -> AdamState:
    """Every rank leaves with rank 0's model bytes and the fragment's AdamW moments (`plan.adam_steps`)."""
    with torch.no_grad():
        for t in model.state_dict(keep_vars=True).values():
            dist.broadcast(t.data, src=0)
    params = dict(model.named_parameters())
    out = AdamState(step=dict(plan.adam_steps))
    for name in sorted(plan.adam_steps):
        for slot, target in (("exp_avg", out.exp_avg), ("exp_avg_sq", out.exp_avg_sq)):
            src = getattr(state, slot).get(name) if state is not None else None
            buf = (src.to(device, torch.float32).clone() if src is not None
                   else torch.zeros_like(params[name], dtype=torch.float32))
            dist.broadcast(buf, src=0)
            target[name] = buf
    return out


class DistributedTrainer:
    """Rank 0's side of one window: post the plan, share the start, train its share with the others."""

    def __init__(self, ctx: DistContext, runtime: TrainRuntime) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.seq = 0

    def train(self, model: nn.Module, fragment: Fragment, pages: PageSource, indices: tuple[int, ...],
              cfg: TrainConfig, state: AdamState | None, *, window: int, start_step: int) -> InnerResult:
        steps = {n: s for n, s in (state.step.items() if state is not None else ()) if n in fragment.param_names}
        plan = TrainPlan(seq=self.seq, op="train", window=window, fragment=fragment.index, pages=tuple(indices),
                         start_step=start_step, adam_steps=steps)
        self.seq += 1
        self.ctx.post(plan)
        start_state = _broadcast_start(model, fragment, plan, state, self.ctx.device)
        merged = _merge(state, start_state)
        batches = shard_batches(pages, plan.pages, cfg.batch_size, cfg.inner_steps, rank=0,
                                world_size=self.ctx.world_size)
        return inner_train(model, fragment, batches, cfg, merged, start_step=start_step, runtime=self.runtime)

    def stop(self) -> None:
        """Tell the workers to exit (rank 0 is stopping)."""
        self.ctx.post(TrainPlan(seq=self.seq, op="stop"))
        self.seq += 1


def _merge(state: AdamState | None, start: AdamState) -> AdamState:
    """Rank 0 keeps its moments for other fragments; the fragment's come from the broadcast (same bytes)."""
    if state is None:
        return start
    return AdamState(step={**state.step, **start.step}, exp_avg={**state.exp_avg, **start.exp_avg},
                     exp_avg_sq={**state.exp_avg_sq, **start.exp_avg_sq})


@dataclass(kw_only=True)
class WorkerReport:
    """What a worker did, window by window (for logs and tests)."""

    trained: list[int] = field(default_factory=list)
    aborted: list[int] = field(default_factory=list)
    results: dict[int, InnerResult] = field(default_factory=dict)


def serve(ctx: DistContext, model: nn.Module, fragments: list[Fragment], pages: PageSource, cfg: TrainConfig,
          runtime: TrainRuntime, *, keep_results: bool = False, stop: Any = None) -> WorkerReport:
    """A worker rank's loop: follow rank 0's plans until it says stop; a failed window is skipped with everyone."""
    report = WorkerReport()
    seq = 0
    while True:
        plan = ctx.wait_plan(seq, stop)
        if plan is None or plan.op == "stop":
            logger.info("rank {}: stop", ctx.rank)
            return report
        seq += 1
        fragment = fragments[plan.fragment]
        state = _broadcast_start(model, fragment, plan, None, ctx.device)
        batches = shard_batches(pages, plan.pages, cfg.batch_size, cfg.inner_steps, rank=ctx.rank,
                                world_size=ctx.world_size)
        try:
            res = inner_train(model, fragment, batches, cfg, state, start_step=plan.start_step, runtime=runtime)
        except TrainingError as exc:  # WindowAborted included: every rank raised it at the same step
            logger.warning("rank {}: window {} skipped: {}", ctx.rank, plan.window, exc)
            report.aborted.append(plan.window)
            continue
        report.trained.append(plan.window)
        if keep_results:
            report.results[plan.window] = res


# -- entry point under torchrun (neurons/miner.py) ------------------------------------------------

def run_ranked_miner(argv: list[str] | None = None) -> int:
    """`torchrun --nproc_per_node=K neurons/miner.py ...`: rank 0 is the miner, the others serve it."""
    from subnet.node.config import MinerNeuronConfig
    from subnet.node.entry import run_neuron

    rank = int(os.environ["RANK"])
    if rank == 0:
        return run_neuron(MinerNeuronConfig, "miner", argv, loop=lambda: _rank0_miner())
    return _run_worker(argv, rank)


def _rank0_miner() -> type:
    from subnet.miner.loop import Miner

    class RankZeroMiner(Miner):
        """The ordinary miner, training each window together with the worker ranks."""

        def __init__(self, rt: Any) -> None:
            super().__init__(rt)
            ctx = DistContext(timeout_s=rt.cfg.compute.dist_timeout_s, device=self.device.device)
            self.dist = DistributedTrainer(ctx, TrainRuntime(
                device=self.train_runtime.device, autocast_dtype=self.train_runtime.autocast_dtype,
                micro_batch_size=self.train_runtime.micro_batch_size, collective=DistCollective(ctx),
                forward=self.train_runtime.forward))

    return RankZeroMiner


def _run_worker(argv: list[str] | None, rank: int) -> int:
    from subnet.config import parse_config
    from subnet.device.consensus import DeviceReplica
    from subnet.device.select import select_device
    from subnet.errors import SubnetError
    from subnet.miner.train import prepare_training
    from subnet.node.config import MinerNeuronConfig
    from subnet.node.globalmodel import build_global_model
    from subnet.node.runtime import data_readers, load_data
    from subnet.telemetry.logs import setup_logging

    cfg: Any = parse_config(MinerNeuronConfig, argv, prog="neurons/miner.py")
    setup_logging(cfg.logging, f"miner-rank{rank}")
    torch.set_num_threads(max(1, int(getattr(cfg, "torch_threads", 1))))
    try:
        choice = select_device(cfg.device, cfg.compute, local_rank=int(os.environ.get("LOCAL_RANK", rank)))
        if choice.device.type == "cuda":
            torch.cuda.set_device(choice.device)
        pages = load_data(cfg.model.preset, cfg.data.source, cfg.data.cache_dir, flags=cfg.data,
                          readers=data_readers(cfg))
        gm = build_global_model(cfg.model.preset, cfg.model.n_fragments, cfg.model.seed)
    except SubnetError as exc:
        logger.error("rank {} cannot start: {}", rank, exc)
        return 1
    replica = DeviceReplica(gm.model, choice.device)  # overwritten by rank 0's broadcast every window
    ctx = DistContext(timeout_s=cfg.compute.dist_timeout_s, device=choice.device)
    run = prepare_training(replica.model, choice.device, choice.autocast_dtype, cfg.compute,
                           collective=DistCollective(ctx))
    try:
        report = serve(ctx, replica.model, gm.fragments, pages, cfg.train, run)
    finally:
        ctx.close()
    logger.info("rank {}: trained {} windows, skipped {}", rank, len(report.trained), len(report.aborted))
    return 0
