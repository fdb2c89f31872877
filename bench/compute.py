"""Measured hardware requirements of a miner and a validator, per model preset.

`tiny` and `small` are measured on this CPU with the real code paths, each
role in a fresh subprocess so peak RSS (getrusage ru_maxrss) belongs to that
role alone:

* miner window: `inner_train` (H AdamW steps, TrainConfig defaults) on the
  largest fragment at the default F (ModelConfig.n_fragments), then
  `Encoder.encode` and `write_artifact` (sr25519-signed), then the atomic
  `MinerState.save` the miner does after every upload;
* validator window: the shared baseline (`compute_baseline`), then per
  contribution `read_artifact` (signature + structure checks), `decode` and
  `score_contribution` with NETWORK_SCORE batches, as validator/loop.py does
  (the dense decoded delta of every contribution is kept until aggregation,
  like `Scored.contribution.delta`); at 4/16/64 contributions it runs copy
  detection and the lead's aggregation (select top_g per fragment,
  build_manifest, apply_decoded, model hash, mirror + manifest publish to a
  local store, held-out loss after).

Contributions for the validator come from a separate producer subprocess:
one real inner_train per fragment, then per miner a noise variant of it
encoded by a fresh Encoder and signed by that miner's own keypair, with
fragments and pages from `assign_all` (the real protocol assignment).

`125m`, `1b`, `8b` are never trained: memory is estimated from parameter
counts (count_params on the meta device) with the formulas printed next to
the numbers; artifact sizes come from the codec layout (exact payload bytes
for the fragment shapes). The activation formula is checked against the
saved-for-backward bytes measured on tiny and small.

Run: .venv/bin/python bench/compute.py [--presets tiny,small] [--threads 1,2] [--miners 4,16,64]
     [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LARGE = ("125m", "1b", "8b")
GB = 1e9
CONTROL_UID = 1 << 16  # validator/loop.py: the window's shared control pages


def _rss_mb() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _quiet() -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def _largest_fragment(gm: Any) -> Any:
    sizes = {f.index: sum(p.numel() for n, p in gm.model.named_parameters() if n in set(f.param_names))
             for f in gm.fragments}
    return gm.fragments[max(sizes, key=lambda i: (sizes[i], -i))], sizes


def _assignment_params(pages: Any, n_fragments: int) -> Any:
    from subnet.protocol.assignment import AssignmentParams
    from subnet.protocol.config import ProtocolConfig

    pc = ProtocolConfig()
    return AssignmentParams(n_fragments=n_fragments, pages_per_miner=pc.pages_per_miner, n_train_pages=pages.n_train,
                            n_heldout_pages=pages.n_heldout, heldout_per_window=pc.heldout_per_window)


# --------------------------------------------------------------------------------------------- workers


def worker_miner(preset: str, threads: int, windows: int) -> dict[str, Any]:
    """Run `windows` miner windows on the largest fragment; report times, bytes and peak RSS."""
    import torch

    torch.set_num_threads(threads)
    from bittensor.sp_core import Keypair

    from subnet.codec.config import CodecConfig
    from subnet.codec.sparseloco import Encoder
    from subnet.codec.wire import ArtifactHeader, write_artifact
    from subnet.miner.config import TrainConfig
    from subnet.miner.distributed import shard_batches as _cycle_batches
    from subnet.miner.state import MinerState
    from subnet.miner.train import inner_train
    from subnet.model.config import ModelConfig
    from subnet.model.fragments import fragment_shapes
    from subnet.node.globalmodel import build_global_model, persist
    from subnet.node.runtime import load_data
    from subnet.protocol.assignment import assign

    _quiet()
    rss_import = _rss_mb()
    mc, tc, codec = ModelConfig(), TrainConfig(), CodecConfig()
    gm = build_global_model(preset, mc.n_fragments, mc.seed)
    pages = load_data(preset)
    rss_model = _rss_mb()
    frag, sizes = _largest_fragment(gm)
    ap = _assignment_params(pages, mc.n_fragments)
    kp = Keypair.create_from_uri("//tessera-bench-miner")
    state = MinerState()
    enc = Encoder(fragment_shapes(gm.model, frag), codec)
    out: dict[str, Any] = {"windows": []}
    with tempfile.TemporaryDirectory(prefix="tessera-bench-miner-") as tmp:
        for w in range(windows):
            mine = assign(1000 + w, 0, ap)  # the window's real page assignment; fragment forced to the largest
            batches = _cycle_batches(pages, mine.pages, tc.batch_size, tc.inner_steps)
            t0, c0 = time.perf_counter(), time.process_time()
            res = inner_train(gm.model, frag, batches, tc, state.adam, start_step=state.step)
            t1, c1 = time.perf_counter(), time.process_time()
            encoded = enc.encode(res.pseudo_grad)
            t2 = time.perf_counter()
            header = ArtifactHeader(netuid=1, window=w, uid=0, hotkey=kp.ss58_address, fragment=frag.index,
                                    base_version=gm.version)
            data = write_artifact(encoded, header, kp)
            t3, c3 = time.perf_counter(), time.process_time()
            state.adam, state.step = res.optimizer_state, res.stats.end_step
            state.update_encoder_state(enc.state_dict())
            state.last_window_uploaded = w
            path = state.save(tmp)
            t4 = time.perf_counter()
            out["windows"].append({"train_s": t1 - t0, "encode_s": t2 - t1, "write_s": t3 - t2, "save_s": t4 - t3,
                                   "window_s": t3 - t0, "window_cpu_s": c3 - c0, "train_cpu_s": c1 - c0,
                                   "steps": res.stats.steps, "loss_first": res.stats.losses[0],
                                   "loss_last": res.stats.losses[-1]})
            out["artifact_bytes"] = len(data)
            out["payload_bytes"] = encoded.payload_bytes()
            out["state_file_bytes"] = path.stat().st_size
        persist(gm, tmp)
        out["model_file_bytes"] = sum(f.stat().st_size for f in Path(tmp).glob("global_model*"))
    out.update(preset=preset, threads=threads, n_fragments=mc.n_fragments, fragment=frag.index,
               fragment_params=sizes[frag.index], total_params=sum(p.numel() for p in gm.model.parameters()),
               inner_steps=tc.inner_steps, batch_size=tc.batch_size, page_len=pages.page_len,
               rss_import_mb=rss_import, rss_model_mb=rss_model, peak_rss_mb=_rss_mb())
    return out


def worker_produce(preset: str, n_miners: int, out_dir: str) -> dict[str, Any]:
    """Write `n_miners` signed artifacts (real assignment, fragments and keypairs) for the validator worker."""
    import torch

    torch.set_num_threads(2)
    from bittensor.sp_core import Keypair

    from subnet.codec.config import CodecConfig
    from subnet.codec.sparseloco import Encoder
    from subnet.codec.wire import ArtifactHeader, write_artifact
    from subnet.miner.config import TrainConfig
    from subnet.miner.distributed import shard_batches as _cycle_batches
    from subnet.miner.train import inner_train
    from subnet.model.config import ModelConfig
    from subnet.model.fragments import fragment_shapes
    from subnet.node.globalmodel import build_global_model
    from subnet.node.runtime import load_data
    from subnet.protocol.assignment import assign_all
    from subnet.protocol.keys import artifact_key

    _quiet()
    mc, tc, codec = ModelConfig(), TrainConfig(), CodecConfig()
    gm = build_global_model(preset, mc.n_fragments, mc.seed)
    pages = load_data(preset)
    ap = _assignment_params(pages, mc.n_fragments)
    seed = 1234
    assignments = assign_all(seed, range(n_miners), ap)
    base: dict[int, dict[str, torch.Tensor]] = {}
    for f in gm.fragments:  # one honest window per fragment, on the pages of its first miner
        uid = next((u for u, a in assignments.items() if a.fragment == f.index), 0)
        batches = _cycle_batches(pages, assignments[uid].pages, tc.batch_size, tc.inner_steps)
        base[f.index] = inner_train(gm.model, f, batches, tc).pseudo_grad
    index = []
    root = Path(out_dir)
    for uid, a in sorted(assignments.items()):
        g = torch.Generator().manual_seed(uid)
        pg = {k: v + 0.5 * v.abs().mean() * torch.randn(v.shape, generator=g) for k, v in base[a.fragment].items()}
        frag = gm.fragment(a.fragment)
        kp = Keypair.create_from_uri(f"//tessera-bench-miner-{uid}")
        header = ArtifactHeader(netuid=1, window=1, uid=uid, hotkey=kp.ss58_address, fragment=a.fragment,
                                base_version=0)
        data = write_artifact(Encoder(fragment_shapes(gm.model, frag), codec).encode(pg), header, kp)
        (root / f"{uid}.safetensors").write_bytes(data)
        index.append({"uid": uid, "hotkey": kp.ss58_address, "fragment": a.fragment, "pages": list(a.pages),
                      "key": artifact_key(1, 1, kp.ss58_address, a.fragment), "bytes": len(data)})
    (root / "index.json").write_text(json.dumps({"seed": seed, "miners": index}))
    return {"n": len(index), "bytes": [m["bytes"] for m in index]}


def worker_validator(preset: str, threads: int, art_dir: str, checkpoints: list[int]) -> dict[str, Any]:
    """Score the producer's artifacts like validator/loop.py; window totals and RSS at each checkpoint."""
    import torch

    torch.set_num_threads(threads)
    from bittensor.sp_core import Keypair

    from subnet.codec.config import CodecConfig
    from subnet.codec.sparseloco import decode
    from subnet.codec.wire import read_artifact
    from subnet.model.config import ModelConfig
    from subnet.model.fragments import trainable_parameters
    from subnet.node.config import NETWORK_SCORE
    from subnet.node.globalmodel import build_global_model
    from subnet.node.runtime import load_data
    from subnet.protocol.assignment import heldout_pages, random_pages
    from subnet.storage.base import open_store
    from subnet.storage.config import StoreConfig
    from subnet.sync.aggregate import Contribution, build_manifest, select_top
    from subnet.sync.apply import apply_decoded
    from subnet.sync.checkpoints import publish_manifest
    from subnet.sync.config import SyncConfig
    from subnet.validator.copydetect import Submission, find_copies
    from subnet.validator.scoring import (
        compute_baseline,
        mean_loss,
        page_batches,
        score_contribution,
    )

    _quiet()
    rss_import = _rss_mb()
    mc, codec, scfg, sync = ModelConfig(), CodecConfig(), NETWORK_SCORE, SyncConfig()
    max_bytes = StoreConfig().max_artifact_bytes
    gm = build_global_model(preset, mc.n_fragments, mc.seed)
    pages = load_data(preset)
    rss_model = _rss_mb()
    ap = _assignment_params(pages, mc.n_fragments)
    idx = json.loads((Path(art_dir) / "index.json").read_text())
    seed, miners = idx["seed"], idx["miners"]
    t0, c0 = time.perf_counter(), time.process_time()
    heldout_b = page_batches(pages, heldout_pages(seed + 1, ap), "heldout", scfg.batch_size, scfg.n_heldout_batches)
    all_assigned = {pg for m in miners for pg in m["pages"]}
    control = random_pages(seed, CONTROL_UID, ap, scfg.pow_batch_size * scfg.n_random_batches, exclude=all_assigned)
    random_b = page_batches(pages, control, "train", scfg.pow_batch_size, scfg.n_random_batches)
    baseline = compute_baseline(gm.model, heldout_b, random_b)
    t_baseline, c_baseline = time.perf_counter() - t0, time.process_time() - c0
    kept: list[dict[str, Any]] = []  # what the real loop keeps per contribution until aggregation
    per: list[dict[str, float]] = []
    points: list[dict[str, Any]] = []
    lead_key = Keypair.create_from_uri("//TesseraBenchLead")  # the lead signs what it publishes
    with tempfile.TemporaryDirectory(prefix="tessera-bench-lead-") as lead_dir:
        lead_store = open_store(lead_dir)
        for n, m in enumerate(miners[: max(checkpoints)], start=1):
            data = (Path(art_dir) / f"{m['uid']}.safetensors").read_bytes()
            frag = m["fragment"]
            shapes = gm.shapes(frag)
            a, ca = time.perf_counter(), time.process_time()
            art = read_artifact(data, expected_hotkey=m["hotkey"], max_bytes=max_bytes, shapes=shapes, netuid=1,
                                window=1, fragment=frag, uid=m["uid"], codec=codec)
            b = time.perf_counter()
            delta = decode(art.encoded, shapes)
            c = time.perf_counter()
            params = trainable_parameters(gm.model, gm.fragment(frag))
            assigned_b = page_batches(pages, m["pages"], "train", scfg.pow_batch_size, scfg.n_assigned_batches)
            cs = score_contribution(gm.model, params, delta, scfg, assigned_b, heldout_b, random_b, baseline)
            d, cd = time.perf_counter(), time.process_time()
            per.append({"read_s": b - a, "decode_s": c - b, "score_s": d - c, "total_s": d - a, "total_cpu_s": cd - ca})
            kept.append({"m": m, "data": data, "encoded": art.encoded, "score": cs.score,
                         "contribution": Contribution(fragment=frag, uid=m["uid"], hotkey=m["hotkey"], key=m["key"],
                                                      sha256=art.sha256, score=cs.score, delta=delta)})
            if n not in checkpoints:
                continue
            e, ce = time.perf_counter(), time.process_time()
            subs = [Submission(uid=k["m"]["uid"], hotkey=k["m"]["hotkey"], fragment=k["m"]["fragment"],
                               first_seen=float(i), commit_block=0, update=k["encoded"]) for i, k in enumerate(kept)]
            find_copies(subs)
            f = time.perf_counter()
            # lead aggregation, upper bound: top_g per fragment whatever the sign of the score
            chosen = []
            for fr in sorted({k["m"]["fragment"] for k in kept}):
                chosen += select_top([k["contribution"] for k in kept if k["m"]["fragment"] == fr], sync.top_g)
            by_key = {k["m"]["key"]: k["data"] for k in kept}
            for ctr in chosen:
                lead_store.put(ctr.key, by_key[ctr.key])
            manifest = build_manifest(netuid=1, window=1, base_version=gm.version, contributions=chosen,
                                      outer_lr=sync.outer_lr, top_g=sync.top_g)
            by_uid = {ctr.uid: ctr for ctr in chosen}
            apply_decoded(gm, manifest, [by_uid[en.uid].delta for en in manifest.entries], verify_hash=False)
            _ = gm.model_hash
            publish_manifest(lead_store, manifest, lead_key)
            mean_loss(gm.model, heldout_b)  # the lead's held-out loss after the step
            g, cg = time.perf_counter(), time.process_time()
            # The model moved by one manifest (as it would by the next window); later scores are
            # on that model, which does not change their cost.
            points.append({"miners": n, "scoring_s": sum(p["total_s"] for p in per), "copy_s": f - e,
                           "aggregate_s": g - f, "selected": len(manifest.entries),
                           "window_s": t_baseline + sum(p["total_s"] for p in per) + (f - e) + (g - f),
                           "window_cpu_s": c_baseline + sum(p["total_cpu_s"] for p in per) + (cg - ce),
                           "download_bytes": sum(len(k["data"]) for k in kept), "peak_rss_mb": _rss_mb()})
    med = {k: statistics.median(p[k] for p in per) for k in per[0]}
    return {"preset": preset, "threads": threads, "baseline_s": t_baseline, "baseline_cpu_s": c_baseline,
            "per_contribution": med,
            "points": points, "rss_import_mb": rss_import, "rss_model_mb": rss_model, "peak_rss_mb": _rss_mb(),
            "total_params": sum(p.numel() for p in gm.model.parameters()),
            "pages_forwarded": (2 * scfg.n_assigned_batches + scfg.n_random_batches) * scfg.pow_batch_size
            + scfg.n_heldout_batches * scfg.batch_size, "page_len": pages.page_len}


