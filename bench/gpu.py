"""The miner's inner loop and the validator's scoring on this machine's device, per model preset.

Prints one table with, per preset: inner-loop tokens/s and MFU at the
neurons' default configuration (TrainConfig, ModelConfig.n_fragments, page
length 129, the device's default precision), the fp32 / bf16-autocast ratio
measured side by side (interleaved repeats, medians), encode and decode time
of the fragment's pseudo-gradient, the held-out improvement of one
contribution scored in fp32 and under bf16 autocast (how far scores move
with the device's precision), validator contributions scored per minute
(read_artifact + decode + the real score_contribution with NETWORK_SCORE),
and peak memory (host RSS; device memory on CUDA). Each preset runs in a fresh
subprocess so its peak memory is its own.

MFU is model FLOPs over the measured peak of a large matmul in the same
process, same threads, same dtype, measured between the timed runs (no vendor
peak is assumed). Both are timed in device seconds: on the CPU the process's
CPU time, so other jobs on a shared box change tokens/s (wall) but not MFU;
on CUDA wall time after a synchronize. Model FLOPs per token:
forward 2N + backward 2N (activation gradients through every layer; fragment
0 is trained, the worst case) + 2N_frag (its weight gradients) + attention
12*L*s*d, N the non-embedding parameters.

Token pages are synthetic (uniform random ids in the preset's vocabulary):
throughput does not depend on the text, and the hub tokenizer of 125m/1b is
not reachable offline. The device is named in every row; without a GPU the
table holds CPU figures only.

Run: .venv/bin/python bench/gpu.py [--presets tiny,small,125m] [--device auto] [--threads 2]
     [--steps 3] [--json bench/results/gpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _clock(device: Any) -> float:
    """Seconds the device computed: CPU time of this process on the CPU (other jobs on a shared box do not
    count), wall time after a synchronize on CUDA."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def _matmul_peak(device: Any, dtype: Any, n: int) -> float:
    """FLOP/s of an n x n matmul on `device` in `dtype` (best of 3 after a warm-up, by `_clock`)."""
    import torch

    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    times = []
    for i in range(4):
        t = _clock(device)
        (a @ b).sum().item()
        if i:
            times.append(_clock(device) - t)
    return 2 * n**3 / min(times)


def _flops_per_token(model: Any, frag_params: int, seq: int) -> float:
    cfg = model.config
    n_embed = cfg.vocab_size * cfg.hidden_size
    n = sum(p.numel() for p in model.parameters()) - n_embed  # the input embedding is a lookup
    return 4 * n + 2 * max(0, frag_params - n_embed) + 12 * cfg.num_hidden_layers * seq * cfg.hidden_size


