"""Codec benchmark: physical compression, encode/decode cost, and the loss price of compression.

Run: `.venv/bin/python bench/codec.py` (flags: `--help`). Everything is
measured in one process, side by side, with torch.set_num_threads(1):

1. Bytes: one whole signed artifact (safetensors container, metadata and
   signature included) vs dense fp32 / bf16 of the same fragment; bits/param;
   the same for an artifact holding only the 2-D tensors.
2. Cost: median encode time vs one H-step window of AdamW steps, and
   decode + apply + revert vs one eval forward batch (interleaved repeats).
3. Loss: simulated workers in one process train from the same global model;
   (a) dense fp32 pseudo-gradients averaged (FedAvg) vs (b) the codec with
   error feedback, every update going through write_artifact/read_artifact;
   same seeds, same data order, same tokens. Then a small gap table over
   density x H at equal tokens.

Results are printed as tables and written as JSON (`--out`).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bittensor.sp_core import Keypair  # noqa: E402
from loguru import logger  # noqa: E402

from subnet.codec import (  # noqa: E402
    ArtifactHeader,
    CodecConfig,
    Encoder,
    apply_sparse,
    decode,
    decode_sparse,
    read_artifact,
    write_artifact,
)
from subnet.data.config import DataConfig  # noqa: E402
from subnet.data.pages import TokenPages, load_pages  # noqa: E402
from subnet.model.fragments import partition  # noqa: E402
from subnet.model.presets import build_model, get_preset  # noqa: E402

TEMPLAR_REF = "templar codec (notes, not measured here): 70.5x vs fp32 at 5M params, 54.7x at 1M"


def lm_loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) of [B, T+1] token rows."""
    logits = model(input_ids=batch[:, :-1]).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def _median_time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _header(kp: Keypair, fragment: int = 0, window: int = 0) -> ArtifactHeader:
    return ArtifactHeader(netuid=1, window=window, uid=0, hotkey=kp.ss58_address, fragment=fragment, base_version=0)


# -- 1. bytes ---------------------------------------------------------------------------------------


def _pseudo_grad(model: torch.nn.Module, names: list[str], pages: TokenPages, *, steps: int, batch: int, seq: int,
                 lr: float) -> dict[str, torch.Tensor]:
    """A real pseudo-gradient (start - end) after a few AdamW steps on the given parameters."""
    params = dict(model.named_parameters())
    start = {n: params[n].detach().clone() for n in names}
    opt = torch.optim.AdamW([params[n] for n in names], lr=lr)
    for s in range(steps):
        rows = pages.batch(list(range(s * batch, (s + 1) * batch)))[:, : seq + 1]
        lm_loss(model, rows).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    out = {n: start[n] - params[n].detach() for n in names}
    with torch.no_grad():
        for n in names:
            params[n].copy_(start[n])
    return out


def measure_bytes(preset: str, n_fragments: int, cfg: CodecConfig, pages: TokenPages, args) -> list[dict]:
    model = build_model(preset, seed=0)
    shapes_all = {n: tuple(p.shape) for n, p in model.named_parameters()}
    kp = Keypair.create_from_uri("//BenchMiner")
    rows = []
    for frag in partition(model, n_fragments):
        names = list(frag.param_names)
        pg = _pseudo_grad(model, names, pages, steps=2, batch=args.batch, seq=args.seq, lr=args.lr)
        for subset in ("all", "2d"):
            sel = [n for n in names if subset == "all" or len(shapes_all[n]) == 2]
            shapes = {n: shapes_all[n] for n in sel}
            enc = Encoder(shapes, cfg)
            enc.encode({n: pg[n] for n in sel})  # warm the EF buffer: a second window is the steady state
            encoded = enc.encode({n: pg[n] for n in sel})
            data = write_artifact(encoded, _header(kp, frag.index), kp)
            read_artifact(data, expected_hotkey=kp.ss58_address, max_bytes=len(data), shapes=shapes, codec=cfg)
            n = sum(math.prod(s) for s in shapes.values())
            rows.append({
                "preset": preset, "fragments": n_fragments, "fragment": frag.name, "subset": subset, "params": n,
                "tensors": len(sel), "artifact_bytes": len(data), "payload_bytes": encoded.payload_bytes(),
                "fp32_bytes": 4 * n, "bf16_bytes": 2 * n, "x_vs_fp32": 4 * n / len(data),
                "x_vs_bf16": 2 * n / len(data),
                "bits_per_param": 8 * len(data) / n, "payload_bits_per_param": 8 * encoded.payload_bytes() / n,
            })
    return rows


