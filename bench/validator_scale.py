"""A validator's window at 16, 64 and 256 miners: fetch, verify, copy detection, sampled evaluation, ratings, storage.

Everything real except the chain: honest miners train the tiny preset (AdamW
on their own fragment and pages) and sign SparseLoCo artifacts with their own
sr25519 hotkeys; their quality is set by blending their update with
same-norm noise (the true ordering); 5 % re-sign another miner's upload
(copiers, seen later), 5 % send noise on an honest support (free-riders), and
10 % of stores are hostile servers (never answer / 1 byte per second / claim
10 GB, validator_tests/harness/hostile_http.py). Honest stores are one moto S3
server process; the validator reads them through subnet/storage/peer.py
under the default per-request budget (StoreConfig), 32 at a time.

Per size it prints:
  window/length   (fetch wall + verify + copy detection + sampled evaluation)
                  / the real-chain window (50 blocks x 12 s = 600 s)
  evaluated       fraction of uploads fully evaluated in one window (SamplingConfig defaults)
  copy ms         judge_copies (sketch) vs judge_copies_all_pairs, same run, same verdicts checked
  spearman        ratings after --windows windows vs the true ordering of the honest miners,
                  with sampling (only evaluated uids play a round), and at n <= 16 with everyone evaluated;
                  scores normalised per fragment cohort as pipeline.compete does; also per fragment
  peak RSS        of the process so far (MiB)
  process CPU     seconds of CPU the window pass took (all threads; the box is shared, so wall mostly waits)
and, once, the bytes a lead's and a miner's store keep after --store-windows windows with the
default retention (StoreConfig) vs none, side by side.

Simplifications (stated, not hidden): the global model does not advance
between windows (scores differ by each window's held-out draw), the chain is
absent (seeds are drawn from a seeded RNG), and the fetch is one concurrent
pass per window (the watcher's polling is measured by bench/hostile_peers.py).
play_round is given only the round's players and the others' ratings merged
back, which is what competition.play_round needs to support directly.

Honest miners run --inner-steps AdamW steps (default 4, below TrainConfig's 10, to keep 256 trainings
within minutes on 2 shared cores).

--sections batched: batched evaluation (validator/batched_eval.py) vs one at a time, side by side, per k.

Run: .venv/bin/python bench/validator_scale.py [--sections copy,window,storage,batched] [--sizes 16,64,256]
     [--windows 20] [--json bench/results/validator_scale.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from bittensor.sp_core import Keypair

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validator_tests"))
from harness.hostile_http import HostileServer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ranking import spearman  # noqa: E402

from subnet.codec.sparseloco import CodecConfig, Encoder, decode, decode_sparse  # noqa: E402
from subnet.codec.wire import ArtifactHeader, expected_max_bytes, read_artifact, write_artifact  # noqa: E402
from subnet.data.config import DataConfig  # noqa: E402
from subnet.data.pages import load_pages  # noqa: E402
from subnet.miner.config import TrainConfig  # noqa: E402
from subnet.model.fragments import fragment_shapes, fragment_state, partition, trainable_parameters  # noqa: E402
from subnet.model.presets import build_model, get_preset  # noqa: E402
from subnet.model.state import checkpoint_bytes  # noqa: E402
from subnet.node.config import NETWORK_SCORE, ValidatorOptions  # noqa: E402
from subnet.protocol.keys import artifact_key, checkpoint_key, manifest_key  # noqa: E402
from subnet.storage.config import StoreConfig  # noqa: E402
from subnet.storage.local import LocalDirStore  # noqa: E402
from subnet.storage.location import LocationPolicy  # noqa: E402
from subnet.storage.peer import PeerReadOptions, open_peer  # noqa: E402
from subnet.sync.aggregate import Contribution, build_manifest  # noqa: E402
from subnet.sync.config import SyncConfig  # noqa: E402
from subnet.sync.retention import RetentionPolicy, prune_store  # noqa: E402
from subnet.validator.cohorts import normalise_cohorts  # noqa: E402
from subnet.validator.competition import CompetitionConfig, CompetitionState, play_round  # noqa: E402
from subnet.validator.copydetect import (  # noqa: E402
    Submission,
    judge_copies,
    judge_copies_all_pairs,
    support_of,
)
from subnet.validator.sampling import SamplingConfig, choose_for_evaluation, record_evaluations  # noqa: E402
from subnet.validator.scoring import compute_baseline, page_batches, score_contribution  # noqa: E402

NETUID = 1
WINDOW_S = 50 * 12.0  # ProtocolConfig.window_blocks x 12 s blocks
N_FRAGMENTS = 2  # ModelConfig.n_fragments
PAGES = 16  # ProtocolConfig.pages_per_miner
BAD_MODES = ("blackhole", "trickle_body", "huge")


def _role(uid: int) -> str:
    if uid % 10 == 9:
        return "dead"
    if uid % 20 == 4:
        return "copier"
    if uid % 20 == 14:
        return "noise"
    return "honest"


def _alpha(uid: int) -> float:
    """Noise fraction of an honest miner's update: its (hidden) quality; 0 is best."""
    return ((uid * 37) % 101) / 100 * 0.9


