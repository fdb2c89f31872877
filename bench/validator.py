"""Validator cost, score fidelity and proof of work, measured side by side on one model.

Two scorings run in one process on the same updates, pages and base model:
``plain`` = the network's ScoreConfig (subnet/node/config.py NETWORK_SCORE,
``n_reference_batches=0, pow_z=0``), and ``reference`` = the labelled sweep
NETWORK_SCORE with ``--reference-batches`` (default 8: the first-order term of
every score taken from the window's reference held-out set; proof of work
against the corrected control) and ``--pow-z`` (proof of work also past that
many standard errors; subnet/validator/scoring.py).

Prints:
  1. cost of scoring one contribution (decode + apply + eval batches + revert)
     relative to one training step (fwd + bwd + AdamW on one batch), medians
     over interleaved repeats, and the once-per-window baseline of each;
  2. (``--scaling``) per-window cost for 4..64 miners;
  3. score fidelity: Spearman between each scoring's score and the relative
     improvement on a large held-out set (``--big-batches`` x 8 pages,
     disjoint from every page the validator uses), over a population of
     honest miners (H, lr varied, error feedback, 16 assigned pages) plus
     noise, zero, wrong-pages and copied updates; repeated over several
     held-out draws (a window each), mean and worst reported;
  4. proof of work over ``--windows`` consecutive windows of a small
     simulated run (the base model advances each window by the honest
     miners' mean update): per behaviour, how often the proof-of-work check
     passes (false passes for free-riders, false fails for honest miners),
     per window (ratio test, t-test) and under the sequential rule
     (subnet/validator/powevidence.py, one account per miner across the
     windows); ``--pow-out`` records every try with its per-page
     improvements for bench/validator_pow_replay.py;
  5. (``--sections costsweep``) score / train step for the COST_SWEEP batch
     shapes, per fragment (first and last), with and without the prefix
     cache (subnet/validator/prefix_cache.py), also against the miner's own
     fragment-frozen step, interleaved; ``--shape`` scores the other sections
     with one, ``--no-prefix-cache`` scores them with full forwards only.

Fidelity is reported ungated, honest-only, and gated the fair way: the
contributions the gate passes plus those it rejects whose large-set
improvement is <= 0 (a rejected update that does improve the large set, e.g.
real training on the wrong pages, is a proof-of-work decision, counted
separately, not a rank error).

Run: .venv/bin/python bench/validator.py [--windows 50] [--big-batches 64] [--scaling]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

from subnet.codec.sparseloco import CodecConfig, EncodedUpdate, Encoder, decode, decode_sparse
from subnet.data.config import DataConfig
from subnet.data.pages import load_pages
from subnet.miner.config import TrainConfig
from subnet.miner.train import inner_train
from subnet.model.fragments import fragment_shapes, fragment_state, partition, trainable_parameters
from subnet.model.presets import build_model, get_preset
from subnet.node.config import NETWORK_SCORE
from subnet.validator.copydetect import Submission, find_copies
from subnet.validator.powevidence import pays, update_evidence
from subnet.validator.prefix_cache import PrefixCacheConfig
from subnet.validator.scoring import (
    ScoreConfig,
    applied,
    compute_baseline,
    mean_loss,
    page_batches,
    page_losses,
    score_contribution,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ranking import spearman  # noqa: E402

PAGES_PER_MINER = 16  # ProtocolConfig.pages_per_miner
HELDOUT_PER_WINDOW = 16  # ProtocolConfig.heldout_per_window
VALIDATOR_HELDOUT = 210  # held-out pages [0, 210) are the validator's to draw from; the rest is the reference truth


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: torch.Tensor) -> None:
    logits = model(input_ids=batch[:, :-1]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()


class Sim:
    """One base model, its fragments, the corpus, and miners that train the way subnet/miner does."""

    prefix = PrefixCacheConfig()
    """How the validator's baselines cache the prefix (``--no-prefix-cache``: off, every pass a full forward)."""

    def __init__(self, preset: str, n_fragments: int, pretrain: int, seed: int) -> None:
        self.pages = load_pages(DataConfig(vocab_size=get_preset(preset).vocab_size))
        self.model = build_model(preset, seed=seed)
        self.preset, self.seed = preset, seed
        opt = torch.optim.AdamW(self.model.parameters(), lr=3e-3)
        for s in range(pretrain):
            _step(self.model, opt, self.pages.batch(range(s * 8, s * 8 + 8)))
        self.fragments = partition(self.model, n_fragments)
        self.shapes = [fragment_shapes(self.model, f) for f in self.fragments]
        self.codec = CodecConfig()
        self.tc = TrainConfig()
        self.base = {k: v.clone() for k, v in self.model.state_dict().items()}

    def params(self, frag: int) -> dict[str, torch.Tensor]:
        return trainable_parameters(self.model, self.fragments[frag])

    def train(self, frag: int, pages: list[int], steps: int, lr: float) -> dict[str, torch.Tensor]:
        """H AdamW steps on one fragment (TrainConfig's betas, weight decay, clip) from the base; start - end."""
        tc, f = self.tc, self.fragments[frag]
        self.model.load_state_dict(self.base)
        params = trainable_parameters(self.model, f)
        start = fragment_state(self.model, f)
        flags = {n: p.requires_grad for n, p in self.model.named_parameters()}
        for n, p in self.model.named_parameters():
            p.requires_grad_(n in params)
        opt = torch.optim.AdamW(list(params.values()), lr=lr, betas=(tc.beta1, tc.beta2),
                                weight_decay=tc.weight_decay)
        bs = tc.batch_size
        for h in range(steps):
            batch = self.pages.batch([pages[(h * bs + i) % len(pages)] for i in range(bs)])
            logits = self.model(input_ids=batch[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), tc.grad_clip)
            opt.step()
        end = fragment_state(self.model, f)
        for n, p in self.model.named_parameters():
            p.requires_grad_(flags[n])
        self.model.load_state_dict(self.base)
        return {k: start[k] - end[k] for k in start}

    def advance(self, deltas: list[tuple[int, dict[str, torch.Tensor]]]) -> None:
        """The outer step: per fragment, the mean of the given dense updates at outer lr 1."""
        by_frag: dict[int, list[dict[str, torch.Tensor]]] = defaultdict(list)
        for frag, d in deltas:
            by_frag[frag].append(d)
        with torch.no_grad():
            named = dict(self.model.named_parameters())
            for _, ds in by_frag.items():
                for name in ds[0]:
                    named[name].sub_(sum(d[name] for d in ds) / len(ds))
        self.base = {k: v.clone() for k, v in self.model.state_dict().items()}