def _spawn(*args: str) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------- estimates


def activation_floats_per_token(h: int, h_kv: int, i: int, heads: int, vocab: int, n_train: int,
                                n_pass: int) -> int:
    """Saved-for-backward fp32 elements per token (b*s), eager HF Llama with SDPA, no checkpointing.

    trainable layer: 8h + 2h_kv + 4i + heads   (inputs of every Linear are saved for weight grads)
    pass-through layer (frozen, after the fragment; backprop goes through): 4h + 2h_kv + 3i + heads
    frozen layer before the fragment: 0;  final norm + LM head + log-softmax: V + 2h.
    Coefficients read off the saved-tensor list of tiny/small (see _activation_check).
    """
    return n_train * (8 * h + 2 * h_kv + 4 * i + heads) + n_pass * (4 * h + 2 * h_kv + 3 * i + heads) + vocab + 2 * h


def _measured_saved_floats(preset: str, n_fragments: int, b: int = 2, s: int = 64) -> float:
    """Saved-for-backward fp32 elements per token when training fragment 0 (the worst case), measured."""
    import torch

    from subnet.model.fragments import partition
    from subnet.model.presets import build_model

    model = build_model(preset)
    frag = partition(model, n_fragments)[0]
    names = set(frag.param_names)
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t

    x = torch.zeros(b, s, dtype=torch.long)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(input_ids=x[:, :-1]).logits
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))
    return sum(seen.values()) / 4 / (b * (s - 1))