# -- 2. cost ----------------------------------------------------------------------------------------


def measure_cost(preset: str, cfg: CodecConfig, pages: TokenPages, args) -> dict:
    """Interleaved medians: train step, encode, eval batch, read+verify, decode+apply+revert."""
    model = build_model(preset, seed=0)
    params = dict(model.named_parameters())
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    enc = Encoder(shapes, cfg)
    kp = Keypair.create_from_uri("//BenchMiner")
    rows = pages.batch(list(range(args.batch)))[:, : args.seq + 1]
    eval_rows = pages.batch(list(range(args.batch)), split="heldout")[:, : args.seq + 1]
    pg = {n: torch.randn(s) * 1e-3 for n, s in shapes.items()}
    data = write_artifact(enc.encode(pg), _header(kp), kp)
    times: dict[str, list[float]] = {k: [] for k in ("step", "encode", "eval", "read", "decode_apply_revert",
                                                     "decode_dense")}

    def step() -> None:
        lm_loss(model, rows).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def evaluate() -> None:
        with torch.no_grad():
            lm_loss(model, eval_rows)

    art = read_artifact(data, expected_hotkey=kp.ss58_address, max_bytes=len(data), shapes=shapes, codec=cfg)

    def read() -> None:
        read_artifact(data, expected_hotkey=kp.ss58_address, max_bytes=len(data), shapes=shapes, codec=cfg)

    def dar() -> None:
        undo = apply_sparse(params, decode_sparse(art.encoded), scale=-1.0)
        undo.revert()

    step()  # warm-up
    for _ in range(args.repeats):
        times["step"].append(_median_time(step, 1))
        times["encode"].append(_median_time(lambda: enc.encode(pg), 1))
        times["eval"].append(_median_time(evaluate, 1))
        times["read"].append(_median_time(read, 1))
        times["decode_apply_revert"].append(_median_time(dar, 1))
        times["decode_dense"].append(_median_time(lambda: decode(art.encoded), 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"preset": preset, "params": sum(p.numel() for p in params.values()), "batch": args.batch, "seq": args.seq,
           "repeats": args.repeats, **{f"{k}_s": v for k, v in med.items()}}
    for h in (15, 30):
        out[f"encode_frac_H{h}"] = med["encode"] / (h * med["step"])
    out["encode_per_step"] = med["encode"] / med["step"]
    out["dar_frac_eval"] = med["decode_apply_revert"] / med["eval"]
    out["read_frac_eval"] = med["read"] / med["eval"]
    return out


# -- 3. loss ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    preset: str
    workers: int
    H: int
    rounds: int
    batch: int
    seq: int
    lr: float
    warmup: int
    weight_decay: float
    outer_lr: float
    outer_lr_codec: float
    codec_agg: str  # 'sender-mean' (each coordinate averaged over the workers that sent it) or 'mean'
    eval_pages: int
    curve_points: int


def _lr_at(step: int, total: int, sim: SimConfig) -> float:
    if step < sim.warmup:
        return sim.lr * (step + 1) / sim.warmup
    frac = (step - sim.warmup) / max(1, total - sim.warmup)
    return sim.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def heldout_loss(model: torch.nn.Module, pages: TokenPages, sim: SimConfig) -> float:
    losses = []
    with torch.no_grad():
        for start in range(0, sim.eval_pages, 16):
            idx = list(range(start, min(sim.eval_pages, start + 16)))
            rows = pages.batch(idx, split="heldout")[:, : sim.seq + 1]
            losses.append(float(lm_loss(model, rows)) * len(idx))
    return sum(losses) / sim.eval_pages


def simulate(sim: SimConfig, method: str, cfg: CodecConfig | None, seed: int, pages: TokenPages) -> dict:
    """R workers x H AdamW steps per round from the shared model; outer step = mean pseudo-gradient."""
    outer_lr = sim.outer_lr_codec if method == "codec" else sim.outer_lr
    torch.manual_seed(seed)
    glob = build_model(sim.preset, seed=seed)
    names = [n for n, _ in glob.named_parameters()]
    shapes = {n: tuple(p.shape) for n, p in glob.named_parameters()}
    gparams = dict(glob.named_parameters())
    workers = [build_model(sim.preset, seed=seed) for _ in range(sim.workers)]
    opts = [torch.optim.AdamW(w.parameters(), lr=sim.lr, betas=(0.9, 0.95), weight_decay=sim.weight_decay)
            for w in workers]
    encs = [Encoder(shapes, cfg) for _ in workers] if method == "codec" else []
    kps = [Keypair.create_from_uri(f"//SimWorker{r}") for r in range(sim.workers)]
    order = torch.randperm(pages.n_train, generator=torch.Generator().manual_seed(seed))
    total_steps = sim.rounds * sim.H
    per_step = sim.workers * sim.batch
    curve, bytes_up, t0 = [], 0, time.perf_counter()
    every = max(1, sim.rounds // max(1, sim.curve_points))
    for rnd in range(sim.rounds):
        agg = {n: torch.zeros(shapes[n]) for n in names}
        senders = {n: torch.zeros(shapes[n]) for n in names}
        for r, (w, opt) in enumerate(zip(workers, opts)):
            wparams = dict(w.named_parameters())
            with torch.no_grad():
                for n in names:
                    wparams[n].copy_(gparams[n])
            for h in range(sim.H):
                step = rnd * sim.H + h
                for g in opt.param_groups:
                    g["lr"] = _lr_at(step, total_steps, sim)
                base = (step * per_step + r * sim.batch) % pages.n_train
                idx = [int(order[(base + i) % pages.n_train]) for i in range(sim.batch)]
                lm_loss(w, pages.batch(idx)[:, : sim.seq + 1]).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            delta = {n: (gparams[n] - wparams[n]).detach() for n in names}
            if method == "dense":
                bytes_up += 4 * sum(d.numel() for d in delta.values())
                for n in names:
                    agg[n] += delta[n]
            else:
                data = write_artifact(encs[r].encode(delta), _header(kps[r], window=rnd), kps[r])
                bytes_up += len(data)
                art = read_artifact(data, expected_hotkey=kps[r].ss58_address, max_bytes=len(data), shapes=shapes,
                                    window=rnd, codec=cfg)
                for s in decode_sparse(art.encoded, shapes):
                    agg[s.name].view(-1).index_add_(0, s.index, s.values)
                    senders[s.name].view(-1).index_add_(0, s.index, torch.ones_like(s.values))
        with torch.no_grad():
            for n in names:
                if method == "codec" and sim.codec_agg == "sender-mean":
                    gparams[n].sub_(agg[n] / senders[n].clamp(min=1.0), alpha=outer_lr)
                else:
                    gparams[n].sub_(agg[n], alpha=outer_lr / sim.workers)
        if (rnd + 1) % every == 0 or rnd + 1 == sim.rounds:
            curve.append((rnd + 1, heldout_loss(glob, pages, sim)))
    n_params = sum(math.prod(s) for s in shapes.values())
    return {"method": method, "seed": seed, "H": sim.H, "rounds": sim.rounds, "outer_lr": outer_lr,
            "density": cfg.density if cfg else 1.0, "final_loss": curve[-1][1], "curve": curve,
            "bytes_up_per_worker": bytes_up / sim.workers,
            "bits_per_param_per_round": 8 * bytes_up / sim.workers / sim.rounds / n_params,
            "tokens": sim.rounds * sim.H * sim.workers * sim.batch * sim.seq, "wall_s": time.perf_counter() - t0}


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ratio-presets", default="tiny,small", help="presets for the bytes table")
    p.add_argument("--fragments", default="1,3", help="fragment counts for the bytes table")
    p.add_argument("--cost-presets", default="tiny,small", help="presets for the timing table")
    p.add_argument("--chunk", type=int, default=CodecConfig().chunk)
    p.add_argument("--topk", type=int, default=CodecConfig().topk)
    p.add_argument("--value-bits", type=int, default=CodecConfig().value_bits)
    p.add_argument("--ef-decay", type=float, default=0.99,
                   help="EF decay for the bench (CodecConfig default 0.95; 0.99 won a 160-round sweep, seed 0)")
    p.add_argument("--batch", type=int, default=8, help="pages per train/eval batch in the timing table")
    p.add_argument("--seq", type=int, default=128, help="tokens per row in the timing table")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3, help="inner AdamW peak lr")
    p.add_argument("--sim-preset", default="tiny")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--H", type=int, default=2, help="inner steps per round in the main loss comparison")
    p.add_argument("--rounds", type=int, default=0, help="outer rounds (0 = ceil(10 / density))")
    p.add_argument("--sim-batch", type=int, default=4)
    p.add_argument("--sim-seq", type=int, default=64)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--weight-decay", type=float, default=0.1)
    # Outer lrs: best of a 160-round sweep on seed 0, tiny, 2 workers, H=2 (held-out loss):
    #   dense 1 / 1.5 / 2 / 3 -> 5.258 / 5.180 / 5.200 / 5.225
    #   codec (EF 0.99, plain mean) 2 / 3 / 4 / 6 -> 5.297 / 5.242 / 5.300 / 5.477; EF 0.95 at 2 / 3 -> 5.391 / 5.301
    #   codec (EF 0.99, sender-mean) 1.5 / 2 -> 5.257 / 5.293
    # A plain mean of sparse updates with mostly disjoint supports shrinks each coordinate by ~1/workers, hence
    # the larger codec lr. The gap table reuses these lrs for every (H, density): it is not re-tuned per cell.
    p.add_argument("--outer-lr", type=float, default=1.5, help="outer lr of the dense baseline (1.0 = plain FedAvg)")
    p.add_argument("--outer-lr-codec", type=float, default=3.0, help="outer lr of the codec runs (0 = --outer-lr)")
    p.add_argument("--codec-agg", choices=("sender-mean", "mean"), default="mean",
                   help="codec aggregation: per-coordinate mean over the workers that sent it (templar's scatter "
                        "'mean'), or a plain mean over all workers")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--eval-pages", type=int, default=64)
    p.add_argument("--tradeoff-H", default="2,8", help="H values of the gap table ('' to skip)")
    p.add_argument("--tradeoff-topk", default="64,256", help="topk values (per chunk) of the gap table")
    p.add_argument("--skip", default="", help="comma list of sections to skip: bytes,cost,loss,tradeoff")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "codec.json"))
    return p.parse_args(argv)