def _noise_like(update: EncodedUpdate, seed: int) -> list:
    """Random values on the same support with the same per-tensor norm (a lazy miner a norm check cannot see)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in decode_sparse(update):
        r = torch.randn(t.values.shape, generator=g)
        out.append(dataclasses.replace(t, values=r * (t.values.norm() / r.norm().clamp_min(1e-12))))
    return out


class Window:
    """One window's validator inputs (held-out draw, reference set, control pages) and both baselines."""

    def __init__(self, sim: Sim, rng: random.Random, cfgs: dict[str, ScoreConfig], exclude: set[int]) -> None:
        cfg = cfgs["reference"]
        held_pages = rng.sample(range(VALIDATOR_HELDOUT), HELDOUT_PER_WINDOW)
        ref_pages = rng.sample(range(VALIDATOR_HELDOUT), cfg.batch_size * max(1, cfg.n_reference_batches))
        ctrl = [p for p in rng.sample(range(sim.pages.n_train), 64) if p not in exclude]
        self.held = page_batches(sim.pages, held_pages, "heldout", cfg.batch_size, cfg.n_heldout_batches)
        self.rand = (page_batches(sim.pages, ctrl, "train", cfg.pow_batch_size, cfg.n_random_batches)
                     if cfg.n_random_batches else [])
        self.ref = page_batches(sim.pages, ref_pages, "heldout", cfg.batch_size, max(1, cfg.n_reference_batches))
        self.sim, self.cfgs = sim, cfgs
        self.seconds: dict[str, float] = {}
        self.baselines = {}
        by_kind: dict[bool, object] = {}  # configs differing only in assigned pages or thresholds share a baseline
        for name, c in cfgs.items():
            t0 = time.perf_counter()
            kind = c.n_reference_batches > 0
            if kind not in by_kind:
                by_kind[kind] = compute_baseline(sim.model, self.held, self.rand, reference=self.ref if kind else (),
                                                 prefix=sim.prefix)
            self.baselines[name] = by_kind[kind]
            self.seconds[name] = time.perf_counter() - t0

    def score(self, name: str, frag: int, update, assigned_pages: list[int]):
        cfg = self.cfgs[name]
        assigned = page_batches(self.sim.pages, assigned_pages, "train", cfg.pow_batch_size, cfg.n_assigned_batches)
        return score_contribution(self.sim.model, self.sim.params(frag), update, cfg, assigned, self.held,
                                  self.rand, self.baselines[name])


