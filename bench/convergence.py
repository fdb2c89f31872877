"""Convergence bench: the simulated network vs centralized AdamW at equal tokens (goals G2, G4).

Run: `.venv/bin/python bench/convergence.py` (flags: `--help`; `--preset small` for the
10M model). In ONE process, for each seed, with the same initial model and the same
data order, it runs side by side:

* the network: N simulated miners, F fragments. Per round (window) the protocol's
  `assign_all` gives each miner a fragment and `train_pages` its pages; the miner runs
  `inner_train` (H AdamW steps on its fragment, its own persistent optimizer state),
  encodes the pseudo-gradient with its own persistent-EF `Encoder`, signs it with
  `write_artifact`; the "lead" verifies it with `read_artifact`, decodes it, builds a
  manifest (`build_manifest`: median-norm clip + mean) and applies it with
  `apply_decoded` (p -= outer_lr * combined). Miners are simulated synchronously (all
  train from the same global model version; no scoring/top-G cut, every honest
  contribution is kept); `--staleness 1` trains from the version one window old and
  applies to the current one, like the live one-window delay.
* centralized AdamW on the full model, global batch = the N miners' batches of the
  same step concatenated (same pages, same order), same lr schedule (linear warm-up,
  then flat: subnet.miner.train.lr_at), same clip, betas and weight decay.

Both are evaluated on the same fixed held-out pages; curves are recorded against
tokens. Reported: held-out loss ratio (network / centralized at equal tokens), the
DDP-token-equivalence (share of our tokens the centralized run needed to reach our
final loss, interpolated on its curve), and bytes uploaded per miner (len() of the
real signed artifacts) vs fp32 gradients of per-step data-parallel training
(4 B x all params x steps). A one-factor-at-a-time sweep over H, outer lr and codec
density follows (same total steps; each row against the same seed's centralized run).

Writes convergence.json and convergence.png under --out (default /tmp).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bittensor.sp_core import Keypair  # noqa: E402
from loguru import logger  # noqa: E402

from subnet.codec.config import CodecConfig  # noqa: E402
from subnet.codec.sparseloco import Encoder, decode  # noqa: E402
from subnet.codec.wire import ArtifactHeader, expected_max_bytes, read_artifact, write_artifact  # noqa: E402
from subnet.config import SyncConfig, TrainConfig  # noqa: E402
from subnet.data.config import DataConfig  # noqa: E402
from subnet.data.pages import TokenPages, load_pages  # noqa: E402
from subnet.miner.train import AdamState, inner_train, lm_loss, lr_at  # noqa: E402
from subnet.model.fragments import fragment_shapes, partition  # noqa: E402
from subnet.model.presets import build_model, get_preset  # noqa: E402
from subnet.protocol.assignment import AssignmentParams, assign_all  # noqa: E402
from subnet.protocol.keys import artifact_key  # noqa: E402
from subnet.protocol.windows import seed_from_hash  # noqa: E402
from subnet.sync.aggregate import Contribution, build_manifest  # noqa: E402
from subnet.sync.apply import GlobalModel, apply_decoded, artifact_sha256  # noqa: E402

NETUID = 1
# Per-preset defaults: chunk/topk for the codec, per-miner batch, H and rounds.
PRESET_DEFAULTS: dict[str, dict[str, int]] = {
    "tiny": {"chunk": 4096, "topk": 256, "batch": 4, "H": 10, "rounds": 20},
    "small": {"chunk": 4096, "topk": 256, "batch": 8, "H": 15, "rounds": 40},
}


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, kw_only=True)
class NetConfig:
    """One network arm: everything that changes between sweep rows."""

    inner_steps: int
    rounds: int
    outer_lr: float
    chunk: int
    topk: int
    value_bits: int = 2
    ef_decay: float = 0.95
    staleness: int = 0

    @property
    def density(self) -> float:
        return self.topk / self.chunk

    @property
    def steps(self) -> int:
        return self.inner_steps * self.rounds

    def label(self) -> str:
        return (f"H={self.inner_steps} R={self.rounds} outer_lr={self.outer_lr:g} "
                f"density={100 * self.density:.2f}% stale={self.staleness}")


@dataclass(frozen=True, kw_only=True)
class Setup:
    """Shared across arms: model, data, miners, inner optimizer, evaluation."""

    preset: str
    miners: int
    fragments: int
    batch: int
    train: TrainConfig
    eval_pages: tuple[int, ...]
    eval_batch: int
    central_eval_every: int


@dataclass(kw_only=True)
class Curve:
    """Held-out loss (nats/token) against training tokens."""

    tokens: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)

    def add(self, tokens: int, loss: float) -> None:
        self.tokens.append(int(tokens))
        self.loss.append(float(loss))


# --------------------------------------------------------------------------- shared pieces


def round_seed(data_seed: int, rnd: int) -> int:
    """The round's assignment seed, from a fixed hash (stands in for the window's block hash)."""
    return seed_from_hash(hashlib.sha256(f"tessera-bench-convergence/{data_seed}/{rnd}".encode()).digest())


def round_plan(pages: TokenPages, setup: Setup, data_seed: int, rnd: int, inner_steps: int) -> dict[int, Any]:
    """assign_all for one round: uid -> Assignment(fragment, pages) with H * batch pages each."""
    params = AssignmentParams(n_fragments=setup.fragments, pages_per_miner=inner_steps * setup.batch,
                              n_train_pages=pages.n_train, n_heldout_pages=pages.n_heldout,
                              heldout_per_window=1)
    return assign_all(round_seed(data_seed, rnd), range(setup.miners), params)


def miner_batches(pages: TokenPages, page_ids: tuple[int, ...], batch: int) -> list[torch.Tensor]:
    """A miner's pages in assignment order, cut into consecutive batches (its inner steps)."""
    return [pages.batch(page_ids[i:i + batch]) for i in range(0, len(page_ids), batch)]


