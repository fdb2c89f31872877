"""Data-path benchmark: shard build rate, fetch latency/throughput, cache hit rate, and feeding the inner loop.

Run: `.venv/bin/python bench/data.py` (flags: `--help`). One process, one run,
torch.set_num_threads(1), against a real S3-compatible server (moto's
standalone server as a separate process on 127.0.0.1, as in the tests),
read through the anonymous bounded peer reader the neurons use:

1. Build: `build_shards` over the embedded corpus into the bucket; tokens/s
   for the whole build, and for tokenizing vs cutting + hashing + uploading.
2. Fetch: per-shard GET latency (sequential, cold, verified), and throughput
   with the prefetch pool (all shards, cold, no cache).
3. Cache: hit rate over `--windows` windows for a miner and a validator
   (fraction of the distinct shards a window needs that did not have to be
   fetched), with the default cache bound and a small one; plus the same
   draws on a simulated 10^9-token manifest (assignment code + an LRU of the
   same bound; no I/O), because the embedded corpus fits any cache.
4. Feeding: tokens/s the page path delivers to the inner loop (cold cache:
   fetch included; warm; local array) vs tokens/s the CPU inner loop
   (tiny preset, H steps of AdamW) consumes, interleaved repeats, medians;
   and one whole window trained from a cold shard store with prefetch vs
   from the local array (the cost of fetching that training did not hide).

Tokens are counted as training pairs (pages x (page_len - 1)) on both sides.
Results are printed as tables and written as JSON (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import OrderedDict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger  # noqa: E402

from subnet.data.build import build_shards  # noqa: E402
from subnet.data.cache import CacheLimits, ShardCache  # noqa: E402
from subnet.data.config import DataConfig, default_cache_dir  # noqa: E402
from subnet.data.manifest import shard_key  # noqa: E402
from subnet.data.pages import TokenPages, load_pages  # noqa: E402
from subnet.data.shards import ShardPages, load_manifest  # noqa: E402
from subnet.data.split import split_sizes  # noqa: E402
from subnet.miner.config import TrainConfig  # noqa: E402
from subnet.miner.distributed import shard_batches as _cycle_batches  # noqa: E402
from subnet.miner.train import inner_train  # noqa: E402
from subnet.model.fragments import partition  # noqa: E402
from subnet.model.presets import build_model, get_preset  # noqa: E402
from subnet.node.config import NETWORK_SCORE  # noqa: E402
from subnet.node.peerstores import PeerStores  # noqa: E402
from subnet.protocol import _prng  # noqa: E402
from subnet.protocol.assignment import AssignmentParams, assign_all, heldout_pages, random_pages  # noqa: E402
from subnet.storage import LocationPolicy, open_store  # noqa: E402
from subnet.validator.loop import CONTROL_UID  # noqa: E402

BUCKET = "bench-shards"
PREFIX = "owner/v1"


# -- the S3 server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)


def public_store(url: str):
    """Our own store in a bucket that allows anonymous GETs (as a subnet owner's shard bucket must)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    store = open_store(f"s3://{BUCKET}/{PREFIX}?endpoint={url}&region=us-east-1")
    store.create_bucket()
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                      "Action": ["s3:GetObject"],
                                                      "Resource": [f"arn:aws:s3:::{BUCKET}/*"]}]}
    store.client.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    return store


def _reader(location: str):
    reader = PeerStores(LocationPolicy.devnet()).get(location)
    assert reader is not None
    return reader


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# -- 2. fetch ---------------------------------------------------------------------------------------


def measure_fetch(location: str, sha: str, args, tmp: Path) -> dict:
    reader = _reader(location)
    m = load_manifest(reader, sha)
    lat = []
    n = min(args.latency_shards, len(m.train_shards))
    for k in range(n):
        t0 = time.perf_counter()
        data = reader.get(shard_key(m.train_shards[k]), m.shard_bytes("train", k))
        lat.append(time.perf_counter() - t0)
        assert data is not None and len(data) == m.shard_bytes("train", k)
    rows = []
    for workers in (1, args.workers):
        sp = ShardPages(m, reader, ShardCache(tmp / f"nocache-{workers}", CacheLimits(memory_bytes=1 << 30,
                                                                                      disk_bytes=0)),
                        workers=workers)
        firsts = [k * m.pages_per_shard for k in range(len(m.train_shards))]
        t0 = time.perf_counter()
        sp.prefetch(firsts, "train")
        sp.batch(firsts, "train")
        wall = time.perf_counter() - t0
        st = sp.stats()
        sp.close()
        pages = m.n_train
        rows.append({"workers": workers, "shards": st.fetches, "bytes": st.fetched_bytes, "wall_s": wall,
                     "MB_per_s": st.fetched_bytes / wall / 1e6, "shards_per_s": st.fetches / wall,
                     "tokens_per_s": pages * (m.page_len - 1) / wall})
    return {"shard_bytes": m.shard_bytes("train", 0), "latency_median_s": statistics.median(lat),
            "latency_p95_s": _pct(lat, 0.95), "latency_n": n, "parallel": rows}