def _codec(args, topk: int | None = None) -> CodecConfig:
    return CodecConfig(chunk=args.chunk, topk=topk or args.topk, value_bits=args.value_bits, ef_decay=args.ef_decay)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    skip = set(filter(None, args.skip.split(",")))
    cfg = _codec(args)
    print(f"config: {json.dumps(vars(args))}")
    print(f"codec: {cfg} (density {cfg.density:.4%}); torch {torch.__version__}, threads 1, "
          f"{platform.processor() or platform.machine()}")
    print("bytes convention: physical = len(signed safetensors file), container + metadata + signature included")
    results: dict = {"config": vars(args), "codec": asdict(cfg)}
    pages_cache: dict[int, TokenPages] = {}

    def pages_for(preset: str) -> TokenPages:
        v = get_preset(preset).vocab_size
        if v not in pages_cache:
            pages_cache[v] = load_pages(DataConfig(vocab_size=v))
        return pages_cache[v]

    if "bytes" not in skip:
        rows = []
        for preset in filter(None, args.ratio_presets.split(",")):
            for f in (int(x) for x in args.fragments.split(",")):
                rows += measure_bytes(preset, f, cfg, pages_for(preset), args)
        results["bytes"] = rows
        print(f"\n## 1. physical bytes per artifact ({TEMPLAR_REF})")
        print(f"{'preset':6} {'F':>2} {'fragment':16} {'set':3} {'params':>9} {'file B':>9} {'payload B':>9} "
              f"{'x fp32':>7} {'x bf16':>7} {'bits/p':>7}")
        for r in rows:
            print(f"{r['preset']:6} {r['fragments']:>2} {r['fragment']:16} {r['subset']:3} {r['params']:>9} "
                  f"{r['artifact_bytes']:>9} {r['payload_bytes']:>9} {r['x_vs_fp32']:>7.1f} {r['x_vs_bf16']:>7.1f} "
                  f"{r['bits_per_param']:>7.3f}")

    if "cost" not in skip:
        rows = [measure_cost(p, cfg, pages_for(p), args) for p in filter(None, args.cost_presets.split(","))]
        results["cost"] = rows
        print(f"\n## 2. cost (medians of {args.repeats} interleaved repeats, batch {args.batch}x{args.seq})")
        print(f"{'preset':6} {'params':>9} {'step s':>8} {'encode s':>9} {'enc/step':>8} {'enc/H15':>8} {'enc/H30':>8} "
              f"{'eval s':>8} {'read s':>8} {'d+a+r s':>8} {'dar/eval':>8}")
        for r in rows:
            print(f"{r['preset']:6} {r['params']:>9} {r['step_s']:>8.4f} {r['encode_s']:>9.4f} "
                  f"{r['encode_per_step']:>8.3f} "
                  f"{r['encode_frac_H15']:>8.2%} {r['encode_frac_H30']:>8.2%} {r['eval_s']:>8.4f} {r['read_s']:>8.4f} "
                  f"{r['decode_apply_revert_s']:>8.4f} {r['dar_frac_eval']:>8.2%}")

    seeds = [int(s) for s in args.seeds.split(",")]

    def sim_cfg(H: int, rounds: int) -> SimConfig:
        return SimConfig(preset=args.sim_preset, workers=args.workers, H=H, rounds=rounds, batch=args.sim_batch,
                         seq=args.sim_seq, lr=args.lr, warmup=args.warmup, weight_decay=args.weight_decay,
                         outer_lr=args.outer_lr, outer_lr_codec=args.outer_lr_codec or args.outer_lr,
                         codec_agg=args.codec_agg,
                         eval_pages=args.eval_pages, curve_points=8)

    runs: dict[tuple, dict] = {}
    main_rounds = args.rounds or math.ceil(10 / cfg.density)
    steps_total = main_rounds * args.H  # tokens are held equal across the gap table
    if "loss" not in skip:
        pages = pages_for(args.sim_preset)
        sim = sim_cfg(args.H, main_rounds)
        print(f"\n## 3. held-out loss, {args.sim_preset}, {args.workers} workers, H={args.H}, {main_rounds} rounds, "
              f"batch {args.sim_batch}x{args.sim_seq} per worker-step, outer lr dense {sim.outer_lr} / codec "
              f"{sim.outer_lr_codec}", flush=True)
        for seed in seeds:  # interleave methods per seed so machine load drifts hit both alike
            for method in ("dense", "codec"):
                res = simulate(sim, method, cfg if method == "codec" else None, seed, pages)
                runs[(method, args.H, cfg.topk if method == "codec" else None, seed)] = res
                print(f"  seed {seed} {method:5}: loss {res['final_loss']:.4f}  ({res['wall_s']:.0f}s)", flush=True)
        gaps = [runs[("codec", args.H, cfg.topk, s)]["final_loss"] / runs[("dense", args.H, None, s)]["final_loss"] - 1
                if ("dense", args.H, None, s) in runs else None for s in seeds]
        results["loss"] = {"sim": asdict(sim), "runs": [v for v in runs.values()], "gap_rel_per_seed": gaps}

    if "tradeoff" not in skip and args.tradeoff_H:
        pages = pages_for(args.sim_preset)
        seed = seeds[0]
        table = []
        for H in (int(h) for h in args.tradeoff_H.split(",")):
            sim = sim_cfg(H, max(1, steps_total // H))
            if ("dense", H, None, seed) not in runs:
                runs[("dense", H, None, seed)] = simulate(sim, "dense", None, seed, pages)
            for k in (int(k) for k in args.tradeoff_topk.split(",")):
                c = _codec(args, k)
                if ("codec", H, k, seed) not in runs:
                    runs[("codec", H, k, seed)] = simulate(sim, "codec", c, seed, pages)
                d, q = runs[("dense", H, None, seed)], runs[("codec", H, k, seed)]
                table.append({"H": H, "topk": k, "density": c.density, "rounds": sim.rounds,
                              "rounds_x_density": sim.rounds * c.density, "dense_loss": d["final_loss"],
                              "codec_loss": q["final_loss"], "gap_rel": q["final_loss"] / d["final_loss"] - 1,
                              "codec_bits_per_param_per_round": q["bits_per_param_per_round"],
                              "x_vs_dense_fp32_per_round": 32 / q["bits_per_param_per_round"]})
                print(f"  tradeoff H={H} k={k}: dense {d['final_loss']:.4f} codec {q['final_loss']:.4f}", flush=True)
        results["tradeoff"] = table
        results.setdefault("loss", {})["all_runs"] = [
            {**v, "key": [str(x) for x in key]} for key, v in runs.items()]

    if "loss" in results and "gap_rel_per_seed" in results["loss"]:
        print("\n## 3a. compression loss gap (codec vs dense FedAvg, same seeds/data/tokens)")
        print(f"{'seed':>4} {'dense':>8} {'codec':>8} {'gap':>8}")
        for s, g in zip(seeds, results["loss"]["gap_rel_per_seed"]):
            print(f"{s:>4} {runs[('dense', args.H, None, s)]['final_loss']:>8.4f} "
                  f"{runs[('codec', args.H, cfg.topk, s)]['final_loss']:>8.4f} {g:>+8.2%}")
        dl = [runs[("dense", args.H, None, s)]["final_loss"] for s in seeds]
        print(f"dense seed spread: {max(dl) - min(dl):.4f} nats; mean gap "
              f"{statistics.mean(results['loss']['gap_rel_per_seed']):+.2%}")
    if "tradeoff" in results:
        print(f"\n## 3b. gap vs density and H at equal tokens ({steps_total} inner steps per worker, seed {seeds[0]})")
        print(f"{'H':>3} {'topk':>5} {'density':>8} {'rounds':>6} {'r*dens':>6} {'dense':>8} {'codec':>8} {'gap':>8} "
              f"{'bits/p/rd':>9} {'x fp32':>7}")
        for r in results["tradeoff"]:
            print(f"{r['H']:>3} {r['topk']:>5} {r['density']:>8.2%} {r['rounds']:>6} {r['rounds_x_density']:>6.1f} "
                  f"{r['dense_loss']:>8.4f} {r['codec_loss']:>8.4f} {r['gap_rel']:>+8.2%} "
                  f"{r['codec_bits_per_param_per_round']:>9.3f} {r['x_vs_dense_fp32_per_round']:>7.1f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