def estimate(preset: str, n_fragments: int, batch: int, seq: int, codec: Any) -> dict[str, Any]:
    """Memory and artifact-size estimates for preset at F=n_fragments, from shapes only (meta device)."""
    import torch
    from transformers import LlamaForCausalLM

    from subnet.codec.layout import build_layout
    from subnet.model.fragments import layer_ranges, partition
    from subnet.model.presets import build_config, count_params, get_preset

    p = get_preset(preset)
    cfg = build_config(preset)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    shapes = {n: tuple(t.shape) for n, t in model.named_parameters()}
    frags = partition(list(shapes), n_fragments)
    sizes = [sum(int(torch.Size(shapes[n]).numel()) for n in f.param_names) for f in frags]
    big = max(range(len(frags)), key=lambda k: sizes[k])
    n_total, n_frag = count_params(cfg), sizes[big]
    h, i, heads, V = p.hidden_size, p.intermediate_size, p.n_heads, p.vocab_size
    h_kv = h // heads * p.n_kv_heads
    lo, hi = layer_ranges(p.n_layers, n_fragments)[0]
    act_tok = activation_floats_per_token(h, h_kv, i, heads, V, hi - lo, p.n_layers - hi)
    tokens = batch * seq
    act = 4 * tokens * act_tok + 2 * 4 * tokens * V  # + logits and their gradient, alive at the loss
    layout = build_layout({n: shapes[n] for n in frags[big].param_names}, codec)
    payload = sum(layout.packed_sizes(codec).values())
    m = {
        "weights_fp32": 4 * n_total, "weights_bf16": 2 * n_total,
        "grads_fp32": 4 * n_frag, "adamw_fp32": 8 * n_frag,
        "start_copy_fp32": 4 * n_frag, "pseudo_grad_fp32": 4 * n_frag, "ef_fp32": 4 * n_frag,
        "activations": act,
    }
    train = m["grads_fp32"] + m["adamw_fp32"] + m["start_copy_fp32"] + m["pseudo_grad_fp32"] + m["ef_fp32"]
    return {"preset": preset, "F": n_fragments, "params": n_total, "fragment_params": n_frag, "fragment": big,
            "batch": batch, "seq": seq, "act_floats_per_token": act_tok, **m,
            "miner_fp32": m["weights_fp32"] + train + act, "miner_bf16_weights": m["weights_bf16"] + train + act,
            "validator_eval": m["weights_fp32"] + 4 * batch * seq * V * 2 + 4 * n_frag,
            "dense_delta": 4 * n_frag, "artifact_payload_bytes": payload}