# -- 3. cache hit rate -------------------------------------------------------------------------------


def _window_needs(seed: int, seed_next: int, p: AssignmentParams, miners: int) -> tuple[dict, list]:
    """(miner 0's train pages, the validator's [(indices, split)]), as the loops draw them."""
    scfg = NETWORK_SCORE
    assignments = assign_all(seed, range(miners), p)
    assigned = {pg for a in assignments.values() for pg in a.pages}
    control = random_pages(seed, CONTROL_UID, p, scfg.pow_batch_size * scfg.n_random_batches, exclude=assigned)
    val = [(heldout_pages(seed_next, p)[: scfg.batch_size * scfg.n_heldout_batches], "heldout"),
           (control, "train")]
    val += [(a.pages[: scfg.pow_batch_size * scfg.n_assigned_batches], "train") for a in assignments.values()]
    return {"miner": [(assignments[0].pages, "train")], "validator": val}, assignments


def measure_hit_rate(location: str, sha: str, args, tmp: Path) -> list[dict]:
    reader = _reader(location)
    m = load_manifest(reader, sha)
    p = AssignmentParams(n_fragments=2, pages_per_miner=16, n_train_pages=m.n_train, n_heldout_pages=m.n_heldout,
                         heldout_per_window=16)
    rows = []
    for bound_mb in (args.cache_mb, args.small_cache_mb):
        for role in ("miner", "validator"):
            limits = CacheLimits(memory_bytes=min(512 << 20, bound_mb << 20), disk_bytes=bound_mb << 20)
            sp = ShardPages(m, reader, ShardCache(tmp / f"hit-{role}-{bound_mb}", limits), workers=args.workers)
            needs = 0
            for w in range(args.windows):
                sets = _window_needs(_prng.hash64("bench", w), _prng.hash64("bench", w + 1), p, args.miners)[0][role]
                needs += len({h for idx, split in sets for h in sp.shards_for(idx, split)})
                for idx, split in sets:
                    sp.prefetch(idx, split)
                for idx, split in sets:
                    sp.batch(idx, split)
            st = sp.stats()
            sp.close()
            rows.append({"dataset": f"embedded ({m.n_tokens / 1e6:.2f}M tokens, "
                                    f"{len(m.train_shards) + len(m.heldout_shards)} shards)",
                         "role": role, "cache_mb": bound_mb, "windows": args.windows, "shard_needs": needs,
                         "fetches": st.fetches, "hit_rate": 1 - st.fetches / needs, "measured": True})
    rows += simulate_large(args, m.page_len, m.pages_per_shard)
    return rows