def one(preset: str, device_req: str, threads: int, steps: int, contributions: int, compare: bool) -> dict[str, Any]:
    import numpy as np
    import torch
    from bittensor.sp_core import Keypair
    from loguru import logger

    logger.remove()
    torch.set_num_threads(threads)
    from subnet.codec.config import CodecConfig
    from subnet.codec.sparseloco import Encoder, decode
    from subnet.codec.wire import ArtifactHeader, read_artifact, write_artifact
    from subnet.data.pages import TokenPages
    from subnet.device.config import DeviceConfig
    from subnet.device.consensus import DeviceReplica
    from subnet.device.memory import memory_report, reset_peak
    from subnet.device.precision import autocast, dtype_name
    from subnet.device.select import select_device
    from subnet.miner.config import TrainConfig
    from subnet.miner.distributed import shard_batches
    from subnet.miner.train import inner_train, prepare_training
    from subnet.model.config import ModelConfig
    from subnet.model.fragments import trainable_parameters
    from subnet.node.config import NETWORK_SCORE
    from subnet.node.globalmodel import build_global_model
    from subnet.storage.config import StoreConfig
    from subnet.validator.scoring import compute_baseline, page_batches, score_contribution

    choice = select_device(device_req, DeviceConfig())
    dev = choice.device
    mc, tc = ModelConfig(), TrainConfig()
    t0 = time.perf_counter()
    gm = build_global_model(preset, mc.n_fragments, mc.seed)
    build_s = time.perf_counter() - t0
    vocab, page_len = gm.model.config.vocab_size, 129
    rng = np.random.default_rng(0)
    n_pages = 256
    pages = TokenPages(rng.integers(0, vocab, size=n_pages * page_len, dtype=np.int64).astype(np.int32),
                       page_len=page_len, heldout_fraction=0.25)
    replica = DeviceReplica(gm.model, dev)
    model = replica.refresh()
    frag = gm.fragment(0)
    frag_params = sum(p.numel() for p in trainable_parameters(model, frag).values())
    fpt = _flops_per_token(model, frag_params, page_len - 1)
    precisions = [choice.autocast_dtype]
    if compare:
        other = torch.bfloat16 if choice.autocast_dtype is None else None
        precisions.append(other)
    runs = {p: prepare_training(model, dev, p, DeviceConfig()) for p in precisions}
    cfg_steps = TrainConfig(**{**tc.__dict__, "inner_steps": steps, "warmup_steps": 0})
    cfg_warm = TrainConfig(**{**tc.__dict__, "inner_steps": 1, "warmup_steps": 0})
    idx = tuple(range(tc.batch_size * 2))
    reset_peak(dev)
    for p in precisions:  # warm-up: allocator, kernels, first-touch
        inner_train(model, frag, shard_batches(pages, idx, tc.batch_size, 1), cfg_warm, runtime=runs[p])
    secs: dict[Any, list[float]] = {p: [] for p in precisions}
    busy: list[float] = []  # device seconds of the default precision's runs (CPU time on the CPU)
    peaks: list[float] = []
    peak_dtype = choice.autocast_dtype or torch.float32
    res = None
    for _ in range(2 if compare else 1):
        for p in precisions:  # interleaved: load on the box hits both alike
            peaks.append(_matmul_peak(dev, peak_dtype, 4096 if dev.type == "cuda" else 1024))
            c = _clock(dev)
            r = inner_train(model, frag, shard_batches(pages, idx, tc.batch_size, steps), cfg_steps, runtime=runs[p])
            secs[p].append(r.stats.seconds)
            if p is choice.autocast_dtype:
                res = r
                busy.append(_clock(dev) - c)
    assert res is not None
    tokens = res.stats.tokens
    tps = {dtype_name(p): tokens / statistics.median(s) for p, s in secs.items()}
    peak = max(peaks)
    head = tps[dtype_name(choice.autocast_dtype)]
    busy_tps = tokens / statistics.median(busy)
    mem_train = memory_report(dev)
    # codec: encode + sign, read + decode the fragment's pseudo-gradient
    codec = CodecConfig()
    shapes = gm.shapes(0)
    kp = Keypair.create_from_uri("//TesseraGpuBench")
    enc = Encoder(shapes, codec)
    t = time.perf_counter()
    header = ArtifactHeader(netuid=1, window=1, uid=0, hotkey=kp.ss58_address, fragment=0, base_version=0)
    data = write_artifact(enc.encode(res.pseudo_grad), header, kp)
    encode_s = time.perf_counter() - t
    max_bytes = StoreConfig().max_artifact_bytes
    t = time.perf_counter()
    art = read_artifact(data, expected_hotkey=kp.ss58_address, max_bytes=max_bytes, shapes=shapes)
    delta = decode(art.encoded, shapes)
    decode_s = time.perf_counter() - t
    # validator: the real score_contribution on the device replica, in the device's default precision
    scfg = NETWORK_SCORE
    with torch.no_grad(), autocast(dev, choice.autocast_dtype):
        mv = lambda bs: [b.to(dev) for b in bs]  # noqa: E731
        heldout_b = mv(page_batches(pages, tuple(range(scfg.batch_size * scfg.n_heldout_batches)), "heldout",
                                    scfg.batch_size, scfg.n_heldout_batches))
        random_b = mv(page_batches(pages, tuple(range(100, 100 + scfg.pow_batch_size * scfg.n_random_batches)),
                                   "train", scfg.pow_batch_size, scfg.n_random_batches))
        t = time.perf_counter()
        baseline = compute_baseline(model, heldout_b, random_b)
        baseline_s = time.perf_counter() - t
        params = trainable_parameters(model, frag)
        dev_delta = {k: v.to(dev) for k, v in delta.items()}
        score_s = []
        for c in range(contributions):
            assigned_b = mv(page_batches(pages, idx[c:c + scfg.pow_batch_size * scfg.n_assigned_batches], "train",
                                         scfg.pow_batch_size, scfg.n_assigned_batches))
            t = time.perf_counter()
            read_artifact(data, expected_hotkey=kp.ss58_address, max_bytes=max_bytes, shapes=shapes)
            score_contribution(model, params, dev_delta, scfg, assigned_b, heldout_b, random_b, baseline)
            score_s.append(time.perf_counter() - t + decode_s)
        drift = None
        if compare:  # the same contribution scored in fp32 and under bf16 autocast, on this device
            scores = {}
            for p in (None, torch.bfloat16):
                with autocast(dev, p):
                    base_p = compute_baseline(model, heldout_b, random_b)
                    scores[dtype_name(p)] = score_contribution(model, params, dev_delta, scfg, assigned_b, heldout_b,
                                                               random_b, base_p)
            h32, h16 = scores["fp32"].heldout_improvement, scores["bf16"].heldout_improvement
            drift = {"heldout_improvement_fp32": h32, "heldout_improvement_bf16": h16,
                     "heldout_loss_fp32": scores["fp32"].heldout_before,
                     "heldout_loss_bf16": scores["bf16"].heldout_before}
    mem = memory_report(dev)
    out = {
        "preset": preset, "device": choice.label, "precision": dtype_name(choice.autocast_dtype), "threads": threads,
        "params": sum(p.numel() for p in gm.model.parameters()), "fragment0_params": frag_params,
        "n_fragments": mc.n_fragments, "batch_pages": tc.batch_size, "page_len": page_len, "steps_timed": steps,
        "build_s": build_s, "tokens_per_s": head, "tokens_per_s_by_precision": tps,
        "tokens_per_device_s": busy_tps, "flops_per_token": fpt, "matmul_peak_flops": peak,
        "mfu": busy_tps * fpt / peak,
        "encode_s": encode_s, "decode_s": decode_s, "artifact_bytes": len(data), "baseline_s": baseline_s,
        "score_s_median": statistics.median(score_s), "contributions_per_min": 60 / statistics.median(score_s),
        "peak_host_rss_mb": mem["host_peak_rss_bytes"] / 2**20,
        "train_peak_device_mb": mem_train.get("max_memory_allocated_bytes", 0) / 2**20 or None,
    }
    if drift is not None:
        out["score_drift"] = drift
    if "bf16" in tps and "fp32" in tps:
        out["bf16_over_fp32"] = tps["bf16"] / tps["fp32"]
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("| preset | device | precision | tokens/s (wall) | tokens/device-s | MFU (of measured matmul peak) | "
            "bf16/fp32 tokens/s | encode s | decode s | contributions scored/min | peak host RSS MB | peak device MB |")
    lines = [head, "|" + "|".join("---" for _ in range(12)) + "|"]
    for r in rows:
        ratio = f"{r['bf16_over_fp32']:.2f}" if "bf16_over_fp32" in r else "-"
        dev_mb = f"{r['train_peak_device_mb']:.0f}" if r.get("train_peak_device_mb") else "-"
        lines.append(f"| {r['preset']} | {r['device']} | {r['precision']} | {r['tokens_per_s']:.0f} | "
                     f"{r['tokens_per_device_s']:.0f} | "
                     f"{100 * r['mfu']:.1f}% | {ratio} | {r['encode_s']:.3f} | {r['decode_s']:.3f} | "
                     f"{r['contributions_per_min']:.1f} | {r['peak_host_rss_mb']:.0f} | {dev_mb} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="tiny,small,125m")
    ap.add_argument("--device", default=os.environ.get("TESSERA_DEVICE", "auto"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the neurons' default)")
    ap.add_argument("--steps", type=int, default=3, help="inner steps timed per repeat (after one warm-up step)")
    ap.add_argument("--contributions", type=int, default=3, help="contributions scored (median)")
    ap.add_argument("--no-compare", action="store_true", help="skip the fp32 / bf16 side-by-side")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.device, args.threads, args.steps, args.contributions,
                             not args.no_compare)))
        return 0
    rows, t0 = [], time.perf_counter()
    for preset in [p for p in args.presets.split(",") if p]:
        big = preset in ("125m", "1b", "8b")
        cmd = [sys.executable, __file__, "--one", preset, "--device", args.device, "--threads", str(args.threads),
               "--steps", str(max(1, args.steps - 1) if big else args.steps),
               "--contributions", str(1 if big else args.contributions)]
        if args.no_compare or big:
            cmd.append("--no-compare")
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["wall_s"] = time.perf_counter() - t
        rows.append(row)
        print(f"{preset}: {row['tokens_per_s']:.0f} tokens/s on {row['device']} ({row['wall_s']:.0f}s)",
              file=sys.stderr)
    print(_table(rows))
    print(f"\n{len(rows)} presets in {time.perf_counter() - t0:.0f}s; 1-min load average {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "command": " ".join(sys.argv), "load_average": os.getloadavg(),
                                         "date": time.strftime("%Y-%m-%d")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