def _cost(sim: Sim, cfgs: dict[str, ScoreConfig], repeats: int, rng: random.Random) -> None:
    pages = list(range(1000, 1000 + PAGES_PER_MINER))
    enc = Encoder(sim.shapes[0], sim.codec).encode(sim.train(0, pages, sim.tc.inner_steps, sim.tc.lr))
    win = Window(sim, rng, cfgs, set(pages))
    train_model = build_model(sim.preset, seed=sim.seed)
    train_model.load_state_dict(sim.base)
    train_opt = torch.optim.AdamW(train_model.parameters(), lr=1e-4)
    batch = sim.pages.batch(range(8))
    t: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):  # interleaved
        t0 = time.perf_counter()
        _step(train_model, train_opt, batch)
        t["train"].append(time.perf_counter() - t0)
        for name in cfgs:
            t0 = time.perf_counter()
            win.score(name, 0, enc, pages)
            t[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with applied(sim.params(0), decode_sparse(enc), 1.0):
            pass
        t["apply"].append(time.perf_counter() - t0)
    for _ in range(max(1, repeats // 5)):
        w = Window(sim, rng, cfgs, set(pages))
        for name in cfgs:
            t[f"baseline {name}"].append(w.seconds[name])
    med = {k: statistics.median(v) for k, v in t.items()}
    c = cfgs["reference"]
    print("| quantity | plain | reference |")
    print("|---|---|---|")
    print(f"| training step (fwd+bwd+AdamW, {sim.tc.batch_size} pages) | {med['train'] * 1e3:.1f} ms | (same) |")
    print(f"| score one contribution (decode+apply+eval+revert) | {med['plain'] * 1e3:.1f} ms | "
          f"{med['reference'] * 1e3:.1f} ms |")
    print(f"| of which sparse apply+revert | {med['apply'] * 1e3:.1f} ms | (same) |")
    print(f"| **score / train step** | **{med['plain'] / med['train']:.2f}** | "
          f"**{med['reference'] / med['train']:.2f}** |")
    print(f"| window baseline (once per window; reference: fwd+bwd over {c.n_heldout_batches}x{c.batch_size} held-out, "
          f"{c.n_random_batches}x{c.pow_batch_size} control, {c.n_reference_batches}x{c.batch_size} reference pages) | "
          f"{med['baseline plain'] * 1e3:.0f} ms | {med['baseline reference'] * 1e3:.0f} ms |")
    for n in (16, 64, 256):
        per = {k: med[k] + med[f"baseline {k}"] / n for k in cfgs}
        print(f"| per contribution incl. baseline share, {n} miners / train step | {per['plain'] / med['train']:.2f} | "
              f"{per['reference'] / med['train']:.2f} |")
    print()


COST_SWEEP = {  # (assigned pages, held-out pages, control pages): 2 x assigned + held-out + control forwards
    "A8 H16 R8": dict(n_assigned_batches=2, pow_batch_size=4, n_heldout_batches=2, batch_size=8, n_random_batches=2),
    "A8 H8 R0": dict(n_assigned_batches=2, pow_batch_size=4, n_heldout_batches=1, batch_size=8, n_random_batches=0),
    "A8 H16 R0": dict(n_assigned_batches=2, pow_batch_size=4, n_heldout_batches=2, batch_size=8, n_random_batches=0),
    "A4 H16 R0": dict(n_assigned_batches=1, pow_batch_size=4, n_heldout_batches=2, batch_size=8, n_random_batches=0),
    "A4 H12 R0": dict(n_assigned_batches=1, pow_batch_size=4, n_heldout_batches=2, batch_size=6, n_random_batches=0),
    "A4 H8 R0": dict(n_assigned_batches=1, pow_batch_size=4, n_heldout_batches=1, batch_size=8, n_random_batches=0),
    "A4 H8 R4": dict(n_assigned_batches=1, pow_batch_size=4, n_heldout_batches=1, batch_size=8, n_random_batches=1),
}


def _miner_step(sim: Sim, frag: int, batch: torch.Tensor) -> tuple[float, float]:
    """One real miner step (subnet/miner/train.py inner_train, fragment-frozen, 1 inner step): (wall, CPU) s.

    Wall is inner_train's own timer (the step loop, without its set-up and restore); CPU is the whole call's.
    """
    tc = dataclasses.replace(sim.tc, inner_steps=1)
    c0 = time.process_time()
    res = inner_train(sim.model, sim.fragments[frag], iter([batch]), tc)
    return res.stats.seconds, time.process_time() - c0


def _timed(fn) -> tuple[float, float]:  # noqa: ANN001 - any thunk
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _cost_sweep(sim: Sim, repeats: int, rng: random.Random) -> None:
    """Score / train-step for each COST_SWEEP shape and NETWORK_SCORE, per fragment (first and last), with and
    without the prefix cache (subnet/validator/prefix_cache.py), all timed interleaved on one update per fragment.

    Denominators: the bench's training step (full model fwd+bwd+AdamW on 8 pages, as before) and the miner's
    real step (inner_train, 1 step, only the fragment trainable: a later fragment's backward stops at its
    first layer, so that step is cheaper).
    """
    pages = list(range(1000, 1000 + PAGES_PER_MINER))
    frags = sorted({0, len(sim.fragments) - 1})
    encs = {f: Encoder(sim.shapes[f], sim.codec).encode(sim.train(f, pages, sim.tc.inner_steps, sim.tc.lr))
            for f in frags}
    shapes = {"NETWORK_SCORE": NETWORK_SCORE,
              **{k: dataclasses.replace(NETWORK_SCORE, **v) for k, v in COST_SWEEP.items()}}
    held_pages = rng.sample(range(VALIDATOR_HELDOUT), 16)
    ctrl = [p for p in rng.sample(range(sim.pages.n_train), 64) if p not in set(pages)]
    starts = [f.layers[0] for f in sim.fragments]
    setup = {}
    for name, c in shapes.items():
        held = page_batches(sim.pages, held_pages, "heldout", c.batch_size, c.n_heldout_batches)
        rand = (page_batches(sim.pages, ctrl, "train", c.pow_batch_size, c.n_random_batches)
                if c.n_random_batches else [])
        own = page_batches(sim.pages, pages, "train", c.pow_batch_size, c.n_assigned_batches)
        bases = {"full": compute_baseline(sim.model, held, rand, prefix=PrefixCacheConfig(enabled=False)),
                 "cached": compute_baseline(sim.model, held, rand, prefix_layers=starts)}
        setup[name] = (c, own, held, rand, bases)
    train_model = build_model(sim.preset, seed=sim.seed)
    train_model.load_state_dict(sim.base)
    train_opt = torch.optim.AdamW(train_model.parameters(), lr=1e-4)
    batch = sim.pages.batch(range(8))
    wall: dict[object, list[float]] = defaultdict(list)
    cpu: dict[object, list[float]] = defaultdict(list)
    same: dict[tuple[str, int], bool] = {}
    for _ in range(repeats):  # interleaved: every quantity once per repeat
        w, c = _timed(lambda: _step(train_model, train_opt, batch))
        wall["train"].append(w)
        cpu["train"].append(c)
        for f in frags:
            w, c = _miner_step(sim, f, batch)
            wall[("miner", f)].append(w)
            cpu[("miner", f)].append(c)
        for name, (c, own, held, rand, bases) in setup.items():
            for f in frags:
                got = {}
                for mode, base in bases.items():
                    w0, c0 = time.perf_counter(), time.process_time()
                    got[mode] = score_contribution(sim.model, sim.params(f), encs[f], c, own, held, rand, base)
                    wall[(name, f, mode)].append(time.perf_counter() - w0)
                    cpu[(name, f, mode)].append(time.process_time() - c0)
                same[(name, f)] = same.get((name, f), True) and got["full"].score == got["cached"].score
    med = {k: statistics.median(v) for k, v in wall.items()}
    medc = {k: statistics.median(v) for k, v in cpu.items()}
    train = med["train"]
    print(f"| cost sweep ({repeats} interleaved repeats; medians; bench training step = full model fwd+bwd+AdamW "
          f"on 8 pages: {train * 1e3:.0f} ms wall / {medc['train'] * 1e3:.0f} ms CPU; miner step = inner_train, "
          f"1 step, fragment-frozen: " + ", ".join(f"fragment {f} {med[('miner', f)] * 1e3:.0f} ms" for f in frags)
          + ") | pages forwarded | fragment | score / train step, full forward | **with prefix cache** | "
          "cache speed-up | with cache / miner step | same score |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (c, *_rest) in setup.items():
        n = 2 * c.n_assigned_batches * c.pow_batch_size + c.n_heldout_batches * c.batch_size \
            + c.n_random_batches * c.pow_batch_size
        for f in frags:
            fr = sim.fragments[f]
            full, cached = med[(name, f, "full")], med[(name, f, "cached")]
            print(f"| {name} | {n} | {f} ({fr.name}) | {full / train:.2f} | **{cached / train:.2f}** | "
                  f"{full / cached:.2f}x | {cached / med[('miner', f)]:.2f} | {'yes' if same[(name, f)] else 'NO'} |")
    print("CPU-time medians, score CPU / bench-train CPU (full -> cached): " + ", ".join(
        f"{name} f{f} {medc[(name, f, 'full')] / medc['train']:.2f} -> {medc[(name, f, 'cached')] / medc['train']:.2f}"
        for name in setup for f in frags))
    print()


def _scaling(sim: Sim, cfgs: dict[str, ScoreConfig], rng: random.Random) -> None:
    cfg = cfgs["reference"]
    pool = [Encoder(sim.shapes[0], sim.codec).encode(sim.train(0, list(range(2000 + 16 * m, 2016 + 16 * m)), 2, 1e-3))
            for m in range(4)]
    print("| miners | baseline | scoring | copy detection | window total | per miner |")
    print("|---|---|---|---|---|---|")
    for n in (4, 16, 64):
        updates = []
        for i in range(n):  # distinct payloads: re-encode pool members with a little noise
            d = decode(pool[i % len(pool)])
            g = torch.Generator().manual_seed(i)
            updates.append(Encoder(sim.shapes[0], sim.codec).encode(
                {k: v + 0.5 * v.abs().mean() * torch.randn(v.shape, generator=g) for k, v in d.items()}))
        t0 = time.perf_counter()
        win = Window(sim, rng, {"reference": cfg}, set())
        t1 = time.perf_counter()
        for i, u in enumerate(updates):
            win.score("reference", 0, u, list(range(3000 + 16 * i, 3016 + 16 * i)))
        t2 = time.perf_counter()
        find_copies([Submission(uid=i, hotkey=str(i), fragment=0, first_seen=float(i), commit_block=0, update=u)
                     for i, u in enumerate(updates)])
        t3 = time.perf_counter()
        print(f"| {n} | {(t1 - t0):.2f} s | {(t2 - t1):.2f} s | {(t3 - t2):.2f} s | {(t3 - t0):.2f} s | "
              f"{(t3 - t0) / n * 1e3:.0f} ms |")
    print()


def _fidelity(sim: Sim, cfgs: dict[str, ScoreConfig], rng: random.Random, args: argparse.Namespace) -> None:
    big = page_batches(sim.pages, range(VALIDATOR_HELDOUT, VALIDATOR_HELDOUT + 8 * args.big_batches), "heldout", 8,
                       args.big_batches)
    big_before = mean_loss(sim.model, big)
    n_frag = len(sim.fragments)
    members: list[tuple[str, int, object, list[int]]] = []  # kind, fragment, update, pages it is scored on
    own: dict[int, list[int]] = {}
    for m in range(args.members):
        steps, lr = rng.choice([2, 5, 10]), rng.choice([5e-4, 1e-3, 2e-3])
        frag = m % n_frag
        own[m] = list(range(1000 + PAGES_PER_MINER * m, 1000 + PAGES_PER_MINER * (m + 1)))
        enc = Encoder(sim.shapes[frag], sim.codec)
        if m % 2 == 0:  # half carry an error-feedback buffer from a previous window (as a running miner does)
            enc.encode(sim.train(frag, [p + 5000 for p in own[m]], steps, lr))
        members.append((f"honest H={steps} lr={lr:g}", frag, enc.encode(sim.train(frag, own[m], steps, lr)), own[m]))
    honest_upd = [m for m in members]
    for j in range(4):
        k, frag, upd, _ = honest_upd[j]
        members.append(("noise", frag, _noise_like(upd, 100 + j), list(range(8000 + 16 * j, 8016 + 16 * j))))
    for j in range(2):
        members.append(("zero", j % n_frag, [dataclasses.replace(t, values=torch.zeros_like(t.values))
                                             for t in decode_sparse(honest_upd[j][2])], own[j]))
    for j in range(2):
        frag = j % n_frag
        wrong = list(range(9000 + 16 * j, 9016 + 16 * j))
        members.append(("wrong_pages", frag, Encoder(sim.shapes[frag], sim.codec).encode(
            sim.train(frag, wrong, sim.tc.inner_steps, sim.tc.lr)), list(range(8500 + 16 * j, 8516 + 16 * j))))
    for j in range(2):  # a copy of an honest update, scored on the copier's own assignment
        _, frag, upd, _ = honest_upd[2 + j]
        members.append(("copied", frag, upd, list(range(8700 + 16 * j, 8716 + 16 * j))))
    truth = []
    for _, frag, upd, _ in members:
        with applied(sim.params(frag), upd if not isinstance(upd, EncodedUpdate) else decode_sparse(upd), 1.0):
            truth.append((big_before - mean_loss(sim.model, big)) / big_before)
    exclude = {p for *_, pg in members for p in pg}
    cfg = cfgs["plain"]
    pool_n = max(args.pool, cfg.batch_size * cfg.n_heldout_batches)
    sizes = sorted({n for n in (8, 12, 16, 24, 32, pool_n) if n <= pool_n})
    kinds_of = [m[0].split(" ")[0] for m in members]
    rows: dict[str, list[float]] = defaultdict(list)
    rejected: dict[str, list[str]] = defaultdict(list)
    accounts = [0.0] * len(members)  # sequential proof of work: each draw is one window of the same members
    seq = dataclasses.replace(cfg, pow_sequential=True)
    for d in range(args.draws):
        win = Window(sim, rng, cfgs, exclude)
        # the pooled held-out sweep: per-page losses on one draw of pool_n pages, prefixes of it are the sizes
        pool = page_batches(sim.pages, rng.sample(range(VALIDATOR_HELDOUT), pool_n), "heldout", 8, pool_n // 8 + 1)
        pool_before = page_losses(sim.model, pool)
        res = [win.score("plain", frag, upd, pg) for _, frag, upd, pg in members]
        pool_after = []
        for _, frag, upd, _ in members:
            with applied(sim.params(frag), upd if not isinstance(upd, EncodedUpdate) else decode_sparse(upd), 1.0):
                pool_after.append(page_losses(sim.model, pool))
        est = [r.estimated_improvement if r.reason != "empty update" else 0.0 for r in res]
        honest = [i for i, k in enumerate(kinds_of) if k == "honest"]
        rows["ungated"].append(spearman(est, truth))
        rows["honest"].append(spearman([est[i] for i in honest], [truth[i] for i in honest]))
        rows["gated, as the bench counted it"].append(spearman([r.score for r in res], truth))
        for n in sizes:
            b = statistics.fmean(pool_before[:n])
            pooled = [(b - statistics.fmean(a[:n])) / b for a in pool_after]
            rows[f"pool {n}"].append(spearman(pooled, truth))
            rows[f"pool {n} honest"].append(spearman([pooled[i] for i in honest], [truth[i] for i in honest]))
        for rule in ("window", "sequential"):
            if rule == "window":
                passed = [r.proof_of_work for r in res]
            else:
                accounts = [update_evidence(a, r.pow_t, seq) for a, r in zip(accounts, res)]
                passed = [pays(a, seq) for a in accounts]
            scores = [e if ok else min(0.0, e) for e, ok in zip(est, passed)]
            keep = [i for i, ok in enumerate(passed) if ok or truth[i] <= 0]
            rows[f"fair {rule}"].append(spearman([scores[i] for i in keep], [truth[i] for i in keep]))
            rows[f"gated all {rule}"].append(spearman(scores, truth))
            rejected[rule] += [kinds_of[i] for i, ok in enumerate(passed) if not ok and truth[i] > 0]
        if args.verbose and d == 0:
            for (kind, *_), r, tr in zip(members, res, truth):
                print(f"  {kind:24s} score={r.score:+.5f} est={r.estimated_improvement:+.5f} ref={tr:+.5f} "
                      f"own={r.assigned_improvement:+.5f} ctrl={r.control_improvement:+.5f} t={r.pow_t:+.1f} "
                      f"{r.reason}")
    kinds = defaultdict(int)
    for k in kinds_of:
        kinds[k] += 1
    c = cfg
    print(f"| fidelity: Spearman vs the relative improvement on {args.big_batches}x8 held-out pages disjoint from "
          f"the validator's (n={len(members)}: {', '.join(f'{v} {k}' for k, v in kinds.items())}; {args.draws} "
          f"held-out draws = windows; NETWORK_SCORE {c.n_heldout_batches}x{c.batch_size} held-out pages) "
          f"| mean (worst) |")
    print("|---|---|")
    labels = {"ungated": "measured improvement, ungated, all members",
              "honest": "measured improvement, honest members only",
              "gated, as the bench counted it": "score, per-window gate, all members (the old 'gated' figure)",
              "gated all window": "(same, recomputed: gated score vs truth, all members)",
              "fair window": "score, per-window gate: passed + rejected-and-truth<=0",
              "gated all sequential": "score, sequential gate (accounts over the draws), all members",
              "fair sequential": "score, sequential gate: passed + rejected-and-truth<=0"}
    for key, label in labels.items():
        v = rows[key]
        print(f"| {label} | {statistics.fmean(v):.3f} ({min(v):.3f}) |")
    for n in sizes:
        v, h = rows[f"pool {n}"], rows[f"pool {n} honest"]
        print(f"| sweep: measured improvement on {n} pooled held-out pages, all (honest only) | "
              f"{statistics.fmean(v):.3f} ({min(v):.3f}) ({statistics.fmean(h):.3f}) |")
    for rule, ks in rejected.items():
        counts = {k: ks.count(k) for k in dict.fromkeys(ks)}
        print(f"| rejected by the {rule} gate although the truth improved (left out of 'fair'), over all draws | "
              f"{', '.join(f'{k} {v}' for k, v in counts.items()) or 'none'} |")
    print()


def _plain_pow(r, cfg: ScoreConfig) -> tuple[bool, float]:
    """The pre-issue-10 decision from the same measurement: ratio test on the uncorrected control, no t test."""
    n_h, n_r = cfg.n_heldout_batches, cfg.n_random_batches
    ctrl = ((r.heldout_improvement * n_h + r.random_improvement * n_r) / (n_h + n_r) if n_r
            else r.heldout_improvement)
    ok = r.assigned_improvement > ctrl + cfg.pow_ratio * abs(ctrl) + cfg.pow_margin
    return ok, (r.heldout_improvement if ok else min(0.0, r.heldout_improvement))


def _proof_of_work(sim: Sim, cfgs: dict[str, ScoreConfig], rng: random.Random, windows: int, n_honest: int,
                   out: str | None) -> None:
    """A short run: honest miners (error feedback kept) advance the model; free-riders ride along; count PoW passes.

    Every window each free-rider kind is tried twice (two assignments). The
    plain decision is derived from the same measurement as the reference one
    (same after-losses; only the control and the test differ), so both
    columns judge identical bytes on identical pages.
    """
    n_frag = len(sim.fragments)
    encoders = {(h, f): Encoder(sim.shapes[f], sim.codec) for h in range(n_honest) for f in range(n_frag)}
    sweeps = {"8 assigned pages (NETWORK_SCORE)": cfgs["reference"],
              "16 assigned pages": dataclasses.replace(cfgs["reference"], n_assigned_batches=4)}
    records: list[dict] = []
    stale: list[tuple[int, object, list[int]]] = []
    tc = sim.tc
    n_chunks = n_honest * n_frag + 7
    for w in range(windows):
        used = rng.sample(range(sim.pages.n_train), PAGES_PER_MINER * n_chunks)
        chunks = [used[i * PAGES_PER_MINER:(i + 1) * PAGES_PER_MINER] for i in range(n_chunks)]
        frag_w = w % n_frag  # the free-riders' fragment this window
        entries: list[tuple[str, int, object, list[int]]] = []
        dense_honest: list[tuple[int, dict[str, torch.Tensor]]] = []
        for h in range(n_honest):
            for f in range(n_frag):
                pages = chunks[h * n_frag + f]
                enc = encoders[(h, f)].encode(sim.train(f, pages, tc.inner_steps, tc.lr))
                entries.append(("honest", f, enc, pages))
                dense_honest.append((f, decode(enc, sim.shapes[f])))
        victim = next(e for e in entries if e[1] == frag_w)
        k = n_honest * n_frag
        wrong = Encoder(sim.shapes[frag_w], sim.codec).encode(sim.train(frag_w, chunks[k], tc.inner_steps, tc.lr))
        for j in range(2):
            entries.append(("wrong_pages", frag_w, wrong, chunks[k + 1 + j]))
            entries.append(("lazy (noise)", frag_w, _noise_like(victim[2], 2 * w + j), chunks[k + 3 + j]))
            entries.append(("copied", frag_w, victim[2], chunks[k + 5 + j] if j else chunks[k]))
        # last window's honest updates, scored one version late on their own pages
        entries += [("honest, 1 version stale", f, upd, pages) for f, upd, pages in stale]
        win = Window(sim, rng, {**cfgs, **sweeps}, set(used))
        seen: dict[str, int] = defaultdict(int)
        for kind, f, upd, pages in entries:
            rec: dict = {"window": w, "kind": kind, "miner": seen[kind]}  # (kind, miner): one identity across windows
            seen[kind] += 1
            for sname in sweeps:
                r = win.score(sname, f, upd, pages)
                plain_ok, plain_score = _plain_pow(r, sweeps[sname])
                rec[sname] = {"pow": r.proof_of_work, "score": r.score, "t": r.pow_t, "own": r.assigned_improvement,
                              "control": r.control_improvement, "plain_pow": plain_ok, "plain_score": plain_score,
                              "held": r.heldout_improvement, "rand": r.random_improvement,
                              "own_pages": r.assigned_pages, "held_pages": r.heldout_pages,
                              "rand_pages": r.random_pages}
            records.append(rec)
        stale = [(f, upd, pages) for kind, f, upd, pages in entries if kind == "honest"]
        sim.advance(dense_honest)
        print(f"  pow window {w + 1}/{windows} done", file=sys.stderr, flush=True)
    kinds = list(dict.fromkeys(r["kind"] for r in records))
    z = cfgs["reference"].pow_z
    for sname in sweeps:
        seq = dataclasses.replace(sweeps[sname], pow_sequential=True)
        accounts: dict[tuple[str, int], float] = {}
        for r in records:  # in window order: each (kind, miner) keeps one account, as ValidatorState does
            key = (r["kind"], r["miner"])
            accounts[key] = update_evidence(accounts.get(key, 0.0), r[sname]["t"], seq)
            r[sname]["seq_pow"] = pays(accounts[key], seq)
        print(f"| proof of work, {sname} ({windows} windows, F={n_frag}; {n_honest} honest miner(s) per fragment "
              f"advance the model) | tries | per-window ratio test: passes / earns | t-test (pow_z={z:g}): passes "
              f"/ earns | sequential (powevidence, drift={seq.pow_drift:g} bar={seq.pow_bar:g} "
              f"cap={seq.pow_cap:g}): paid | target | t min / median / max | own/control median |")
        print("|---|---|---|---|---|---|---|---|")
        for kind in kinds:
            rs = [r[sname] for r in records if r["kind"] == kind]
            n = len(rs)
            honest = kind.startswith("honest")
            pp, pe = sum(r["plain_pow"] for r in rs), sum(r["plain_score"] > 0 for r in rs)
            rp, re_ = sum(r["pow"] for r in rs), sum(r["score"] > 0 for r in rs)
            # cell is called only within this iteration (the print below), so the late binding of n is harmless.
            cell = ((lambda x: f"{x}/{n} ({n - x} false fails)") if honest  # noqa: B023
                    else (lambda x: f"{x}/{n}"))  # noqa: B023
            ts = sorted(r["t"] for r in rs if r["t"] == r["t"])
            ratios = [r["own"] / r["control"] for r in rs if r["control"]]
            print(f"| {kind} | {n} | {cell(pp)} / {pe} | {cell(rp)} / {re_} | {cell(sum(r['seq_pow'] for r in rs))} | "
                  f"{'false fails <= 1%' if honest else 'passes 0'} | "
                  f"{ts[0]:.1f} / {statistics.median(ts):.1f} / {ts[-1]:.1f} | {statistics.median(ratios):.2f} |")
        print()
    if out:
        import json
        with open(out, "w") as fh:
            json.dump({"windows": windows, "n_fragments": n_frag, "records": records}, fh, indent=0, default=float)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--fragments", type=int, default=2, help="F (ModelConfig.n_fragments default)")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--pretrain", type=int, default=40, help="base-model AdamW steps before the first window")
    ap.add_argument("--big-batches", type=int, default=64, help="batches of 8 pages in the large held-out reference")
    ap.add_argument("--members", type=int, default=16, help="honest miners in the fidelity population")
    ap.add_argument("--pool", type=int, default=32, help="held-out pages per draw of the pooled fidelity sweep")
    ap.add_argument("--draws", type=int, default=3, help="held-out draws (windows) the fidelity is measured over")
    ap.add_argument("--windows", type=int, default=25,
                    help="windows of the proof-of-work run (each free-rider kind is tried twice a window)")
    ap.add_argument("--reference-batches", type=int, default=8,
                    help="sweep: n_reference_batches of the reference scoring")
    ap.add_argument("--pow-z", type=float, default=None,
                    help="sweep: the reference scoring's pow_z (default: NETWORK_SCORE's)")
    ap.add_argument("--pow-out", default=None, help="write every proof-of-work try (JSON) here")
    ap.add_argument("--honest", type=int, default=1, help="honest miners per fragment in the proof-of-work run")
    ap.add_argument("--shape", default=None, choices=sorted(COST_SWEEP),
                    help="sweep: score with this COST_SWEEP batch shape instead of NETWORK_SCORE's")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: comparable on a shared CPU)")
    ap.add_argument("--no-prefix-cache", action="store_true",
                    help="score with full forwards only (the costsweep section measures both either way)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sections", default="cost,fidelity,pow", help="comma-separated: cost,costsweep,fidelity,pow")
    ap.add_argument("--scaling", action="store_true", help="also print the 4..64 miner table")
    ap.add_argument("--verbose", action="store_true", help="print every fidelity population member")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    t_start = time.perf_counter()
    network = dataclasses.replace(NETWORK_SCORE, **COST_SWEEP[args.shape]) if args.shape else NETWORK_SCORE
    cfgs = {"plain": dataclasses.replace(network, n_reference_batches=0, pow_z=0.0),
            "reference": dataclasses.replace(network, n_reference_batches=args.reference_batches,
                                             pow_z=NETWORK_SCORE.pow_z if args.pow_z is None else args.pow_z)}
    sim = Sim(args.preset, args.fragments, args.pretrain, args.seed)
    sim.prefix = PrefixCacheConfig(enabled=not args.no_prefix_cache)
    n_params = sum(p.numel() for p in sim.model.parameters())
    c = network
    print(f"# validator bench: preset={args.preset} ({n_params / 1e6:.2f}M params, F={args.fragments}), "
          f"{args.shape or 'NETWORK_SCORE'}: assigned/heldout/random = {c.n_assigned_batches}x{c.pow_batch_size}/"
          f"{c.n_heldout_batches}x{c.batch_size}/{c.n_random_batches}x{c.pow_batch_size} pages, "
          f"reference {c.n_reference_batches}x{c.batch_size} pages, pow_ratio={c.pow_ratio}; miners: "
          f"TrainConfig H={sim.tc.inner_steps} lr={sim.tc.lr:g} batch={sim.tc.batch_size}, "
          f"codec chunk={sim.codec.chunk} topk={sim.codec.topk} bits={sim.codec.value_bits}; threads={args.threads}; "
          f"prefix cache {'on' if sim.prefix.enabled else 'off'}")
    print()
    sections = set(args.sections.split(","))
    if "cost" in sections:
        _cost(sim, cfgs, args.repeats, rng)
    if "costsweep" in sections:
        _cost_sweep(sim, args.repeats, rng)
    if args.scaling:
        _scaling(sim, cfgs, rng)
    if "fidelity" in sections:
        _fidelity(sim, cfgs, rng, args)
    if "pow" in sections:
        _proof_of_work(sim, cfgs, rng, args.windows, args.honest, args.pow_out)
    print(f"took {time.perf_counter() - t_start:.0f} s")
    print("command: " + " ".join([".venv/bin/python", "bench/validator.py",
                                  *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
