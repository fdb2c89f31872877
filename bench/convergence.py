"""Convergence bench: the network as deployed vs centralized AdamW at equal tokens (issue 12).

Run: `.venv/bin/python bench/convergence.py` (flags: `--help`). The headline row is
the protocol the neurons run by default, read from their configs, not literals:
the codec (`CodecConfig()`), H, batch and inner AdamW (`TrainConfig()`), the outer
step and top-G (`SyncConfig()`), the fragment count (`ModelConfig()`), pages per
miner and held-out pages (`ProtocolConfig()`), the validator's scoring
(`NETWORK_SCORE`) and gates (`ValidatorOptions()`), one window of staleness
as in the live timeline, and the miner's rebase onto the newest manifest
(`RebaseConfig()`, subnet/miner/rebase.py, the same function the miner loop calls)
when it lands, modelled at `LIVE_ARRIVAL` of the inner steps. Simulation: bench/convergence_sim.py (real codec, wire,
scoring, selection, manifest and outer step).

In ONE process, per seed, with the same initial model and the same data order, it
runs the network and centralized AdamW on the full model (global batch = the N
miners' step-t batches concatenated, same lr schedule, clip, betas, weight decay),
both evaluated on the same fixed held-out pages (never the ones the validator
scores on). Reported: held-out loss ratio network / centralized at equal tokens,
DDP-token-equivalence (share of our tokens the centralized run needed to reach our
final loss), and bytes uploaded per miner (len() of the real signed artifacts) vs
fp32 gradients of per-step data parallel (4 B x all params x steps).

Other settings appear only as labelled sweep rows: `--row "staleness=0"`,
`--row "rebase_at=1"` (no rebase), `--row "outer_lr=2,rule=median_norm_clip_support_mean"`
(comma lists of NetConfig field overrides; a row with another inner_steps keeps the
total steps, and a row with another H, round count or fragment count is compared with its
own centralized twin, since it trains on other pages). Results are rewritten after every
arm (partial runs keep what they measured) to --out/convergence.json; the centralized curve of each seed is cached
under --out/central-cache so a second invocation does not pay for it again.
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
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from convergence_partial import partial_network, read_progress  # noqa: E402
from convergence_sim import (  # noqa: E402
    Gates,
    NetConfig,
    Setup,
    one_artifact_bytes,
    run_central,
    run_network,
    tokens_per_step,
)
from loguru import logger  # noqa: E402

from subnet.codec.config import CodecConfig  # noqa: E402
from subnet.data.config import DataConfig  # noqa: E402
from subnet.data.pages import load_pages  # noqa: E402
from subnet.miner.config import TrainConfig  # noqa: E402
from subnet.miner.rebase_config import RebaseConfig  # noqa: E402
from subnet.model.config import ModelConfig  # noqa: E402
from subnet.model.fragments import partition  # noqa: E402
from subnet.model.presets import build_model, get_preset  # noqa: E402
from subnet.node.config import NETWORK_SCORE, ValidatorOptions  # noqa: E402
from subnet.protocol.config import ProtocolConfig  # noqa: E402
from subnet.sync.config import SyncConfig  # noqa: E402

LIVE_STALENESS = 1  # the live timeline: miners train on v while manifest v is scored (DESIGN.md, "Timeline")
LIVE_ARRIVAL = 0.5
"""Share of the inner steps done before manifest w-1 lands in window w. No protocol constant fixes it (it is
the lead's fetch + scoring time over the window length); mid-window is the modelled case, and sweep rows
rebase_at=0.25 / 0.75 show how much the figure depends on it."""


def deployed(rounds: int) -> NetConfig:
    """The network arm the neurons run by default, from their default configs."""
    codec, train, sync, model = CodecConfig(), TrainConfig(), SyncConfig(), ModelConfig()
    rebase_at = LIVE_ARRIVAL if RebaseConfig().enabled else 1.0
    return NetConfig(inner_steps=train.inner_steps, rounds=rounds, outer_lr=sync.outer_lr, chunk=codec.chunk,
                     topk=codec.topk, value_bits=codec.value_bits, ef_decay=codec.ef_decay,
                     staleness=LIVE_STALENESS, rebase_at=rebase_at, rule=sync.rule, select=True,
                     top_g=sync.top_g, fragments=model.n_fragments)


def parse_row(text: str, base: NetConfig) -> NetConfig:
    """'field=value,field=value' overrides of `base` (types from NetConfig's fields)."""
    kinds = {f.name: f.type for f in fields(NetConfig)}
    over: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in kinds:
            raise SystemExit(f"--row: unknown field {name!r} (known: {', '.join(kinds)})")
        kind = str(kinds[name])
        over[name] = (value.strip().lower() in ("1", "true", "yes") if "bool" in kind
                      else int(value) if "int" in kind else float(value) if "float" in kind else value.strip())
    if "inner_steps" in over and "rounds" not in over:
        if base.steps % over["inner_steps"]:
            raise SystemExit(f"--row {text!r}: {base.steps} total steps are not a multiple of H")
        over["rounds"] = base.steps // over["inner_steps"]
    return replace(base, **over)


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


def central_path(cache: Path, setup: Setup, seed: int, net: NetConfig) -> Path:
    """The cache file of `net`'s centralized twin: keyed by everything run_central depends on."""
    twin = {k: v for k, v in asdict(setup).items() if k not in ("score", "gates")}  # run_central reads neither
    key = hashlib.sha256(json.dumps({"setup": twin, "seed": seed, "H": net.inner_steps,
                                     "rounds": net.rounds, "F": net.fragments, "v": 3},
                                    sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache / f"{key}.json"


def own_twin(row: NetConfig, main: NetConfig) -> bool:
    """Whether `row` trains on other data than `main` (and so needs its own centralized twin)."""
    return (row.inner_steps, row.rounds, row.fragments) != (main.inner_steps, main.rounds, main.fragments)


def central_cached(cache: Path, pages: Any, setup: Setup, seed: int, net: NetConfig) -> dict[str, Any]:
    """run_central, cached on disk by everything it depends on (the centralized twin of `net`'s data order)."""
    path = central_path(cache, setup, seed, net)
    if path.exists():
        out = json.loads(path.read_text())
        out["cached"] = True
        return out
    out = run_central(pages, setup, seed, net.inner_steps, net.rounds, net.fragments)
    atomic_write(path, json.dumps(out).encode())
    return out


def build_parser() -> argparse.ArgumentParser:
    tc, pc = TrainConfig(), ProtocolConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default=ModelConfig().preset, help="model preset (tiny, small)")
    p.add_argument("--miners", type=int, default=4, help="N simulated miners")
    p.add_argument("--rounds", type=int, default=100, help="outer rounds (windows) of the headline row")
    p.add_argument("--seeds", default="0,1,2", help="comma list; model init and data order per seed")
    p.add_argument("--row", action="append", default=[],
                   help="a labelled sweep row: comma list of NetConfig overrides (repeatable)")
    p.add_argument("--sweep-seeds", default=None, help="seeds for sweep rows (default: the first seed)")
    p.add_argument("--network-only", action="store_true",
                   help="no centralized twin (no ratio): network arms only, to run arms side by side in separate "
                        "processes; their per-round losses compare directly (same seed, same data order)")
    p.add_argument("--rows-only", action="store_true",
                   help="run only the --row arms (their seeds' centralized runs, no headline)")
    p.add_argument("--batch", type=int, default=tc.batch_size, help="pages per miner per inner step")
    p.add_argument("--pages-per-miner", type=int, default=pc.pages_per_miner, help="assigned pages per window")
    p.add_argument("--eval-pages", type=int, default=64, help="fixed held-out pages evaluated")
    p.add_argument("--eval-batch", type=int, default=32)
    p.add_argument("--central-eval-every", type=int, default=10, help="centralized eval interval (steps)")
    p.add_argument("--threads", type=int, default=1, choices=(1, 2))
    p.add_argument("--out", type=Path, default=Path("/tmp/tessera-convergence"))
    p.add_argument("--merge", type=Path, nargs="+", default=None,
                   help="only merge these convergence.json files (one seed per process) into --out/convergence.json")
    p.add_argument("--with-central", type=Path, default=None,
                   help="with --merge: the centralized curve (a central-cache file) for --network-only parts")
    p.add_argument("--central-cache", type=Path, default=None,
                   help="cache of centralized curves (default --out/central-cache; share it between runs)")
    p.add_argument("--from-logs", type=Path, nargs="+", default=None,
                   help="no training: the headline of --seeds rebuilt from the progress logs of runs cut short "
                        "(their network arms) and the seeds' centralized curves in --central-cache (never computed "
                        "here); every seed truncated to the rounds all logs reached, marked partial. With --merge: "
                        "the --row arms cut short, from these logs, against --with-central, added to the sweep")
    return p


def table_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    def col(key: str) -> list[float]:
        return [r["summary"][key] for r in runs]

    return [
        ("held-out loss, network (nats/token)", spread(col("loss_network"))),
        ("held-out loss, centralized AdamW", spread(col("loss_central"))),
        ("loss ratio network/centralized (target <= 1.10)", spread(col("loss_ratio"))),
        ("DDP-token-equivalence (target >= 0.6)", spread(col("token_equivalence"))),
        ("centralized loss change over last 20%", spread([100 * r["central_last20pct_change"] for r in runs], ".2f")
         + " %"),
        ("upload per miner over the run (bytes, measured)", spread(col("upload_bytes_per_miner_mean"), ",.0f")),
        ("per-step DDP fp32 gradients per worker (bytes)", f"{runs[0]['summary']['ddp_fp32_bytes_per_worker']:,}"),
        ("upload reduction vs DDP fp32 (target >= 1000x)", spread(col("upload_reduction_vs_ddp_fp32"), ",.0f")),
    ]


def merge(paths: list[Path], central: dict[str, Any] | None = None) -> dict[str, Any]:
    """One results file from several runs of the same headline (e.g. one process per seed): runs and rows joined.

    `central`: a centralized curve (a --central-cache file) for `--network-only` parts, whose arms ran in
    separate processes; it is attached to every arm that has none (all of them the seed it was run for)
    and their summaries computed.
    """
    parts = [json.loads(p.read_text()) for p in paths]
    if central is not None:
        for p in parts:
            cfg = p["config"]
            for r in p["main"]["runs"] + p.get("sweep", []):
                if "summary" not in r:
                    r["summary"] = summarize(r["network"], central, cfg["n_params"], cfg["steps"])
                    r["central"] = central
                    r["central_last20pct_change"] = central_plateau(central)
    labels = {p["main"]["label"] for p in parts}
    if len(labels) != 1:
        raise SystemExit(f"--merge: the files measure different headlines: {sorted(labels)}")
    out = dict(parts[0])
    out["main"] = dict(parts[0]["main"], runs=[r for p in parts for r in p["main"]["runs"]])
    out["sweep"] = [r for p in parts for r in p.get("sweep", [])]
    out["commands"] = [p["command"] for p in parts]
    out["elapsed_s_each"] = [p.get("elapsed_s") for p in parts]
    out["cpu_s_each"] = [p.get("cpu_s") for p in parts]
    out["complete"] = all(p.get("complete") for p in parts)
    out["config"] = dict(parts[0]["config"], seeds=[r["seed"] for r in out["main"]["runs"]])
    out["main"]["summary"] = seed_summary(out["main"]["runs"])
    return out


def seed_summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean, sample stdev and per-seed values of the headline figures."""
    return {k: {"mean": statistics.mean(r["summary"][k] for r in runs),
                "stdev": statistics.stdev(r["summary"][k] for r in runs) if len(runs) > 1 else 0.0,
                "values": [r["summary"][k] for r in runs]}
            for k in ("loss_ratio", "token_equivalence", "upload_reduction_vs_ddp_fp32")}


def partial_rows(logs: list[Path], rows: list[NetConfig], seed: int, central: dict[str, Any], n_params: int,
                 miners: int, preset: str) -> list[dict[str, Any]]:
    """Sweep rows cut short, from their progress logs, each against `central` at the tokens it reached."""
    texts = [p.read_text() for p in logs]
    out = []
    for v in rows:
        found = [t for t in texts if f"network seed {seed} {v.label()}: round 1 " in t]
        if len(found) != 1:
            raise SystemExit(f"--from-logs: row {v.label()!r} seed {seed} is in {len(found)} logs (need one)")
        points = read_progress(found[0], seed=seed, label=v.label())
        cc = central["curve"]
        net = partial_network(points, rounds=len(points), initial=(cc["tokens"][0], cc["loss"][0]), miners=miners,
                              artifact_bytes=one_artifact_bytes(preset, v))
        out.append({"seed": seed, "label": v.label() + f" (partial: {len(points)} of {v.rounds} rounds)",
                    "net": asdict(v), "network": net,
                    "summary": summarize(net, central, n_params, len(points) * v.inner_steps)})
    return out


def from_logs(logs: list[Path], seeds: list[int], cache: Path, setup: Setup, main_net: NetConfig,
              n_params: int, results: dict[str, Any]) -> dict[str, Any]:
    """The headline from cut-short runs: each seed's network rounds from its log, its cached centralized curve."""
    texts = [p.read_text() for p in logs]
    label = main_net.label()
    points: dict[int, list[Any]] = {}
    for seed in seeds:
        found = [t for t in texts if f"network seed {seed} {label}: round 1 " in t]
        if len(found) != 1:
            raise SystemExit(f"--from-logs: seed {seed} is in {len(found)} logs (need exactly one)")
        points[seed] = read_progress(found[0], seed=seed, label=label)
    rounds = min(len(p) for p in points.values())
    art = one_artifact_bytes(setup.preset, main_net)
    for seed in seeds:
        path = central_path(cache, setup, seed, main_net)
        if not path.exists():
            raise SystemExit(f"--from-logs: no centralized curve for seed {seed} at {path}")
        central = json.loads(path.read_text())
        cc = central["curve"]
        net = partial_network(points[seed], rounds=rounds, initial=(cc["tokens"][0], cc["loss"][0]),
                              miners=setup.miners, artifact_bytes=art)
        results["main"]["runs"].append({"seed": seed, "central": central, "network": net,
                                        "summary": summarize(net, central, n_params, rounds * main_net.inner_steps),
                                        "central_last20pct_change": central_plateau(central)})
    results["main"]["summary"] = seed_summary(results["main"]["runs"])
    results["partial"] = {"rounds_done": rounds, "steps_done": rounds * main_net.inner_steps,
                          "rounds_planned": main_net.rounds, "logs": [str(p) for p in logs],
                          "rounds_in_logs": {s: len(p) for s, p in points.items()}}
    results["config"]["steps"] = rounds * main_net.inner_steps
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.merge:
        central = json.loads(args.with_central.read_text()) if args.with_central else None
        merged = merge(args.merge, central)
        if args.from_logs:  # rows cut short: --row labels, --sweep-seeds (one), --with-central of that seed
            if central is None:
                raise SystemExit("--merge --from-logs needs --with-central (the rows' seed's centralized curve)")
            cfg = merged["config"]
            seed = parse_list(args.sweep_seeds, int)[0] if args.sweep_seeds else cfg["seeds"][0]
            merged["sweep"] += partial_rows(args.from_logs, [parse_row(r, deployed(args.rounds)) for r in args.row],
                                            seed, central, cfg["n_params"], cfg["miners"], cfg["preset"])
            merged["complete"] = False
        atomic_write(args.out / "convergence.json", json.dumps(merged, indent=1, default=str).encode())
        plot(merged, args.out / "convergence.png")
        for k, v in merged["main"]["summary"].items():
            print(f"{k}: {v['mean']:.4f} +- {v['stdev']:.4f} {v['values']}")
        return 0
    command = ".venv/bin/python bench/convergence.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    torch.set_num_threads(args.threads)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    seeds = parse_list(args.seeds, int)
    if not seeds:
        raise SystemExit("need at least one seed (three to show a spread)")
    main_net = deployed(args.rounds)
    rows = [parse_row(r, main_net) for r in args.row]
    preset = get_preset(args.preset)
    t_start = time.perf_counter()
    pages = load_pages(DataConfig(vocab_size=preset.vocab_size))
    n_eval = min(args.eval_pages, pages.n_heldout)
    stride = pages.n_heldout / n_eval
    eval_ids = tuple(int(i * stride) for i in range(n_eval))
    vo = ValidatorOptions()
    setup = Setup(preset=args.preset, miners=args.miners, batch=args.batch, pages_per_miner=args.pages_per_miner,
                  heldout_per_window=ProtocolConfig().heldout_per_window,
                  train=replace(TrainConfig(), batch_size=args.batch), score=NETWORK_SCORE,
                  gates=Gates(norm_outlier=vo.norm_outlier, min_score=vo.min_score, aggregate_z=vo.aggregate_z),
                  eval_pages=eval_ids,
                  eval_batch=args.eval_batch, central_eval_every=args.central_eval_every)
    probe = build_model(args.preset, seed=0)
    n_params = sum(p.numel() for p in probe.parameters())
    frag_params = [sum(p.numel() for n, p in probe.named_parameters() if n in set(f.param_names))
                   for f in partition(probe, main_net.fragments)]
    del probe
    tps = tokens_per_step(pages, setup)
    tr = setup.train
    print(f"command: {command}")
    print(f"preset={args.preset} ({n_params:,} params; fragments {frag_params}), {pages!r}, "
          f"torch threads={args.threads}, host={platform.node()}")
    print(f"N={args.miners} miners, per-miner batch {args.batch} x {pages.page_len - 1} tokens (round-robin over "
          f"{args.pages_per_miner} assigned pages), {tps} tokens/step; headline {main_net.steps} steps = "
          f"{main_net.steps * tps / 1e6:.3f}M tokens")
    print(f"inner/centralized AdamW lr {tr.lr:g}, warm-up {tr.warmup_steps} then flat, betas ({tr.beta1}, "
          f"{tr.beta2}), wd {tr.weight_decay}, clip {tr.grad_clip}; EF delivery guide >= 10/density = "
          f"{math.ceil(10 / main_net.density)} rounds, headline has {main_net.rounds}")
    print(f"headline (deployed defaults): {main_net.label()}")
    for r in rows:
        print(f"sweep row: {r.label()}")
    sys.stdout.flush()
    cache = args.central_cache or args.out / "central-cache"
    results: dict[str, Any] = {
        "command": command, "host": platform.node(), "torch": torch.__version__,
        "config": {"preset": args.preset, "n_params": n_params, "fragment_params": frag_params,
                   "miners": args.miners, "batch_per_miner": args.batch, "pages_per_miner": args.pages_per_miner,
                   "tokens_per_step": tps, "steps": main_net.steps, "train": asdict(setup.train),
                   "score": asdict(setup.score), "gates": asdict(setup.gates), "seeds": seeds,
                   "eval_pages": list(eval_ids), "page_len": pages.page_len,
                   "bytes_convention": "physical len() of write_artifact output vs 4 B x all params x steps"},
        "main": {"label": main_net.label(), "net": asdict(main_net), "runs": []},
        "sweep": [], "complete": False,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out / "convergence.json", args.out / "convergence.png"
    if args.from_logs:
        from_logs(args.from_logs, seeds, cache, setup, main_net, n_params, results)
        results["complete"] = False
        atomic_write(json_path, json.dumps(results, indent=1, default=str).encode())
        plot(results, png_path)
        for k, v in results["main"]["summary"].items():
            print(f"{k}: {v['mean']:.4f} +- {v['stdev']:.4f} {v['values']}")
        print(f"wrote {json_path} and {png_path} (partial: {results['partial']['steps_done']} of "
              f"{main_net.steps} steps)")
        return 0

    def save() -> None:
        results["elapsed_s"] = time.perf_counter() - t_start
        results["cpu_s"] = time.process_time()
        atomic_write(json_path, json.dumps(results, indent=1, default=str).encode())

    centrals: dict[int, dict[str, Any]] = {}

    def network_only(seed: int, v: NetConfig, where: list[dict[str, Any]]) -> None:
        net = run_network(pages, setup, seed, v)
        where.append({"seed": seed, "label": v.label(), "net": asdict(v), "network": net})
        save()
        print(f"  seed {seed} {v.label()}: network held-out loss {net['curve']['loss'][-1]:.4f} "
              f"[{net['seconds']:.0f}s]")
        sys.stdout.flush()

    def headline(seed: int) -> None:
        if args.network_only:
            network_only(seed, main_net, results["main"]["runs"])
            return
        ts = time.perf_counter()
        central = centrals[seed] = central_cached(cache, pages, setup, seed, main_net)
        net = run_network(pages, setup, seed, main_net)
        summ = summarize(net, central, n_params, main_net.steps)
        results["main"]["runs"].append({"seed": seed, "central": central, "network": net, "summary": summ,
                                        "central_last20pct_change": central_plateau(central)})
        save()
        print(f"  seed {seed}: network {summ['loss_network']:.4f} vs centralized {summ['loss_central']:.4f} -> "
              f"ratio {summ['loss_ratio']:.4f}, token-equiv {summ['token_equivalence']:.3f}, upload "
              f"{summ['upload_reduction_vs_ddp_fp32']:,.0f}x less; central {central['seconds']:.0f}s"
              f"{' (cached)' if central.get('cached') else ''}, network {net['seconds']:.0f}s (train "
              f"{net['seconds_train']:.0f}s, select {net['seconds_select']:.0f}s), kept/round "
              f"{statistics.mean(net['kept_per_round']):.2f} [{time.perf_counter() - ts:.0f}s]")
        sys.stdout.flush()

    def sweep(seed: int) -> None:
        if args.network_only:
            for v in rows:
                network_only(seed, v, results["sweep"])
            return
        if seed not in centrals:
            centrals[seed] = central_cached(cache, pages, setup, seed, main_net)
        for v in rows:
            # A row with another H, round count or fragment count trains on other pages (assignments are per
            # window and per fragment), so it gets its own centralized twin: the headline's would compare
            # different data (at H=5 the twin's loss is ~0.4 nats lower at 1,000 steps than at H=10).
            own = own_twin(v, main_net)
            twin = central_cached(cache, pages, setup, seed, v) if own else centrals[seed]
            net = run_network(pages, setup, seed, v)
            summ = summarize(net, twin, n_params, main_net.steps)
            results["sweep"].append({"seed": seed, "label": v.label(), "net": asdict(v), "network": net,
                                     "summary": summ, "twin": "own" if own else "headline",
                                     **({"central": twin} if own else {})})
            save()
            print(f"  sweep seed {seed} {v.label()}: ratio {summ['loss_ratio']:.4f}, token-equiv "
                  f"{summ['token_equivalence']:.3f} [{net['seconds']:.0f}s]")
            sys.stdout.flush()

    # the first seed's headline, then the sweep rows (their comparison is on that seed), then the other seeds
    sweep_seeds = parse_list(args.sweep_seeds, int) if args.sweep_seeds else seeds[:1]
    if not args.rows_only:
        headline(seeds[0])
    for seed in sweep_seeds if rows else []:
        sweep(seed)
    for seed in seeds[1:] if not args.rows_only else []:
        headline(seed)
    if args.rows_only or args.network_only:
        results["complete"] = True
        save()
        print(f"wrote {json_path}; total {time.perf_counter() - t_start:.0f}s wall, {time.process_time():.0f}s CPU")
        return 0

    runs = results["main"]["runs"]
    print()
    print(f"== Deployed network vs centralized AdamW, equal tokens ({runs[0]['summary']['tokens'] / 1e6:.3f}M), "
          f"preset {args.preset}, seeds {seeds}: mean ± stdev (min, max) ==")
    print(f"  network: {main_net.label()}")
    trs = table_rows(runs)
    w = max(len(r[0]) for r in trs)
    for name, val in trs:
        print(f"  {name:<{w}}  {val}")
    per_art = statistics.mean(r["summary"]["upload_bytes_per_miner_mean"] for r in runs) / main_net.rounds
    mean_frag = statistics.mean(frag_params)
    print(f"  mean {per_art:,.0f} B/artifact = {8 * per_art / mean_frag:.3f} bits per fragment param "
          f"({4 * mean_frag / per_art:.0f}x vs fp32 of the fragment)")
    if results["sweep"]:
        print()
        print("== Sweep rows (labelled; each against the same seed's centralized run at equal tokens) ==")
        for seed in sweep_seeds:
            base = next((r for r in runs if r["seed"] == seed), None)
            if base is not None:
                print(f"  seed {seed} {main_net.label():<80} ratio {base['summary']['loss_ratio']:.4f} "
                      f"tok-eq {base['summary']['token_equivalence']:.3f}  <- headline")
            for r in results["sweep"]:
                if r["seed"] == seed:
                    print(f"  seed {seed} {r['label']:<80} ratio {r['summary']['loss_ratio']:.4f} "
                          f"tok-eq {r['summary']['token_equivalence']:.3f}")
    results["complete"] = True
    save()
    plot(results, png_path)
    print()
    print(f"wrote {json_path} and {png_path}; total {time.perf_counter() - t_start:.0f}s wall, "
          f"{time.process_time():.0f}s CPU (wall >> CPU means the cores were shared)")
    return 0


def parse_list(text: str, conv: Any) -> list[Any]:
    return [conv(x) for x in text.split(",") if x.strip()] if text else []


if __name__ == "__main__":
    raise SystemExit(main())