def evaluate(model: torch.nn.Module, pages: TokenPages, setup: Setup) -> float:
    """Mean held-out loss (nats/token) over the fixed evaluation pages."""
    was = model.training
    model.eval()
    ids = setup.eval_pages
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ids), setup.eval_batch):
            chunk = ids[i:i + setup.eval_batch]
            total += float(lm_loss(model, pages.batch(chunk, "heldout"))) * len(chunk)
            n += len(chunk)
    model.train(was)
    return total / n


def tokens_per_step(pages: TokenPages, setup: Setup) -> int:
    return setup.miners * setup.batch * (pages.page_len - 1)


# --------------------------------------------------------------------------- centralized AdamW


def run_central(pages: TokenPages, setup: Setup, seed: int, inner_steps: int, rounds: int) -> dict[str, Any]:
    """AdamW on the full model; step t of round r uses the concatenation of the miners' step-t batches."""
    model = build_model(setup.preset, seed=seed)
    cfg = setup.train
    params = dict(model.named_parameters())
    decay = [p for p in params.values() if p.ndim >= 2]
    no_decay = [p for p in params.values() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    per_step = tokens_per_step(pages, setup)
    curve = Curve()
    curve.add(0, evaluate(model, pages, setup))
    t0 = time.perf_counter()
    step = 0
    model.train()
    for rnd in range(rounds):
        plan = round_plan(pages, setup, seed, rnd, inner_steps)
        per_miner = [miner_batches(pages, plan[uid].pages, setup.batch) for uid in sorted(plan)]
        for h in range(inner_steps):
            batch = torch.cat([b[h] for b in per_miner], dim=0)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            loss = lm_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            opt.step()
            step += 1
            if step % setup.central_eval_every == 0 or step == inner_steps * rounds:
                curve.add(step * per_step, evaluate(model, pages, setup))
    return {"curve": asdict(curve), "seconds": time.perf_counter() - t0, "steps": step}


# --------------------------------------------------------------------------- the network


def run_network(pages: TokenPages, setup: Setup, seed: int, net: NetConfig) -> dict[str, Any]:
    """N miners, F fragments, real codec + wire + aggregation, one outer step per round."""
    model = build_model(setup.preset, seed=seed)
    frags = partition(model, setup.fragments)
    gm = GlobalModel(model=model, fragments=frags)
    shapes = {f.index: {n: tuple(s) for n, s in fragment_shapes(model, f).items()} for f in frags}
    codec = CodecConfig(chunk=net.chunk, topk=net.topk, value_bits=net.value_bits, ef_decay=net.ef_decay)
    max_bytes = {i: expected_max_bytes(s, codec) for i, s in shapes.items()}
    train_cfg = replace(setup.train, inner_steps=net.inner_steps)
    keys = {uid: Keypair.create_from_uri(f"//BenchMiner{uid}") for uid in range(setup.miners)}
    opt_state: dict[int, AdamState] = {uid: AdamState() for uid in range(setup.miners)}
    steps_done = {uid: 0 for uid in range(setup.miners)}
    encoders: dict[tuple[int, int], Encoder] = {}
    uploaded = {uid: 0 for uid in range(setup.miners)}
    artifacts = 0
    # Model the miners train from: the live model (staleness 0) or a copy `staleness` versions old.
    history: deque[dict[str, torch.Tensor]] = deque(maxlen=net.staleness + 1)
    trainer = build_model(setup.preset, seed=seed) if net.staleness else model
    per_step = tokens_per_step(pages, setup)
    curve = Curve()
    curve.add(0, evaluate(model, pages, setup))
    t0 = time.perf_counter()
    t_train = t_codec = t_apply = 0.0
    for rnd in range(net.rounds):
        if net.staleness:
            history.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            trainer.load_state_dict(history[0])  # oldest kept: `staleness` versions behind (or v0 early on)
        plan = round_plan(pages, setup, seed, rnd, net.inner_steps)
        contributions: list[Contribution] = []
        decoded: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
        for uid in sorted(plan):
            a = plan[uid]
            frag = frags[a.fragment]
            ts = time.perf_counter()
            res = inner_train(trainer, frag, iter(miner_batches(pages, a.pages, setup.batch)), train_cfg,
                              opt_state[uid], start_step=steps_done[uid])
            t_train += time.perf_counter() - ts
            opt_state[uid] = res.optimizer_state
            steps_done[uid] = res.stats.end_step
            ts = time.perf_counter()
            enc = encoders.get((uid, a.fragment))
            if enc is None:
                enc = encoders[(uid, a.fragment)] = Encoder(shapes[a.fragment], codec)
            hotkey = keys[uid].ss58_address
            header = ArtifactHeader(netuid=NETUID, window=rnd, uid=uid, hotkey=hotkey, fragment=a.fragment,
                                    base_version=gm.version)
            data = write_artifact(enc.encode(res.pseudo_grad), header, keys[uid])
            uploaded[uid] += len(data)
            artifacts += 1
            art = read_artifact(data, expected_hotkey=hotkey, max_bytes=max_bytes[a.fragment],
                                shapes=shapes[a.fragment], netuid=NETUID, window=rnd, fragment=a.fragment,
                                uid=uid, codec=codec)
            delta = decode(art.encoded, shapes[a.fragment])
            t_codec += time.perf_counter() - ts
            decoded[(a.fragment, uid)] = delta
            contributions.append(Contribution(fragment=a.fragment, uid=uid, hotkey=hotkey,
                                              key=artifact_key(NETUID, rnd, hotkey, a.fragment),
                                              sha256=artifact_sha256(data), score=0.0, delta=delta))
        ts = time.perf_counter()
        manifest = build_manifest(netuid=NETUID, window=rnd, base_version=gm.version,
                                  contributions=contributions, outer_lr=net.outer_lr)
        apply_decoded(gm, manifest, [decoded[(e.fragment, e.uid)] for e in manifest.entries], verify_hash=False)
        t_apply += time.perf_counter() - ts
        curve.add((rnd + 1) * net.inner_steps * per_step, evaluate(model, pages, setup))
    return {
        "curve": asdict(curve), "seconds": time.perf_counter() - t0,
        "seconds_train": t_train, "seconds_codec": t_codec, "seconds_apply": t_apply,
        "uploaded_bytes_per_miner": uploaded, "artifacts": artifacts, "version": gm.version,
    }


# --------------------------------------------------------------------------- metrics


def interp_loss(curve: dict[str, list], tokens: float) -> float:
    """Centralized loss at `tokens` (linear interpolation; clamped to the curve's ends)."""
    xs, ys = curve["tokens"], curve["loss"]
    if tokens <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x0 <= tokens <= x1:
            return y0 + (y1 - y0) * (tokens - x0) / (x1 - x0) if x1 > x0 else y1
    return ys[-1]


def token_equivalence(central: dict[str, list], target_loss: float, our_tokens: int) -> tuple[float, bool]:
    """(tokens centralized needed to reach target_loss) / our_tokens, and whether it was reached.

    Uses the running minimum of the centralized curve (a monotone envelope) and
    interpolates linearly between evaluation points. Not reached -> (1.0, False)
    meaning "at least 1" (we beat centralized within its budget).
    """
    xs, ys = central["tokens"], central["loss"]
    env, best = [], math.inf
    for y in ys:
        best = min(best, y)
        env.append(best)
    if target_loss >= env[0]:
        return 0.0, True
    for i in range(1, len(xs)):
        if env[i] <= target_loss:
            x0, x1, y0, y1 = xs[i - 1], xs[i], env[i - 1], env[i]
            x = x1 if y0 == y1 else x0 + (x1 - x0) * (y0 - target_loss) / (y0 - y1)
            return x / our_tokens, True
    return 1.0, False


def summarize(net_res: dict[str, Any], central: dict[str, Any], n_params: int, steps: int) -> dict[str, Any]:
    nc, cc = net_res["curve"], central["curve"]
    tokens = nc["tokens"][-1]
    ours = nc["loss"][-1]
    theirs = interp_loss(cc, tokens)
    teq, reached = token_equivalence(cc, ours, tokens)
    up = net_res["uploaded_bytes_per_miner"]
    mean_up = statistics.mean(up.values())
    ddp = 4 * n_params * steps
    return {
        "tokens": tokens, "loss_network": ours, "loss_central": theirs, "loss_ratio": ours / theirs,
        "token_equivalence": teq, "token_equivalence_reached": reached,
        "upload_bytes_per_miner_mean": mean_up, "upload_bytes_per_miner_max": max(up.values()),
        "ddp_fp32_bytes_per_worker": ddp, "ddp_bf16_bytes_per_worker": ddp // 2,
        "upload_reduction_vs_ddp_fp32": ddp / mean_up, "upload_reduction_vs_ddp_bf16": ddp / 2 / mean_up,
    }


def spread(values: list[float], fmt: str = ".4f") -> str:
    """mean ± sample stdev (min, max) over seeds."""
    if len(values) == 1:
        return f"{values[0]:{fmt}}"
    return (f"{statistics.mean(values):{fmt}} ± {statistics.stdev(values):{fmt}} "
            f"(min {min(values):{fmt}}, max {max(values):{fmt}})")


def central_plateau(central: dict[str, Any]) -> float:
    """Relative change of centralized loss over its last 20% of tokens (G4 wants < 3%)."""
    cc = central["curve"]
    end = cc["tokens"][-1]
    start_loss = interp_loss(cc, 0.8 * end)
    return (start_loss - cc["loss"][-1]) / start_loss


# --------------------------------------------------------------------------- output


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot(results: dict[str, Any], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    ax = axes[0]
    for i, run in enumerate(results["main"]["runs"]):
        color = f"C{i}"
        cc, nc = run["central"]["curve"], run["network"]["curve"]
        ax.plot([t / 1e6 for t in cc["tokens"]], cc["loss"], color=color, lw=2,
                label=f"centralized AdamW (seed {run['seed']})")
        ax.plot([t / 1e6 for t in nc["tokens"]], nc["loss"], color=color, ls="--", marker=".",
                label=f"network (seed {run['seed']})")
    ax.set_title(f"{results['config']['preset']}: {results['main']['label']}", fontsize=9)
    ax.set_xlabel("training tokens (M)")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    sweep = results.get("sweep", [])
    if sweep:
        seed0 = sweep[0]["seed"]
        base = next(r for r in results["main"]["runs"] if r["seed"] == seed0)
        cc = base["central"]["curve"]
        ax.plot([t / 1e6 for t in cc["tokens"]], cc["loss"], color="k", lw=2, label=f"centralized (seed {seed0})")
        nc = base["network"]["curve"]
        ax.plot([t / 1e6 for t in nc["tokens"]], nc["loss"], ls="--", lw=2, label="main: " + results["main"]["label"])
        for row in sweep:
            nc = row["network"]["curve"]
            ax.plot([t / 1e6 for t in nc["tokens"]], nc["loss"], ls=":", label=row["label"])
        ax.set_title(f"sweep (seed {seed0}, one factor at a time)", fontsize=9)
        ax.legend(fontsize=7)
    else:
        ax.set_title("no sweep run")
    ax.set_xlabel("training tokens (M)")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


# --------------------------------------------------------------------------- main


def parse_list(text: str, conv: Any) -> list[Any]:
    return [conv(x) for x in text.split(",") if x.strip()] if text else []


def build_parser() -> argparse.ArgumentParser:
    tc, sc = TrainConfig(), SyncConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESET_DEFAULTS), default="tiny")
    p.add_argument("--miners", type=int, default=4, help="N simulated miners")
    p.add_argument("--fragments", type=int, default=2, help="F fragments")
    p.add_argument("--batch", type=int, default=None, help="pages per miner per inner step (preset default)")
    p.add_argument("--H", type=int, default=None, help="inner steps per round (preset default)")
    p.add_argument("--rounds", type=int, default=None, help="outer rounds (preset default)")
    p.add_argument("--outer-lr", type=float, default=sc.outer_lr)
    p.add_argument("--lr", type=float, default=tc.lr, help="inner / centralized AdamW peak lr")
    p.add_argument("--warmup", type=int, default=tc.warmup_steps, help="linear warm-up steps (then flat)")
    p.add_argument("--weight-decay", type=float, default=tc.weight_decay)
    p.add_argument("--chunk", type=int, default=None, help="codec chunk (preset default)")
    p.add_argument("--topk", type=int, default=None, help="codec top-k per chunk (preset default)")
    p.add_argument("--value-bits", type=int, default=2)
    p.add_argument("--ef-decay", type=float, default=0.95)
    p.add_argument("--staleness", type=int, default=0, help="miners train from the model this many versions old")
    p.add_argument("--seeds", default="0,1", help="comma list; model init and data order per seed")
    p.add_argument("--sweep-H", default="5,20", help="H values for the sweep (same total steps); empty = none")
    p.add_argument("--sweep-outer-lr", default="0.7,1.5", help="outer lr values for the sweep; empty = none")
    p.add_argument("--sweep-topk", default="64,1024", help="codec top-k values for the sweep; empty = none")
    p.add_argument("--sweep-seeds", default=None, help="seeds for sweep rows (default: first seed)")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--eval-pages", type=int, default=64, help="fixed held-out pages evaluated")
    p.add_argument("--eval-batch", type=int, default=32)
    p.add_argument("--central-eval-every", type=int, default=10, help="centralized eval interval (steps)")
    p.add_argument("--threads", type=int, default=1, choices=(1, 2))
    p.add_argument("--out", type=Path, default=Path("/tmp"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = ".venv/bin/python bench/convergence.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    torch.set_num_threads(args.threads)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    d = PRESET_DEFAULTS[args.preset]
    batch = args.batch or d["batch"]
    H = args.H or d["H"]
    rounds = args.rounds or d["rounds"]
    chunk, topk = args.chunk or d["chunk"], args.topk or d["topk"]
    seeds = parse_list(args.seeds, int)
    if len(seeds) < 1:
        raise SystemExit("need at least one seed (two or more to show a spread)")
    preset = get_preset(args.preset)
    t_start = time.perf_counter()
    pages = load_pages(DataConfig(vocab_size=preset.vocab_size))
    n_eval = min(args.eval_pages, pages.n_heldout)
    stride = pages.n_heldout / n_eval
    eval_ids = tuple(int(i * stride) for i in range(n_eval))
    train = replace(TrainConfig(), inner_steps=H, batch_size=batch, lr=args.lr, warmup_steps=args.warmup,
                    weight_decay=args.weight_decay)
    setup = Setup(preset=args.preset, miners=args.miners, fragments=args.fragments, batch=batch, train=train,
                  eval_pages=eval_ids, eval_batch=args.eval_batch, central_eval_every=args.central_eval_every)
    main_net = NetConfig(inner_steps=H, rounds=rounds, outer_lr=args.outer_lr, chunk=chunk, topk=topk,
                         value_bits=args.value_bits, ef_decay=args.ef_decay, staleness=args.staleness)
    probe = build_model(args.preset, seed=0)
    n_params = sum(p.numel() for p in probe.parameters())
    frag_params = [sum(p.numel() for n, p in probe.named_parameters() if n in set(f.param_names))
                   for f in partition(probe, args.fragments)]
    del probe
    steps = main_net.steps
    tps = tokens_per_step(pages, setup)
    print(f"command: {command}")
    print(f"preset={args.preset} ({n_params:,} params; fragments {frag_params}), {pages!r}, "
          f"torch threads={args.threads}, host={platform.node()}")
    print(f"N={args.miners} miners, F={args.fragments} fragments, per-miner batch {batch} x {pages.page_len - 1} "
          f"tokens, global batch {args.miners * batch} pages = {tps} tokens/step; {steps} steps = "
          f"{steps * tps / 1e6:.3f}M tokens per run")
    print(f"inner/centralized AdamW lr {train.lr:g}, warm-up {train.warmup_steps} then flat, betas "
          f"({train.beta1}, {train.beta2}), wd {train.weight_decay}, clip {train.grad_clip}; "
          f"codec chunk {chunk} top-k {topk} = density {100 * topk / chunk:.2f}% ({args.value_bits}-bit values, "
          f"EF decay {args.ef_decay}); EF delivery guide >= 10/density = {math.ceil(10 * chunk / topk)} rounds, "
          f"this run has {rounds}")
    print(f"miners simulated synchronously; staleness={args.staleness} "
          f"({'all train from the current global model' if args.staleness == 0 else 'train from a stale version'}); "
          f"no scoring / top-G cut (every honest contribution kept); held-out = {n_eval} fixed pages")
    sys.stdout.flush()

    runs = []
    for seed in seeds:
        ts = time.perf_counter()
        central = run_central(pages, setup, seed, H, rounds)
        net = run_network(pages, setup, seed, main_net)
        summ = summarize(net, central, n_params, steps)
        runs.append({"seed": seed, "central": central, "network": net, "summary": summ,
                     "central_last20pct_change": central_plateau(central)})
        print(f"  seed {seed}: network {summ['loss_network']:.4f} vs centralized {summ['loss_central']:.4f} "
              f"-> ratio {summ['loss_ratio']:.4f}, token-equiv {summ['token_equivalence']:.3f}; "
              f"central {central['seconds']:.0f}s, network {net['seconds']:.0f}s "
              f"(train {net['seconds_train']:.0f}s, codec+wire {net['seconds_codec']:.1f}s, "
              f"aggregate+apply {net['seconds_apply']:.1f}s) [{time.perf_counter() - ts:.0f}s]")
        sys.stdout.flush()

    sweep_rows: list[dict[str, Any]] = []
    if not args.no_sweep:
        sweep_seeds = parse_list(args.sweep_seeds, int) if args.sweep_seeds else seeds[:1]
        variants: list[NetConfig] = []
        for h in parse_list(args.sweep_H, int):
            if h != H:
                if steps % h:
                    print(f"  (sweep H={h} skipped: {steps} total steps not a multiple)")
                    continue
                variants.append(replace(main_net, inner_steps=h, rounds=steps // h))
        variants += [replace(main_net, outer_lr=v) for v in parse_list(args.sweep_outer_lr, float)
                     if v != args.outer_lr]
        variants += [replace(main_net, topk=k) for k in parse_list(args.sweep_topk, int) if k != topk]
        centrals = {r["seed"]: r["central"] for r in runs}
        for seed in sweep_seeds:
            if seed not in centrals:
                centrals[seed] = run_central(pages, setup, seed, H, rounds)
            for v in variants:
                net = run_network(pages, setup, seed, v)
                summ = summarize(net, centrals[seed], n_params, steps)
                sweep_rows.append({"seed": seed, "label": v.label(), "net": asdict(v), "network": net,
                                   "summary": summ})
                print(f"  sweep seed {seed} {v.label()}: ratio {summ['loss_ratio']:.4f}, token-equiv "
                      f"{summ['token_equivalence']:.3f}, upload {summ['upload_reduction_vs_ddp_fp32']:.0f}x less "
                      f"[{net['seconds']:.0f}s]")
                sys.stdout.flush()

    # ---------------- tables
    def col(key: str) -> list[float]:
        return [r["summary"][key] for r in runs]

    print()
    print(f"== Network vs centralized AdamW, equal tokens ({runs[0]['summary']['tokens'] / 1e6:.3f}M), "
          f"preset {args.preset}, seeds {seeds}: mean ± stdev over seeds ==")
    print(f"  network:   {main_net.label()}")
    rows = [
        ("held-out loss, network (nats/token)", spread(col("loss_network"))),
        ("held-out loss, centralized AdamW", spread(col("loss_central"))),
        ("loss ratio network/centralized (target <= 1.10)", spread(col("loss_ratio"))),
        ("DDP-token-equivalence (target >= 0.6)", spread(col("token_equivalence"))),
        ("centralized loss change over last 20% (G4 wants < 3%)",
         spread([100 * r["central_last20pct_change"] for r in runs], ".2f") + " %"),
        ("upload per miner over the run (bytes, measured)", spread(col("upload_bytes_per_miner_mean"), ",.0f")),
        ("per-step DDP fp32 gradients per worker (bytes)", f"{runs[0]['summary']['ddp_fp32_bytes_per_worker']:,}"),
        ("upload reduction vs DDP fp32 (target >= 1000x)", spread(col("upload_reduction_vs_ddp_fp32"), ",.0f")),
        ("upload reduction vs DDP bf16", spread(col("upload_reduction_vs_ddp_bf16"), ",.0f")),
    ]
    w = max(len(r[0]) for r in rows)
    for name, val in rows:
        print(f"  {name:<{w}}  {val}")
    if not all(col("token_equivalence_reached")):
        print("  (token-equivalence 1.0 marks a run whose final loss the centralized run never reached: >= 1)")
    per_art = statistics.mean(col("upload_bytes_per_miner_mean")) / rounds
    mean_frag = statistics.mean(frag_params)
    print(f"  bytes convention: physical len() of signed safetensors artifacts (container, metadata, signature "
          f"included); one artifact per miner per round; mean {per_art:,.0f} B/artifact = "
          f"{8 * per_art / mean_frag:.3f} bits per fragment param ({4 * mean_frag / per_art:.0f}x vs fp32 of the "
          f"fragment); DDP baseline counts all {n_params:,} params every step")
    if sweep_rows:
        print()
        print(f"== Sweep (one factor at a time around the main point; {steps} steps each, seed(s) "
              f"{sorted({r['seed'] for r in sweep_rows})}; compared with the same seed's centralized run) ==")
        hdr = f"  {'H':>3} {'rounds':>6} {'outer_lr':>8} {'density':>8} {'loss':>8} {'ratio':>7} {'tok-eq':>7} " \
              f"{'x less upload':>13}"
        print(hdr)
        first = [r for r in runs if r["seed"] == sweep_rows[0]["seed"]]
        table = ([{"net": asdict(main_net), "summary": first[0]["summary"], "main": True}] if first else []) + \
            [dict(r, main=False) for r in sweep_rows]
        table.sort(key=lambda r: (r["net"]["inner_steps"], r["net"]["outer_lr"], r["net"]["topk"]))
        for r in table:
            n, s = r["net"], r["summary"]
            mark = " <- main" if r["main"] else ""
            print(f"  {n['inner_steps']:>3} {n['rounds']:>6} {n['outer_lr']:>8g} "
                  f"{100 * n['topk'] / n['chunk']:>7.2f}% {s['loss_network']:>8.4f} {s['loss_ratio']:>7.4f} "
                  f"{s['token_equivalence']:>7.3f} {s['upload_reduction_vs_ddp_fp32']:>12.0f}x{mark}")
        if any(r["network"]["curve"]["tokens"][-1] != runs[0]["summary"]["tokens"] for r in sweep_rows):
            print("  (some rows ended at other token counts; their centralized loss is interpolated)")
        print("  note: a sweep row with another H has another data order (pages are assigned per window of H "
              "steps); it is compared with the main data order's centralized curve at equal tokens")

    elapsed = time.perf_counter() - t_start
    results = {
        "command": command, "elapsed_s": elapsed, "cpu_s": time.process_time(), "host": platform.node(),
        "torch": torch.__version__,
        "config": {"preset": args.preset, "n_params": n_params, "fragment_params": frag_params,
                   "miners": args.miners, "fragments": args.fragments, "batch_per_miner": batch,
                   "tokens_per_step": tps, "steps": steps, "train": asdict(train), "seeds": seeds,
                   "eval_pages": list(eval_ids), "page_len": pages.page_len, "synchronous": True,
                   "staleness": args.staleness,
                   "bytes_convention": "physical len() of write_artifact output vs 4 B x all params x steps"},
        "main": {"label": main_net.label(), "net": asdict(main_net), "runs": runs},
        "sweep": sweep_rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out / "convergence.json", args.out / "convergence.png"
    atomic_write(json_path, json.dumps(results, indent=1, default=str).encode())
    plot(results, png_path)
    print()
    print(f"wrote {json_path} and {png_path}; total {elapsed:.0f}s wall, {time.process_time():.0f}s CPU "
          f"(wall >> CPU means the cores were shared)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