# --------------------------------------------------------------------------------------------- report


def _fmt_gb(x: float) -> str:
    return f"{x / GB:.2f}" if x < 10 * GB else f"{x / GB:.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small", help="presets to measure on this CPU")
    ap.add_argument("--threads", default="1,2", help="torch thread counts to measure")
    ap.add_argument("--miners", default="4,16,64", help="validator window sizes (contributions per window)")
    ap.add_argument("--miner-windows", type=int, default=2, help="miner windows per run (the last is reported)")
    ap.add_argument("--estimate", default=",".join(LARGE), help="presets to estimate (never trained)")
    ap.add_argument("--est-seq", type=int, default=2048, help="sequence length for the second activation estimate")
    ap.add_argument("--artifacts", default=None, help="keep/reuse the producer's artifacts under DIR/<preset>")
    ap.add_argument("--json", default=None, help="also write all results to this file")
    ap.add_argument("--load", default=None, help="re-report measured results from earlier --json files "
                    "(comma-separated, merged by preset and thread count)")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        role, *rest = args.worker
        if role == "miner":
            res = worker_miner(rest[0], int(rest[1]), int(rest[2]))
        elif role == "produce":
            res = worker_produce(rest[0], int(rest[1]), rest[2])
        elif role == "validator":
            res = worker_validator(rest[0], int(rest[1]), rest[2], [int(x) for x in rest[3].split(",")])
        else:
            raise SystemExit(f"unknown worker role {role}")
        print(json.dumps(res))
        return 0

    import platform

    import torch

    torch.set_num_threads(1)
    from subnet.codec.config import CodecConfig
    from subnet.miner.config import TrainConfig
    from subnet.model.config import ModelConfig
    from subnet.model.fragments import layer_ranges
    from subnet.model.presets import get_preset
    from subnet.node.config import NETWORK_SCORE
    from subnet.protocol.config import ProtocolConfig
    from subnet.sync.config import SyncConfig

    presets = [p for p in args.presets.split(",") if p]
    threads = [int(t) for t in args.threads.split(",") if t]
    miners = sorted(int(n) for n in args.miners.split(",") if n)
    mc, tc, pc, sc, codec = ModelConfig(), TrainConfig(), ProtocolConfig(), SyncConfig(), CodecConfig()
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    results: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "measured": {}, "estimated": {}}
    print(f"# compute bench: {cpu}, {os.cpu_count()} cores; F={mc.n_fragments}, H={tc.inner_steps}, "
          f"batch={tc.batch_size}, score={NETWORK_SCORE}, codec chunk={codec.chunk} topk={codec.topk} "
          f"bits={codec.value_bits}")
    t_all = time.perf_counter()
    results["loadavg_start"] = os.getloadavg()
    if args.load:  # json turned the int thread keys into strings
        results["loads"] = []
        for path in args.load.split(","):
            saved = json.loads(Path(path).read_text())
            results.update({k: saved[k] for k in ("cpu", "cores") if k in saved})
            results["loads"].append({"file": path, "loadavg_start": saved.get("loadavg_start"),
                                     "loadavg_end": saved.get("loadavg_end")})
            for pr, r in saved["measured"].items():
                dst = results["measured"].setdefault(pr, {"miner": {}, "validator": {}})
                dst["miner"].update({int(k): v for k, v in r["miner"].items()})
                dst["validator"].update({int(k): v for k, v in r["validator"].items()})
        results["loadavg_start"] = [max(x["loadavg_start"][0] for x in results["loads"])]
        results["loadavg_end"] = [max((x["loadavg_end"] or x["loadavg_start"])[0] for x in results["loads"])]
        presets = list(results["measured"])
        threads = sorted({t for r in results["measured"].values() for t in r["miner"]})
    for preset in [] if args.load else presets:
        r: dict[str, Any] = {"miner": {}, "validator": {}}
        with tempfile.TemporaryDirectory(prefix="tessera-bench-art-") as tmp_art:
            art = str(Path(args.artifacts) / preset) if args.artifacts else tmp_art
            Path(art).mkdir(parents=True, exist_ok=True)
            idx = Path(art) / "index.json"
            if not (idx.exists() and len(json.loads(idx.read_text())["miners"]) >= max(miners)):
                r["produce"] = _spawn("produce", preset, str(max(miners)), art)
            for t in threads:
                r["miner"][t] = _spawn("miner", preset, str(t), str(args.miner_windows))
                r["validator"][t] = _spawn("validator", preset, str(t), art, ",".join(map(str, miners)))
        results["measured"][preset] = r
        results["loadavg_end"] = os.getloadavg()
        if args.json:  # keep what was measured even if a later step fails
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))

    print("\n## Miner: one window = H inner AdamW steps on the largest fragment + encode + write_artifact "
          "(last of the run's windows), fresh process per row")
    print("CPU = process CPU time (user+sys, all threads); on a contended box it is the better guide to "
          "uncontended 1-thread wall time.")
    print("| preset | params (fragment) | threads | window wall / CPU | train step | encode | sign+pack | state save | "
          "artifact | state file | RSS after import | RSS model+data | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for preset, r in results["measured"].items():
        for t, m in r["miner"].items():
            w = m["windows"][-1]
            print(f"| {preset} | {m['total_params'] / 1e6:.2f}M ({m['fragment_params'] / 1e6:.2f}M, "
                  f"frag {m['fragment']}"
                  f"/{m['n_fragments']}) | {t} | {w['window_s']:.2f} / {w['window_cpu_s']:.2f} s | "
                  f"{w['train_s'] / w['steps'] * 1e3:.0f} ms | "
                  f"{w['encode_s'] * 1e3:.0f} ms | {w['write_s'] * 1e3:.0f} ms | {w['save_s'] * 1e3:.0f} ms | "
                  f"{m['artifact_bytes'] / 1e3:.1f} kB | {m['state_file_bytes'] / 1e6:.1f} MB | "
                  f"{m['rss_import_mb']:.0f} MB | {m['rss_model_mb']:.0f} MB | {m['peak_rss_mb']:.0f} MB |")
    print("\n## Validator: per contribution = read_artifact + decode + score_contribution "
          "(medians); window = baseline + N contributions + copy detection + lead aggregation")
    print("| preset | threads | per contribution wall (read / decode / score), CPU | baseline | miners | "
          "window wall / CPU | copy det. | aggregation | downloads | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for preset, r in results["measured"].items():
        for t, v in r["validator"].items():
            pc_ = v["per_contribution"]
            for k, pt in enumerate(v["points"]):
                head = (f"| {preset} | {t} | {pc_['total_s'] * 1e3:.0f} ms ({pc_['read_s'] * 1e3:.0f} / "
                        f"{pc_['decode_s'] * 1e3:.0f} / {pc_['score_s'] * 1e3:.0f}), "
                        f"{pc_['total_cpu_s'] * 1e3:.0f} ms | "
                        f"{v['baseline_s'] * 1e3:.0f} ms "
                        if k == 0 else "| | | | ")
                print(f"{head}| {pt['miners']} | {pt['window_s']:.1f} / {pt['window_cpu_s']:.1f} s | "
                      f"{pt['copy_s'] * 1e3:.0f} ms | "
                      f"{pt['aggregate_s'] * 1e3:.0f} ms ({pt['selected']} sel.) | "
                      f"{pt['download_bytes'] / 1e6:.2f} MB | {pt['peak_rss_mb']:.0f} MB |")
    results.setdefault("loadavg_end", os.getloadavg())
    took = f"loaded from {args.load}" if args.load else f"measured part took {time.perf_counter() - t_all:.0f} s"
    print(f"\n({took}; 1-min load average "
          f"{results['loadavg_start'][0]:.1f} at start, {results['loadavg_end'][0]:.1f} at end, on "
          f"{os.cpu_count()} cores)")

    # estimates ------------------------------------------------------------------------------------------
    check = []
    for preset in presets:
        p = get_preset(preset)
        h_kv = p.hidden_size // p.n_heads * p.n_kv_heads
        lo, hi = layer_ranges(p.n_layers, mc.n_fragments)[0]
        per = hi - lo
        f = activation_floats_per_token(p.hidden_size, h_kv, p.intermediate_size, p.n_heads, p.vocab_size, per,
                                        p.n_layers - per)
        meas = _measured_saved_floats(preset, mc.n_fragments)
        check.append((preset, f, meas))
    results["activation_check"] = check
    page_seq = 128
    for preset in [p for p in args.estimate.split(",") if p]:
        rows = []
        for F, seq in ((mc.n_fragments, page_seq), (1, page_seq), (mc.n_fragments, args.est_seq)):
            rows.append(estimate(preset, F, tc.batch_size, seq, codec))
        results["estimated"][preset] = rows

    print("\n## Estimates (NOT measured): memory from parameter counts, fp32 unless stated, bytes -> GB (1e9)")
    print("Formulas: weights = 4N (bf16: 2N); for the trained fragment (Nf params): grads 4Nf, AdamW moments 8Nf,")
    print("start copy 4Nf + pseudo-gradient 4Nf (inner_train), EF buffer 4Nf; activations = 4*b*s*a + 8*b*s*V,")
    print("a = activation_floats_per_token (fragment 0 = worst case: its layers trainable, the rest backpropagated")
    print("through); miner = weights + 20Nf + activations. Validator eval = weights + 8*b*s*V + 4Nf (one dense delta);")
    print("validator/loop.py also keeps every scored contribution's dense delta (4Nf each) until aggregation.")
    print("| preset | F | params | largest fragment | b x s | weights fp32 / bf16 | grads | AdamW | EF | activations | "
          "miner fp32 | miner bf16 weights | validator eval | + per held delta | artifact |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for preset, rows in results["estimated"].items():
        for e in rows:
            print(f"| {preset} | {e['F']} | {e['params'] / 1e9:.3f}B | {e['fragment_params'] / 1e9:.3f}B | "
                  f"{e['batch']}x{e['seq']} | {_fmt_gb(e['weights_fp32'])} / {_fmt_gb(e['weights_bf16'])} | "
                  f"{_fmt_gb(e['grads_fp32'])} | {_fmt_gb(e['adamw_fp32'])} | {_fmt_gb(e['ef_fp32'])} | "
                  f"{_fmt_gb(e['activations'])} | {_fmt_gb(e['miner_fp32'])} | {_fmt_gb(e['miner_bf16_weights'])} | "
                  f"{_fmt_gb(e['validator_eval'])} | {_fmt_gb(e['dense_delta'])} | "
                  f"{e['artifact_payload_bytes'] / 1e6:.1f} MB |")
    print("\nActivation formula vs saved-for-backward bytes measured on the real model (fragment 0 of F="
          f"{mc.n_fragments}), fp32 elements per token:")
    for preset, f, meas in check:
        print(f"  {preset}: formula {f}, measured {meas:.0f} ({(f - meas) / meas * 100:+.1f}%)")
    secs = pc.window_blocks * 12
    print(f"\nBandwidth per window (window = {pc.window_blocks} blocks; at 12 s blocks {secs} s): miner uploads "
          f"1 artifact and downloads up to top_g x F = {sc.top_g * mc.n_fragments} from the lead; a validator "
          "downloads one artifact per miner.")
    for preset, r in results["measured"].items():
        ab = r["miner"][threads[0]]["artifact_bytes"]
        print(f"  {preset}: artifact {ab / 1e3:.1f} kB -> miner up {ab * 8 / secs / 1e3:.2f} kbit/s, "
              f"down <= {sc.top_g * mc.n_fragments * ab / 1e6:.2f} MB/window; validator at 64 miners "
              f"{64 * ab / 1e6:.1f} MB/window = {64 * ab * 8 / secs / 1e6:.3f} Mbit/s")
    for preset, rows in results["estimated"].items():
        ab = rows[0]["artifact_payload_bytes"]
        print(f"  {preset} (estimate, payload only): artifact {ab / 1e6:.1f} MB -> miner up "
              f"{ab * 8 / secs / 1e6:.2f} Mbit/s mean; validator at 64 miners {64 * ab / 1e9:.2f} GB/window "
              f"= {64 * ab * 8 / secs / 1e6:.0f} Mbit/s mean")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    print("command: " + " ".join([".venv/bin/python", "bench/compute.py",
                                  *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