def simulate_large(args, page_len: int, pps: int) -> list[dict]:
    """The same draws on a 10^9-token manifest: shard ids through an LRU of the cache bound (no I/O)."""
    n_train, n_heldout = split_sizes(10**9 // page_len, 0.05)
    p = AssignmentParams(n_fragments=2, pages_per_miner=16, n_train_pages=n_train, n_heldout_pages=n_heldout,
                         heldout_per_window=16)
    shard_bytes = pps * page_len * 2
    rows = []
    for bound_mb in (args.cache_mb, args.small_cache_mb):
        cap = (bound_mb << 20) // shard_bytes
        for role in ("miner", "validator"):
            lru: OrderedDict[tuple[str, int], None] = OrderedDict()
            needs = misses = 0
            for w in range(args.windows):
                sets = _window_needs(_prng.hash64("bench", w), _prng.hash64("bench", w + 1), p, args.miners)[0][role]
                want = {(split, i // pps) for idx, split in sets for i in idx}
                needs += len(want)
                for key in want:
                    if key in lru:
                        lru.move_to_end(key)
                        continue
                    misses += 1
                    lru[key] = None
                    while len(lru) > cap:
                        lru.popitem(last=False)
            rows.append({"dataset": f"simulated 10^9 tokens ({-(-n_train // pps) + -(-n_heldout // pps)} shards)",
                         "role": role, "cache_mb": bound_mb, "windows": args.windows, "shard_needs": needs,
                         "fetches": misses, "hit_rate": 1 - misses / needs, "measured": False})
    return rows


# -- 4. feeding the inner loop ------------------------------------------------------------------------


def measure_feed(location: str, sha: str, local: TokenPages, args, tmp: Path) -> dict:
    reader = _reader(location)
    m = load_manifest(reader, sha)
    tc = TrainConfig(inner_steps=args.H, batch_size=args.batch, warmup_steps=1)
    model = build_model(args.preset, seed=0)
    fragment = partition(model, 2)[0]
    p = AssignmentParams(n_fragments=2, pages_per_miner=16, n_train_pages=m.n_train, n_heldout_pages=m.n_heldout,
                         heldout_per_window=16)
    warm = ShardPages(m, reader, ShardCache(tmp / "feed-warm", CacheLimits()), workers=args.workers)
    pairs = args.H * args.batch * (m.page_len - 1)  # training tokens of one window
    t: dict[str, list[float]] = {k: [] for k in ("consume", "cold", "warm", "local", "window_local", "window_cold")}

    def deliver(pages, idx) -> float:
        t0 = time.perf_counter()
        pages.prefetch(idx, "train")
        for _ in _cycle_batches(pages, idx, args.batch, args.H):
            pass
        return time.perf_counter() - t0

    def window(pages, idx) -> float:
        t0 = time.perf_counter()
        pages.prefetch(idx, "train")  # what MinerLoop._train does
        inner_train(model, fragment, _cycle_batches(pages, idx, args.batch, args.H), tc)
        return time.perf_counter() - t0

    first = assign_all(_prng.hash64("feed", -1), range(args.miners), p)[0].pages
    window(local, first)  # warm-up (first-call costs), not timed
    for r in range(args.repeats):
        idx = assign_all(_prng.hash64("feed", r), range(args.miners), p)[0].pages
        cold = ShardPages(m, reader, ShardCache(tmp / f"feed-cold-{r}", CacheLimits()), workers=args.workers)
        t["cold"].append(deliver(cold, idx))
        cold.close()
        deliver(warm, idx)
        t["warm"].append(deliver(warm, idx))
        t["local"].append(deliver(local, idx))
        batches = list(_cycle_batches(local, idx, args.batch, args.H))
        res = inner_train(model, fragment, iter(batches), tc)
        t["consume"].append(res.stats.seconds)
        t["window_local"].append(window(local, idx))
        cold = ShardPages(m, reader, ShardCache(tmp / f"feed-window-{r}", CacheLimits()), workers=args.workers)
        t["window_cold"].append(window(cold, idx))
        cold.close()
    warm.close()
    med = {k: statistics.median(v) for k, v in t.items()}
    consume_tps = pairs / med["consume"]
    return {"preset": args.preset, "H": args.H, "batch": args.batch, "page_len": m.page_len, "tokens_per_window": pairs,
            "consume_tokens_per_s": consume_tps,
            "deliver_tokens_per_s": {k: pairs / med[k] for k in ("cold", "warm", "local")},
            "deliver_over_consume": {k: pairs / med[k] / consume_tps for k in ("cold", "warm", "local")},
            "window_local_s": med["window_local"], "window_cold_shards_s": med["window_cold"],
            "window_overhead": med["window_cold"] / med["window_local"] - 1, "repeats": args.repeats,
            "raw_s": t}


# -- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", help="model preset of the inner loop (and the shards' tokenizer)")
    p.add_argument("--pages-per-shard", type=int, default=256)
    p.add_argument("--workers", type=int, default=8, help="prefetch / upload threads")
    p.add_argument("--latency-shards", type=int, default=40)
    p.add_argument("--windows", type=int, default=50)
    p.add_argument("--miners", type=int, default=16)
    p.add_argument("--cache-mb", type=int, default=4096, help="the default shard cache bound (--data.shard_cache_mb)")
    p.add_argument("--small-cache-mb", type=int, default=2,
                   help="a bound that holds a miner's window but not a validator's (nor the embedded dataset)")
    p.add_argument("--H", type=int, default=TrainConfig().inner_steps)
    p.add_argument("--batch", type=int, default=TrainConfig().batch_size)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "data.json"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    print(f"config: {json.dumps(vars(args))}")
    print(f"torch {torch.__version__}, threads 1, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; S3 = moto server on 127.0.0.1, read anonymously")
    results: dict = {"config": vars(args)}
    preset = get_preset(args.preset)
    cfg = DataConfig(vocab_size=preset.vocab_size, tokenizer=preset.tokenizer, cache_dir=default_cache_dir())
    proc, url = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-bench-data-") as tmpdir:
            tmp = Path(tmpdir)
            store = public_store(url)
            res = build_shards(cfg, store, pages_per_shard=args.pages_per_shard, workers=args.workers)
            m = res.manifest
            location = store.location
            results["build"] = {"tokens": m.n_tokens, "shards": len(m.train_shards) + len(m.heldout_shards),
                                "bytes": res.bytes_written, "tokenize_s": res.tokenize_seconds,
                                "shard_upload_s": res.shard_seconds, "tokens_per_s": res.tokens_per_s,
                                "tokenize_tokens_per_s": m.n_tokens / res.tokenize_seconds,
                                "shard_upload_tokens_per_s": m.n_tokens / res.shard_seconds,
                                "manifest_sha256": m.sha256}
            b = results["build"]
            print(f"\n## 1. shard build (embedded corpus, {args.preset} tokenizer, {args.pages_per_shard} pages/shard, "
                  f"{args.workers} upload threads)")
            print(f"{'tokens':>10} {'shards':>6} {'MB':>6} {'tokenize s':>10} {'shard+put s':>11} {'tok/s all':>11} "
                  f"{'tok/s tokenize':>14} {'tok/s shard+put':>15}")
            print(f"{b['tokens']:>10} {b['shards']:>6} {b['bytes'] / 1e6:>6.2f} {b['tokenize_s']:>10.2f} "
                  f"{b['shard_upload_s']:>11.2f} {b['tokens_per_s']:>11,.0f} {b['tokenize_tokens_per_s']:>14,.0f} "
                  f"{b['shard_upload_tokens_per_s']:>15,.0f}")

            f = results["fetch"] = measure_fetch(location, m.sha256, args, tmp)
            print(f"\n## 2. fetch from the S3 server (anonymous reader, {f['shard_bytes']} B shards, sha256 verified)")
            print(f"per-shard GET, sequential, cold: median {f['latency_median_s'] * 1e3:.1f} ms, "
                  f"p95 {f['latency_p95_s'] * 1e3:.1f} ms (n={f['latency_n']})")
            print(f"{'workers':>7} {'shards':>6} {'wall s':>7} {'MB/s':>7} {'shards/s':>8} {'tokens/s':>12}")
            for r in f["parallel"]:
                print(f"{r['workers']:>7} {r['shards']:>6} {r['wall_s']:>7.2f} {r['MB_per_s']:>7.1f} "
                      f"{r['shards_per_s']:>8.0f} {r['tokens_per_s']:>12,.0f}")

            rows = results["cache"] = measure_hit_rate(location, m.sha256, args, tmp)
            print(f"\n## 3. cache hit rate over {args.windows} windows ({args.miners} miners; validator = held-out + "
                  f"control + every miner's scored pages); hit = a needed shard not fetched")
            print(f"{'dataset':38} {'role':9} {'cache MB':>8} {'needs':>6} {'fetches':>7} {'fetch/need':>10} "
                  f"{'hit rate':>8}")
            for r in rows:
                hit = f"{r['hit_rate']:.1%}" if r["hit_rate"] >= 0 else "refetch"
                print(f"{r['dataset']:38} {r['role']:9} {r['cache_mb']:>8} {r['shard_needs']:>6} {r['fetches']:>7} "
                      f"{r['fetches'] / r['shard_needs']:>10.2f} {hit:>8}")
            print("(a bound below one window's working set refetches shards evicted between prefetch and use;"
                  " the simulated rows model the cache, not the fetches)")

            local = load_pages(cfg)
            fd = results["feed"] = measure_feed(location, m.sha256, local, args, tmp)
            print(f"\n## 4. feeding the inner loop ({fd['preset']}, H={fd['H']}, batch {fd['batch']}x{fd['page_len']}, "
                  f"{fd['tokens_per_window']} tokens/window, medians of {fd['repeats']} interleaved repeats)")
            print(f"inner loop consumes {fd['consume_tokens_per_s']:,.0f} tokens/s (CPU, 1 thread)")
            print(f"{'page path':28} {'tokens/s':>12} {'x consumption':>13}")
            for k, label in (("cold", "shards, cold (fetch incl.)"), ("warm", "shards, warm cache"),
                             ("local", "local array")):
                print(f"{label:28} {fd['deliver_tokens_per_s'][k]:>12,.0f} {fd['deliver_over_consume'][k]:>13.1f}")
            print(f"one window: local array {fd['window_local_s']:.3f} s, cold shard store + prefetch "
                  f"{fd['window_cold_shards_s']:.3f} s ({fd['window_overhead']:+.1%})")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(results, indent=1, default=str))
    tmp_out.replace(out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