class World:
    """The base model, every miner's signed artifact, and the stores serving them."""

    def __init__(self, n: int, preset: str, seed: int, *, train: bool = True, inner_steps: int = 4) -> None:
        """``train=False`` (storage section only: sizes, not quality, matter): random updates, no pretraining."""
        self.pages = load_pages(DataConfig(vocab_size=get_preset(preset).vocab_size))
        self.model = build_model(preset, seed=seed)
        self.train, self.inner_steps = train, inner_steps
        opt = torch.optim.AdamW(self.model.parameters(), lr=3e-3)
        for s in range(20 if train else 0):
            batch = self.pages.batch(range(s * 8, s * 8 + 8))
            logits = self.model(input_ids=batch[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.base = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.fragments = partition(self.model, N_FRAGMENTS)
        self.shapes = [fragment_shapes(self.model, f) for f in self.fragments]
        self.codec = CodecConfig()
        self.max_bytes = [expected_max_bytes(s, self.codec) for s in self.shapes]
        self.keys = [Keypair.create_from_uri(f"//TesseraScale{u}") for u in range(n)]
        self.data: dict[int, bytes] = {}
        self.pages_of = {u: list(range(u * PAGES, u * PAGES + PAGES)) for u in range(n)}
        t0 = time.perf_counter()
        honest_enc = {}
        for u in range(n):
            frag = u % N_FRAGMENTS
            role = _role(u)
            if role == "copier":
                continue
            pg = self._train(frag, self.pages_of[u])
            if role == "honest":
                g = torch.Generator().manual_seed(u)
                a = _alpha(u)
                for k, v in pg.items():
                    r = torch.randn(v.shape, generator=g)
                    pg[k] = (1 - a) * v + a * r * (v.norm() / r.norm().clamp_min(1e-12))
            enc = Encoder(self.shapes[frag], self.codec).encode(pg)
            if role == "noise":
                g = torch.Generator().manual_seed(10_000 + u)
                val = enc.val[torch.randperm(enc.val.numel(), generator=g)]
                enc = dataclasses.replace(enc, val=val)
            honest_enc[u] = enc
            self.data[u] = self._sign(u, enc)
        for u in range(n):
            if _role(u) == "copier":  # re-signs the previous uid's upload (same fragment parity: u-2)
                self.data[u] = self._sign(u, honest_enc[u - 2])
        self.build_s = time.perf_counter() - t0

    def _train(self, frag: int, pages: list[int]) -> dict[str, torch.Tensor]:
        if not self.train:
            g = torch.Generator().manual_seed(pages[0])
            return {k: 0.01 * torch.randn(s, generator=g) for k, s in self.shapes[frag].items()}
        tc, f = TrainConfig(), self.fragments[frag]
        self.model.load_state_dict(self.base)
        params = trainable_parameters(self.model, f)
        start = fragment_state(self.model, f)
        for n_, p in self.model.named_parameters():
            p.requires_grad_(n_ in params)
        opt = torch.optim.AdamW(list(params.values()), lr=tc.lr, betas=(tc.beta1, tc.beta2),
                                weight_decay=tc.weight_decay)
        for h in range(self.inner_steps):
            batch = self.pages.batch([pages[(h * 8 + i) % len(pages)] for i in range(8)])
            logits = self.model(input_ids=batch[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        end = fragment_state(self.model, f)
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.model.load_state_dict(self.base)
        return {k: start[k] - end[k] for k in start}

    def _sign(self, u: int, enc) -> bytes:
        kp = self.keys[u]
        header = ArtifactHeader(netuid=NETUID, window=1, uid=u, hotkey=kp.ss58_address, fragment=u % N_FRAGMENTS,
                                base_version=0)
        return write_artifact(enc, header, kp)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """moto's S3 server as a separate process (the same one validator_tests use)."""

    def __enter__(self) -> Moto:
        port = _free_port()
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).read()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _upload(world: World, moto: Moto) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="bench",
                      aws_secret_access_key="bench")
    s3.create_bucket(Bucket="miners")
    s3.put_bucket_policy(Bucket="miners", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": ["arn:aws:s3:::miners", "arn:aws:s3:::miners/*"]}]}))
    for u, data in world.data.items():
        kp = world.keys[u]
        s3.put_object(Bucket="miners", Key=f"m{u}/" + artifact_key(NETUID, 1, kp.ss58_address, u % N_FRAGMENTS),
                      Body=data)


def _fetch_all(world: World, n: int, moto: Moto, bad: dict[str, HostileServer]) -> tuple[dict[int, bytes], float]:
    store = StoreConfig()
    opts = PeerReadOptions(request_timeout_s=store.peer_request_timeout_s, attempts=store.peer_attempts)
    policy = LocationPolicy.devnet()

    def one(u: int) -> tuple[int, bytes | None]:
        kp = world.keys[u]
        if _role(u) == "dead":
            loc = f"s3://bkt/m{u}?endpoint={bad[BAD_MODES[u % 3]].url}"
        else:
            loc = f"s3://miners/m{u}?endpoint={moto.url}"
        key = artifact_key(NETUID, 1, kp.ss58_address, u % N_FRAGMENTS)
        try:
            obj = open_peer(loc, policy, opts).fetch(key, world.max_bytes[u % N_FRAGMENTS])
        except Exception:  # noqa: BLE001 - a peer's failure is its outcome (absent)
            return u, None
        return u, None if obj is None else obj.data

    t0 = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        got = dict(pool.map(one, range(n)))
    return {u: d for u, d in got.items() if d is not None}, time.perf_counter() - t0


class Evaluator:
    """Per window: held-out draw + baselines per fragment; score_contribution with the network's ScoreConfig."""

    def __init__(self, world: World) -> None:
        self.world, self.cfg = world, NETWORK_SCORE
        self.cache: dict[tuple[int, int], float] = {}
        self.evals = 0
        self.eval_s = 0.0

    def window(self, w: int) -> None:
        cfg, pages = self.cfg, self.world.pages
        rng = random.Random(1000 + w)
        held = rng.sample(range(pages.n_heldout), 16)
        ctrl = rng.sample(range(8000, pages.n_train), 64)
        self.held = page_batches(pages, held, "heldout", cfg.batch_size, cfg.n_heldout_batches)
        self.rand = page_batches(pages, ctrl, "train", cfg.pow_batch_size, cfg.n_random_batches)
        ref = page_batches(pages, rng.sample(range(pages.n_heldout), cfg.batch_size * cfg.n_reference_batches),
                           "heldout", cfg.batch_size, cfg.n_reference_batches) if cfg.n_reference_batches else ()
        self.baseline = compute_baseline(self.world.model, self.held, self.rand, reference=ref)
        self.w = w

    def score(self, u: int, art) -> float:
        key = (u, self.w)
        if key not in self.cache:
            t0 = time.perf_counter()
            frag = u % N_FRAGMENTS
            assigned = page_batches(self.world.pages, self.world.pages_of[u], "train", self.cfg.pow_batch_size,
                                    self.cfg.n_assigned_batches)
            params = trainable_parameters(self.world.model, self.world.fragments[frag])
            r = score_contribution(self.world.model, params, decode_sparse(art.encoded), self.cfg, assigned,
                                   self.held, self.rand, self.baseline)
            self.cache[key] = float(r.score)
            self.eval_s += time.perf_counter() - t0
            self.evals += 1
        return self.cache[key]


def _verify(world: World, fetched: dict[int, bytes]) -> tuple[dict[int, object], float]:
    t0 = time.perf_counter()
    out = {}
    for u, data in fetched.items():
        try:
            out[u] = read_artifact(data, expected_hotkey=world.keys[u].ss58_address,
                                   max_bytes=world.max_bytes[u % N_FRAGMENTS], shapes=world.shapes[u % N_FRAGMENTS],
                                   netuid=NETUID, window=1, fragment=u % N_FRAGMENTS, base_version=0)
        except Exception:  # noqa: BLE001 - rejected upload
            pass
    return out, time.perf_counter() - t0


def _subs(arts: dict[int, object]) -> list[Submission]:
    return [Submission(uid=u, hotkey=f"hk{u}", fragment=u % N_FRAGMENTS, first_seen=10.0 + u + (50 if _role(u) ==
                       "copier" else 0), seen_after=9.0 + u + (50 if _role(u) == "copier" else 0), commit_block=1,
                       update=a.encoded) for u, a in arts.items()]


def _ratings(world: World, ev: Evaluator, arts: dict[int, object], charged: set[int], n: int, windows: int,
             sampled: bool, cohorts: bool = True) -> tuple[float, list[float]]:
    """Spearman of the honest miners' ordinals after `windows` rounds with the true ordering (-alpha): over all
    honest miners, and per fragment. `cohorts`: scores normalised per fragment cohort first, as the validator
    does (before this the bench passed raw scores, which rank fragment 1's larger raw gains above fragment 0's)."""
    ccfg = CompetitionConfig()
    scfg = SamplingConfig() if sampled else SamplingConfig(sample_size=256)
    state, history = CompetitionState(), {}
    cands = {u: f"hk{u}" for u in arts if u not in charged}
    failed = [u for u in range(n) if u not in cands]  # absent or charged: played (ranked last) every round
    rng = random.Random(n)
    for w in range(windows):
        ev.window(w)
        pick = choose_for_evaluation(candidates=cands, ratings={u: p.ordinal(ccfg.z) for u, p in state.players.items()},
                                     last_evaluated=history, window=w, seed_next=rng.getrandbits(64),
                                     validator_hotkey="bench", cfg=scfg)
        scores = {u: ev.score(u, arts[u]) for u in pick.evaluate}
        if cohorts:  # as pipeline.compete does: scores normalised within each fragment's cohort
            scores = normalise_cohorts(scores, {u: u % N_FRAGMENTS for u in scores}, ValidatorOptions().cohort_method)
        players = sorted(set(pick.evaluate) | set(failed))
        sub = dataclasses.replace(state, players={u: p for u, p in state.players.items() if u in players})
        played = play_round(sub, scores, players, ccfg, slashed=[u for u in failed if u in charged])
        state = dataclasses.replace(played, players={**state.players, **played.players})
        history = record_evaluations(history, window=w, evaluated_hotkeys=[cands[u] for u in pick.evaluate],
                                     candidate_hotkeys=cands.values(), active_hotkeys=cands.values())
    def rho(us: list[int]) -> float:
        return spearman([state.players[u].ordinal(ccfg.z) for u in us], [-_alpha(u) for u in us])

    honest = [u for u in range(n) if _role(u) == "honest" and u in state.players]
    return rho(honest), [rho([u for u in honest if u % N_FRAGMENTS == f]) for f in range(N_FRAGMENTS)]


def _storage(world: World, windows: int) -> dict[str, int]:
    """Bytes a lead's and one miner's store keep after `windows` windows, default retention vs none."""
    sync, store_cfg = SyncConfig(), StoreConfig()
    policy = RetentionPolicy.from_store_config(store_cfg)
    out = {}
    pool = [u for u in world.data if _role(u) == "honest"]
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: (LocalDirStore(Path(tmp) / name), pol) for name, pol in
                  (("lead_retained", policy), ("lead_all", None), ("miner_retained", policy), ("miner_all", None))}
        known: dict[int, int] = {}
        for w in range(1, windows + 1):
            contribs = []
            for i in range(min(sync.top_g * N_FRAGMENTS, len(pool))):
                u = pool[(w * 7 + i) % len(pool)]
                frag = u % N_FRAGMENTS
                kp = world.keys[u]
                key = artifact_key(NETUID, w, kp.ss58_address, frag)
                for name in ("lead_retained", "lead_all"):
                    stores[name][0].put(key, world.data[u])
                art = read_artifact(world.data[u], expected_hotkey=kp.ss58_address,
                                    max_bytes=world.max_bytes[frag], shapes=world.shapes[frag])
                contribs.append(Contribution(fragment=frag, uid=u, hotkey=kp.ss58_address, key=key, sha256="0" * 64,
                                             score=1.0, delta=decode(art.encoded, world.shapes[frag])))
            m = build_manifest(netuid=NETUID, window=w, base_version=w - 1, contributions=contribs,
                               outer_lr=sync.outer_lr, top_g=sync.top_g).sign(world.keys[0])
            for name in ("lead_retained", "lead_all"):
                stores[name][0].put(manifest_key(NETUID, w), m.canonical_bytes())
            if w % sync.checkpoint_every == 0:
                ck = checkpoint_bytes(world.model, {"version": w, "last_manifest_window": w})
                known[w] = w
                for name in ("lead_retained", "lead_all"):
                    stores[name][0].put(checkpoint_key(NETUID, w), ck)
            miner_key = artifact_key(NETUID, w, world.keys[0].ss58_address, 0)
            for name in ("miner_retained", "miner_all"):
                stores[name][0].put(miner_key, world.data[0])
            kept = sorted(known, reverse=True)[: policy.checkpoints]
            protect = min(known[v] for v in kept) if kept else 0
            prune_store(stores["lead_retained"][0], netuid=NETUID, now_window=w, policy=policy,
                        protect_from_window=protect)
            prune_store(stores["miner_retained"][0], netuid=NETUID, now_window=w, policy=policy)
        for name, (s, _) in stores.items():
            out[name] = sum(p.stat().st_size for p in s.root.rglob("*") if p.is_file())
    return out


def _window_section(world: World, sizes: list[int], windows: int) -> list[dict]:
    rows = []
    bad = {m: HostileServer(m, interval_s=1.0, size=world.max_bytes[0] // 2) for m in BAD_MODES}
    for s in bad.values():
        s.__enter__()
    try:
        with Moto() as moto:
            _upload(world, moto)
            for n in sizes:
                cpu0, load0 = time.process_time(), os.getloadavg()
                fetched, fetch_s = _fetch_all(world, n, moto, bad)
                arts, verify_s = _verify(world, fetched)
                subs = _subs(arts)
                t0 = time.perf_counter()
                verdict = judge_copies(subs)
                sketch_s = time.perf_counter() - t0
                t0, c_ap = time.perf_counter(), time.process_time()
                exact = judge_copies_all_pairs(subs)
                all_pairs_s, c_ap = time.perf_counter() - t0, time.process_time() - c_ap
                assert verdict == exact, "sketch verdicts differ from the all-pairs scan"
                charged = set(verdict.charged)
                ev = Evaluator(world)
                cands = {u: f"hk{u}" for u in arts if u not in charged}
                pick = choose_for_evaluation(candidates=cands, ratings={}, last_evaluated={}, window=0, seed_next=n,
                                             validator_hotkey="bench")
                t0 = time.perf_counter()
                ev.window(0)
                for u in pick.evaluate:
                    ev.score(u, arts[u])
                eval_s = time.perf_counter() - t0
                window_s = fetch_s + verify_s + sketch_s + eval_s
                # the all-pairs check (verdicts only) ran inside this span: not the validator's cost, taken out
                window_cpu_s = time.process_time() - cpu0 - c_ap
                load1 = os.getloadavg()
                print(f"n={n:3d} window pass: {window_s:.1f} s wall / {window_cpu_s:.1f} s CPU (ratio "
                      f"{window_s / WINDOW_S:.3f}), evaluated {len(pick.evaluate)}/{n}, load {load1[0]:.1f}; "
                      f"rating {windows} windows...", flush=True)
                t0, c0 = time.perf_counter(), time.process_time()
                rho_sampled, rho_frag = _ratings(world, ev, arts, charged, n, windows, sampled=True)
                rho_full = _ratings(world, ev, arts, charged, n, windows, sampled=False)[0] if n <= 16 else None
                ratings_s, ratings_cpu_s = time.perf_counter() - t0, time.process_time() - c0
                row = dict(n=n, fetched=len(fetched), verified=len(arts), fetch_s=fetch_s, verify_s=verify_s,
                           copy_sketch_ms=1e3 * sketch_s, copy_all_pairs_ms=1e3 * all_pairs_s,
                           copies_charged=len(charged), evaluated=len(pick.evaluate),
                           evaluated_fraction=len(pick.evaluate) / n, eval_s=eval_s, window_s=window_s,
                           window_ratio=window_s / WINDOW_S, spearman_sampled=rho_sampled, spearman_all=rho_full,
                           peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                           process_cpu_s=window_cpu_s,
                           loadavg_before=load0, loadavg_after=load1, rating_windows=windows,
                           spearman_sampled_per_fragment=rho_frag, cohort_normalised=True,
                           ratings_s=ratings_s, ratings_cpu_s=ratings_cpu_s, evaluations_total=ev.evals,
                           eval_s_per_contribution=ev.eval_s / max(ev.evals, 1))
                rows.append(row)
                print(f"n={n:3d}  window/length {row['window_ratio']:.3f} ({window_s:.1f} s: fetch {fetch_s:.1f}, "
                      f"verify {verify_s:.1f}, copy {sketch_s:.2f}, eval {eval_s:.1f})  evaluated "
                      f"{row['evaluated_fraction']:.2f}  copy ms sketch {row['copy_sketch_ms']:.0f} vs all-pairs "
                      f"{row['copy_all_pairs_ms']:.0f}  charged {len(charged)}  spearman sampled {rho_sampled:.2f}"
                      + (f" / all {rho_full:.2f}" if rho_full is not None else "")
                      + " (per fragment " + ", ".join(f"{r:.2f}" for r in rho_frag) + ")"
                      + f" ({windows} windows)  peak RSS {row['peak_rss_mib']:.0f} MiB  process CPU "
                      f"{window_cpu_s:.1f} s  load {load0[0]:.1f}->{load1[0]:.1f}"
                      f"  ratings {ratings_s:.0f} s wall / {ratings_cpu_s:.0f} s CPU", flush=True)
    finally:
        for s in bad.values():
            s.__exit__(None, None, None)
    return rows


def _copy_section(sizes: list[int], repeats: int) -> list[dict[str, float]]:
    """Copy detection alone at each size: sketch vs all-pairs on real encodings, interleaved, medians.

    Both get the same decoded supports (the validator decodes each upload
    once); decoding is timed separately, per upload.

    Uploads: a few real trainings of fragment 0 of the tiny preset, each
    miner's update its training's pseudo-gradient plus independent noise of
    3x its scale (so honest miners share a descent direction but stay under
    the threshold, as real ones do), encoded with the network codec; every
    10th uid re-encodes the previous uid's update at 1.5x (a copier, seen later).
    """
    model = build_model("tiny", seed=0)
    pages = load_pages(DataConfig(vocab_size=get_preset("tiny").vocab_size))
    frag = partition(model, N_FRAGMENTS)[0]
    shapes = fragment_shapes(model, frag)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    pgs = []
    for r in range(4):
        model.load_state_dict(base)
        params = trainable_parameters(model, frag)
        start = fragment_state(model, frag)
        opt = torch.optim.AdamW(list(params.values()), lr=1e-3)
        batch = pages.batch(range(r * 8, r * 8 + 8))
        logits = model(input_ids=batch[:, :-1]).logits
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)).backward()
        opt.step()
        end = fragment_state(model, frag)
        pgs.append({k: start[k] - end[k] for k in start})
    codec, n_max = CodecConfig(), max(sizes)
    dense, encs = {}, {}
    for u in range(n_max):
        g = torch.Generator().manual_seed(u)
        if u % 10 == 9:
            dense[u] = {k: 1.5 * v for k, v in dense[u - 1].items()}
        else:
            dense[u] = {k: v + 3 * v.std() * torch.randn(v.shape, generator=g) for k, v in pgs[u % 4].items()}
        encs[u] = Encoder(shapes, codec).encode(dense[u])
    rows = []
    t0 = time.perf_counter()
    supports = {u: support_of(e) for u, e in encs.items()}  # decode once: shared by both methods
    support_ms = 1e3 * (time.perf_counter() - t0) / len(encs)
    for n in sizes:
        subs = [Submission(uid=u, hotkey=f"hk{u}", fragment=0, first_seen=float(u) + (5 if u % 10 == 9 else 0),
                           seen_after=u - 0.5 + (5 if u % 10 == 9 else 0), commit_block=1, update=supports[u])
                for u in range(n)]
        t_sk, t_all = [], []
        for _ in range(repeats):  # interleaved
            t0 = time.perf_counter()
            v_sk = judge_copies(subs)
            t_sk.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            v_all = judge_copies_all_pairs(subs)
            t_all.append(time.perf_counter() - t0)
            assert v_sk == v_all, "sketch verdicts differ from the all-pairs scan"
        row = dict(n=n, entries_per_upload=int(sum(t.index.numel() for t in decode_sparse(encs[0]))),
                   support_ms_per_upload=support_ms,
                   sketch_ms=1e3 * statistics.median(t_sk), all_pairs_ms=1e3 * statistics.median(t_all),
                   charged=len(v_sk.charged), planted=sum(1 for u in range(n) if u % 10 == 9))
        row["speedup"] = row["all_pairs_ms"] / row["sketch_ms"]
        rows.append(row)
        print(f"copy detection n={n:3d}: sketch {row['sketch_ms']:.0f} ms vs all-pairs {row['all_pairs_ms']:.0f} ms "
              f"({row['speedup']:.1f}x), charged {row['charged']} of {row['planted']} planted, same verdicts "
              f"(plus {support_ms:.0f} ms per upload to decode its support, shared)",
              flush=True)
    return rows


def _batched_section(preset: str, ks: list[int], n: int, repeats: int, inner_steps: int) -> list[dict]:
    """Batched evaluation (validator/batched_eval.py) vs one at a time, side by side in one process.

    `n` real signed miners (World: honest, noise and copies of honest uploads,
    n/2 per fragment) of `preset`; per k, every upload of each fragment is
    scored k per `score_batch` call (k=1: `score_contribution`, today's path),
    with the network's ScoreConfig on one window's batches. The k values run
    interleaved `repeats` times; medians of wall and process-CPU seconds per
    contribution. Parity (max |score difference| to k=1) is checked every run.
    """
    from subnet.validator.batched_eval import Item, score_batch

    world = World(n, preset, seed=0, inner_steps=inner_steps)
    ev = Evaluator(world)
    ev.window(0)
    cfg = ev.cfg
    items: dict[int, list[tuple[int, Item]]] = {}
    for u, data in world.data.items():
        frag = u % N_FRAGMENTS
        art = read_artifact(data, expected_hotkey=world.keys[u].ss58_address, max_bytes=world.max_bytes[frag],
                            shapes=world.shapes[frag])
        items.setdefault(frag, []).append((u, Item(
            params=trainable_parameters(world.model, world.fragments[frag]), delta=decode_sparse(art.encoded),
            assigned=page_batches(world.pages, world.pages_of[u], "train", cfg.pow_batch_size,
                                  cfg.n_assigned_batches))))
    times: dict[tuple[int, int], list[tuple[float, float]]] = {}
    scores: dict[tuple[int, int], dict[int, float]] = {}
    peak: dict[int, float] = {}
    for _ in range(repeats):
        for k in ks:
            for frag, its in sorted(items.items()):
                t0, c0 = time.perf_counter(), time.process_time()
                got: dict[int, float] = {}
                for at in range(0, len(its), k):
                    chunk = its[at:at + k]
                    if k == 1:
                        u, it = chunk[0]
                        res = [score_contribution(world.model, it.params, it.delta, cfg, it.assigned, ev.held, ev.rand,
                                                  ev.baseline)]
                    else:
                        res = score_batch(world.model, [it for _, it in chunk], cfg, ev.held, ev.rand, ev.baseline)
                    got.update({u: float(r.score) for (u, _), r in zip(chunk, res)})
                times.setdefault((k, frag), []).append((time.perf_counter() - t0, time.process_time() - c0))
                scores[(k, frag)] = got
                peak[k] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = []
    for k in ks:
        for frag, its in sorted(items.items()):
            wall = statistics.median(t for t, _ in times[(k, frag)]) / len(its)
            cpu = statistics.median(c for _, c in times[(k, frag)]) / len(its)
            base = scores[(ks[0], frag)]
            diff = max(abs(scores[(k, frag)][u] - base[u]) for u in base)
            same_rank = sorted(base, key=base.get) == sorted(base, key=scores[(k, frag)].get)
            rows.append(dict(preset=preset, k=k, fragment=frag, contributions=len(its), wall_s_per_contribution=wall,
                             cpu_s_per_contribution=cpu, max_abs_score_diff=diff, same_ranking=same_rank,
                             peak_rss_mib_after=peak[k], loadavg=os.getloadavg()))
    for frag in sorted(items):
        one = next(r for r in rows if r["k"] == ks[0] and r["fragment"] == frag)
        for r in (r for r in rows if r["fragment"] == frag):
            r["speedup_wall"] = one["wall_s_per_contribution"] / r["wall_s_per_contribution"]
            r["speedup_cpu"] = one["cpu_s_per_contribution"] / r["cpu_s_per_contribution"]
            print(f"batched {preset} fragment {frag} k={r['k']:2d}: {1e3 * r['wall_s_per_contribution']:.0f} ms wall, "
                  f"{1e3 * r['cpu_s_per_contribution']:.0f} ms CPU per contribution (speed-up {r['speedup_wall']:.2f}x "
                  f"wall, {r['speedup_cpu']:.2f}x CPU), max |dscore| {r['max_abs_score_diff']:.1e}, same ranking "
                  f"{r['same_ranking']}, peak RSS {r['peak_rss_mib_after']:.0f} MiB", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default="copy,window,storage", help="any of copy, window, storage, batched")
    ap.add_argument("--batch-ks", default="1,4,8,16", help="batched section: contributions per pass (first: baseline)")
    ap.add_argument("--batch-miners", type=int, default=32, help="batched section: miners (half per fragment)")
    ap.add_argument("--batch-repeats", type=int, default=1)
    ap.add_argument("--copy-sizes", default="16,64,256")
    ap.add_argument("--copy-repeats", type=int, default=1)
    ap.add_argument("--sizes", default="16,64,256")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--windows", type=int, default=20, help="rating rounds for the rank correlation")
    ap.add_argument("--store-windows", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inner-steps", type=int, default=4, help="AdamW steps per honest miner (TrainConfig: 10)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    sections = set(args.sections.split(","))
    t_start = time.perf_counter()
    copy_rows = _copy_section([int(s) for s in args.copy_sizes.split(",")], args.copy_repeats) \
        if "copy" in sections else []
    batched_rows = _batched_section(args.preset, [int(k) for k in args.batch_ks.split(",")], args.batch_miners,
                                    args.batch_repeats, args.inner_steps) if "batched" in sections else []
    rows: list[dict] = []
    world = None
    if sections & {"window", "storage"}:
        world = World(max(sizes) if "window" in sections else 40, args.preset, seed=0, train="window" in sections,
                      inner_steps=args.inner_steps)
        print(f"built {len(world.data)} signed artifacts of {args.preset} in {world.build_s:.0f} s "
              f"({len(world.data[0])} bytes each, fragment 0)")
    if "window" in sections:
        rows = _window_section(world, sizes, args.windows)
    storage = {}
    if "storage" in sections:
        storage = _storage(world, args.store_windows)
        print(f"after {args.store_windows} windows: lead store {storage['lead_retained'] / 2**20:.1f} MiB with "
              f"retention vs {storage['lead_all'] / 2**20:.1f} MiB without; miner store "
              f"{storage['miner_retained'] / 2**20:.2f} vs {storage['miner_all'] / 2**20:.2f} MiB")
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s")
    if args.json:
        doc = {"preset": args.preset, "window_s": WINDOW_S, "threads": args.threads, "windows": args.windows,
               "sections": sorted(sections), "copy_detection": copy_rows, "batched_eval": batched_rows,
               "loadavg_end": os.getloadavg(),
               "sampling": dataclasses.asdict(SamplingConfig()), "rows": rows, "storage_bytes": storage,
               "store_windows": args.store_windows, "total_s": total,
               "command": "bench/validator_scale.py " + " ".join(sys.argv[1:])}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
