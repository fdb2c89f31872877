"""The simulated network and its centralized twin, for bench/convergence.py.

One process, real parts: the protocol's assignment and held-out pages, the
miner's `inner_train` and round-robin batches, the real codec with each
miner's persistent error feedback, signed artifacts through `write_artifact` /
`read_artifact`, the validator's `score_contribution` with the network's
ScoreConfig, its gates (noise floor, norm outlier), paid updates plus the
unpaid ones `pipeline.unpaid_aggregation` would admit (its conditions
restated in `_select` on the sim's plain values, the same functions for the
standard error, the noise test and the cancelling check), top-G per fragment, then `build_manifest` +
`apply_decoded` (the outer step every node runs). Miners are simulated one after another; a round is a window.

Staleness follows the live timeline: during window w miners hold version v-1
(manifest w-1 is still being scored), the validator scores on version v and
applies to v. `rebase_at` is when the newest manifest lands part-way through
the miner's inner steps, and the miner rebases onto it with the loop's own
`subnet.miner.rebase.train_rebasing` (0 = it is there before training: no
staleness; 1 = it lands after training: no rebase, the previous default).

Nothing here is a mock: a row differs from the headline only in the fields
of its `NetConfig`.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from bittensor.sp_core import Keypair
from convergence_partial import format_progress

from subnet.codec.config import CodecConfig
from subnet.codec.sparseloco import Encoder, decode
from subnet.codec.wire import ArtifactHeader, expected_max_bytes, read_artifact, write_artifact
from subnet.data.pages import TokenPages
from subnet.miner.config import TrainConfig
from subnet.miner.rebase import train_rebasing
from subnet.miner.train import AdamState, lm_loss, lr_at
from subnet.model.fragments import fragment_shapes, partition, trainable_parameters
from subnet.model.presets import build_model
from subnet.protocol.assignment import AssignmentParams, assign_all, heldout_pages, random_pages
from subnet.protocol.keys import artifact_key
from subnet.protocol.windows import seed_from_hash
from subnet.sync.aggregate import RULE, Contribution, build_manifest, select_top
from subnet.sync.apply import GlobalModel, apply_decoded, artifact_sha256
from subnet.validator.copydetect import PARTIAL_SHARE, overlap_stats, support_of
from subnet.validator.pipeline import heldout_se, within_noise
from subnet.validator.scoring import ScoreConfig, compute_baseline, page_batches, score_contribution

NETUID = 1
CONTROL_UID = 1 << 16  # as subnet/validator/loop.py: the window's shared control pages


@dataclass(frozen=True, kw_only=True)
class NetConfig:
    """One network arm: everything that changes between sweep rows."""

    inner_steps: int
    rounds: int
    outer_lr: float
    chunk: int
    topk: int
    value_bits: int
    ef_decay: float
    staleness: int = 1
    rebase_at: float = 1.0
    """Share of the inner steps done on the stale base before the miner rebases (1: never)."""
    rule: str = RULE
    select: bool = True
    """Validator selection: scores, gates, positive only, top-G (False: keep every contribution)."""
    top_g: int = 8
    fragments: int = 2
    aggregate_z: float | None = None
    """Aggregate updates whose held-out change is within this many standard errors below zero, paid or not
    (pipeline.within_noise); None: the validator's default (ValidatorOptions.aggregate_z)."""
    outer_momentum: float = 0.0
    """Bench-only Nesterov outer momentum (DiLoCo) after the protocol's outer step: a measurement of whether it
    is worth building into the consensus outer step (it is not in the protocol; 0 = the protocol)."""

    @property
    def density(self) -> float:
        return self.topk / self.chunk

    @property
    def steps(self) -> int:
        return self.inner_steps * self.rounds

    def label(self) -> str:
        stale = f"stale={self.staleness}" + (f" rebase@{self.rebase_at:g}" if self.staleness and self.rebase_at < 1
                                             else "")
        rule = "" if self.rule == RULE else " support-mean"
        rule += f" nesterov={self.outer_momentum:g} (bench-only)" if self.outer_momentum else ""
        sel = f" top-{self.top_g}+gates" if self.select else " keep-all"
        sel += f" aggregate_z={self.aggregate_z:g}" if self.select and self.aggregate_z is not None else ""
        return (f"H={self.inner_steps} R={self.rounds} F={self.fragments} outer_lr={self.outer_lr:g} "
                f"density={100 * self.density:.2f}% {stale}{rule}{sel}")


@dataclass(frozen=True, kw_only=True)
class Gates:
    """The validator's cheap gates, as ValidatorOptions sets them."""

    norm_outlier: float
    min_score: float
    aggregate_z: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Setup:
    """Shared across arms: model, data, miners, inner optimizer, scoring, evaluation."""

    preset: str
    miners: int
    batch: int
    pages_per_miner: int
    heldout_per_window: int
    train: TrainConfig
    score: ScoreConfig
    gates: Gates
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


def assignment_params(pages: TokenPages, setup: Setup, fragments: int) -> AssignmentParams:
    return AssignmentParams(n_fragments=fragments, pages_per_miner=setup.pages_per_miner,
                            n_train_pages=pages.n_train, n_heldout_pages=pages.n_heldout,
                            heldout_per_window=setup.heldout_per_window)


def round_plan(pages: TokenPages, setup: Setup, fragments: int, data_seed: int, rnd: int) -> dict[int, Any]:
    """assign_all for one round: uid -> Assignment(fragment, pages)."""
    return assign_all(round_seed(data_seed, rnd), range(setup.miners), assignment_params(pages, setup, fragments))


def miner_batches(pages: TokenPages, page_ids: tuple[int, ...], batch: int, steps: int) -> list[torch.Tensor]:
    """`steps` batches drawn round-robin from the assigned pages (as subnet/miner/loop.py `_cycle_batches`)."""
    idx = list(page_ids)
    return [pages.batch([idx[(s * batch + j) % len(idx)] for j in range(batch)], "train") for s in range(steps)]


def evaluate(model: torch.nn.Module, pages: TokenPages, setup: Setup) -> float:
    """Mean held-out loss (nats/token) over the fixed evaluation pages (never scored on)."""
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


def run_central(pages: TokenPages, setup: Setup, seed: int, inner_steps: int, rounds: int,
                fragments: int) -> dict[str, Any]:
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
        plan = round_plan(pages, setup, fragments, seed, rnd)
        per_miner = [miner_batches(pages, plan[uid].pages, setup.batch, inner_steps) for uid in sorted(plan)]
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
            if step % 100 == 0:
                _progress(f"central seed {seed}: step {step} loss {curve.loss[-1]:.4f} "
                          f"[{time.perf_counter() - t0:.0f}s]")
    return {"curve": asdict(curve), "seconds": time.perf_counter() - t0, "steps": step}


# --------------------------------------------------------------------------- the network


def _progress(text: str) -> None:
    """A progress line on stderr, so a run cut short still shows how far it got."""
    print(text, file=sys.stderr, flush=True)


def _outer_momentum(model: torch.nn.Module, before: dict[str, torch.Tensor], mom: dict[str, torch.Tensor],
                    outer_lr: float, beta: float) -> None:
    """Turn the outer step just applied (before -> now) into Nesterov: m = beta m + d; p = before - lr (d + beta m)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            d = (before[n] - p) / outer_lr
            m = mom[n] = d if n not in mom else beta * mom[n] + d
            p.copy_(before[n] - outer_lr * (d + beta * m))


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass(kw_only=True)
class _Selection:
    """What the simulated validator decided in one round."""

    kept: list[Contribution]
    scores: dict[int, float]
    reasons: dict[int, str]


def _select(gm: GlobalModel, pages: TokenPages, setup: Setup, net: NetConfig, seed: int, rnd: int,
            plan: dict[int, Any], cands: list[tuple[Contribution, Any]], ref_norms: dict[int, float]) -> _Selection:
    """The validator's pipeline on this round's verified uploads, on the version it applies to.

    Norm gate (against the fragment's reference norm, or the cohort's lower median
    before there is one), score_contribution on the next round's held-out pages and
    the window's control pages, the noise floor, the paid updates plus the unpaid
    ones within `aggregate_z` standard errors (pipeline.unpaid_aggregation), top-G
    per fragment ranked by the measured score.
    """
    if not net.select:
        return _Selection(kept=[c for c, _ in cands], scores={}, reasons={})
    sc, ap = setup.score, assignment_params(pages, setup, net.fragments)
    heldout_b = page_batches(pages, heldout_pages(round_seed(seed, rnd + 1), ap), "heldout", sc.batch_size,
                             sc.n_heldout_batches)
    assigned_all = {pg for a in plan.values() for pg in a.pages}
    control = random_pages(round_seed(seed, rnd), CONTROL_UID, ap, sc.pow_batch_size * sc.n_random_batches,
                           exclude=assigned_all)
    random_b = page_batches(pages, control, "train", sc.pow_batch_size, sc.n_random_batches)
    baseline = compute_baseline(gm.model, heldout_b, random_b)
    scores: dict[int, float] = {}
    reasons: dict[int, str] = {}
    z = setup.gates.aggregate_z if net.aggregate_z is None else net.aggregate_z
    keep: set[int] = set()
    raw: dict[int, float] = {}
    ses: dict[int, float | None] = {}
    pow_t: dict[int, float] = {}
    norms = {c.uid: _l2(enc) for c, enc in cands}
    for frag in sorted({c.fragment for c, _ in cands}):
        cohort = [(c, enc) for c, enc in cands if c.fragment == frag]
        ref = ref_norms.get(frag)
        if ref is None and len(cohort) >= 2:
            ref = statistics.median_low([norms[c.uid] for c, _ in cohort])
        params = trainable_parameters(gm.model, gm.fragment(frag))
        for c, enc in cohort:
            if ref and norms[c.uid] > setup.gates.norm_outlier * ref:
                scores[c.uid], reasons[c.uid] = 0.0, "norm outlier"
                continue
            assigned_b = page_batches(pages, plan[c.uid].pages, "train", sc.pow_batch_size, sc.n_assigned_batches)
            cs = score_contribution(gm.model, params, enc, sc, assigned_b, heldout_b, random_b, baseline)
            floor = 0 < cs.score < setup.gates.min_score  # the noise floor
            scores[c.uid] = 0.0 if floor else cs.score
            reasons[c.uid] = "below the noise floor" if floor else cs.reason
            raw[c.uid] = cs.score
            ses[c.uid], pow_t[c.uid] = heldout_se(cs.heldout_pages), cs.pow_t
            if scores[c.uid] > 0:
                keep.add(c.uid)
        positive = [norms[c.uid] for c, _ in cohort if scores.get(c.uid, 0.0) > 0]
        if positive:  # as Validator._update_ref_norms (REF_NORM_DECAY 0.7)
            now = statistics.median_low(positive)
            ref_norms[frag] = now if frag not in ref_norms else 0.7 * ref_norms[frag] + 0.3 * now
        # pipeline.unpaid_aggregation: within noise of min(own SE, the cohort's lower-median SE), this window's
        # proof-of-work t > 0, a norm within the gate's factor of the reference either way
        ref = ref_norms.get(frag)
        cohort_ses = sorted(v for c, _ in cohort if (v := ses.get(c.uid)) is not None and math.isfinite(v))
        lower = cohort_ses[(len(cohort_ses) - 1) // 2] if cohort_ses else None
        floor_norm = min(ref, statistics.median_low(positive)) if ref and positive else ref
        supports = {c.uid: support_of(enc) for c, enc in cohort if c.uid in raw}
        for c, _ in cohort:
            own = ses.get(c.uid)
            if (z > 0 and c.uid in raw and scores[c.uid] <= 0 and ref and lower is not None and own is not None
                    and floor_norm / setup.gates.norm_outlier <= norms[c.uid] <= setup.gates.norm_outlier * ref
                    and math.isfinite(pow_t[c.uid]) and pow_t[c.uid] > 0
                    and within_noise(raw[c.uid], min(own, lower), z)
                    and not any(overlap_stats(sup, supports[c.uid]).share <= -PARTIAL_SHARE
                                for u, sup in supports.items() if u != c.uid)):
                keep.add(c.uid)
    eligible = [c for c, _ in cands if c.uid in keep]
    kept: list[Contribution] = []
    for frag in sorted({c.fragment for c in eligible}):
        kept += select_top([replace(c, score=scores[c.uid]) for c in eligible if c.fragment == frag], net.top_g,
                           score=lambda c: raw[c.uid])  # Verdict.selected: paid score, else the raw measurement
    return _Selection(kept=kept, scores=scores, reasons=reasons)


def _l2(encoded: Any) -> float:
    """Norm of an encoded update from its sparse values (what the validator's norm gate reads)."""
    from subnet.codec.sparseloco import decode_sparse

    return math.sqrt(sum(float(torch.sum(s.values.to(torch.float64) ** 2)) for s in decode_sparse(encoded)))


def _train_miner(trainer: torch.nn.Module, current: dict[str, torch.Tensor] | None, frag: Any,
                 batches: list[torch.Tensor], cfg: TrainConfig, state: AdamState, start_step: int,
                 rebase_steps: int | None) -> tuple[dict[str, torch.Tensor], AdamState, int]:
    """H inner steps from `trainer`'s weights; with `rebase_steps`, rebase onto `current` after that many.

    The miner loop's own `train_rebasing` (subnet/miner/rebase.py): the newest version
    "lands" after `rebase_steps` inner steps, where the loop would find it in the lead's store.
    """
    def newer() -> bool:
        assert current is not None
        trainer.load_state_dict(current)
        return True

    if rebase_steps is None or current is None or rebase_steps >= cfg.inner_steps:
        check, hook = 0, None
    elif rebase_steps <= 0:  # the manifest is there before the first step: train on it
        trainer.load_state_dict(current)
        check, hook = 0, None
    else:
        check, hook = rebase_steps, newer
    out = train_rebasing(trainer, frag, iter(batches), cfg, state, start_step=start_step, check_every=check,
                         newer=hook)
    return out.result.pseudo_grad, out.result.optimizer_state, out.result.stats.end_step


def run_network(pages: TokenPages, setup: Setup, seed: int, net: NetConfig) -> dict[str, Any]:
    """N miners, F fragments, real codec + wire + validator selection + outer step, one round per window."""
    model = build_model(setup.preset, seed=seed)
    frags = partition(model, net.fragments)
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
    ref_norms: dict[int, float] = {}
    momentum: dict[str, torch.Tensor] = {}
    kept_per_round: list[int] = []
    dropped: dict[str, int] = {}
    artifacts = 0
    previous: dict[str, torch.Tensor] | None = None  # version v-1 (what miners hold while manifest v-1 is scored)
    trainer = build_model(setup.preset, seed=seed) if net.staleness else model
    rebase_steps = round(net.rebase_at * net.inner_steps) if net.staleness and net.rebase_at < 1 else None
    per_step = tokens_per_step(pages, setup)
    curve = Curve()
    curve.add(0, evaluate(model, pages, setup))
    t0 = time.perf_counter()
    t_train = t_codec = t_select = t_apply = 0.0
    for rnd in range(net.rounds):
        current = _snapshot(model) if net.staleness else None
        base_version = gm.version - 1 if net.staleness and previous is not None and rebase_steps is None else gm.version
        plan = round_plan(pages, setup, net.fragments, seed, rnd)
        cands: list[tuple[Contribution, Any]] = []
        decoded: dict[int, dict[str, torch.Tensor]] = {}
        for uid in sorted(plan):
            a = plan[uid]
            frag = frags[a.fragment]
            ts = time.perf_counter()
            batches = miner_batches(pages, a.pages, setup.batch, net.inner_steps)
            if net.staleness:
                trainer.load_state_dict(previous if previous is not None else current)
            pg, opt_state[uid], steps_done[uid] = _train_miner(
                trainer, current if previous is not None else None, frag, batches, train_cfg, opt_state[uid],
                steps_done[uid], rebase_steps)
            t_train += time.perf_counter() - ts
            ts = time.perf_counter()
            enc = encoders.get((uid, a.fragment))
            if enc is None:
                enc = encoders[(uid, a.fragment)] = Encoder(shapes[a.fragment], codec)
            hotkey = keys[uid].ss58_address
            header = ArtifactHeader(netuid=NETUID, window=rnd, uid=uid, hotkey=hotkey, fragment=a.fragment,
                                    base_version=max(0, base_version))
            data = write_artifact(enc.encode(pg), header, keys[uid])
            uploaded[uid] += len(data)
            artifacts += 1
            art = read_artifact(data, expected_hotkey=hotkey, max_bytes=max_bytes[a.fragment],
                                shapes=shapes[a.fragment], netuid=NETUID, window=rnd, fragment=a.fragment,
                                uid=uid, codec=codec)
            decoded[uid] = decode(art.encoded, shapes[a.fragment])
            t_codec += time.perf_counter() - ts
            cands.append((Contribution(fragment=a.fragment, uid=uid, hotkey=hotkey,
                                       key=artifact_key(NETUID, rnd, hotkey, a.fragment),
                                       sha256=artifact_sha256(data), score=0.0, delta=decoded[uid]), art.encoded))
        ts = time.perf_counter()
        sel = _select(gm, pages, setup, net, seed, rnd, plan, cands, ref_norms)
        t_select += time.perf_counter() - ts
        kept_per_round.append(len(sel.kept))
        kept_uids = {c.uid for c in sel.kept}
        for uid, why in sel.reasons.items():
            if uid not in kept_uids:  # why the validator left an honest contribution out
                key = why.split(":")[0].split("(")[0].strip() or "not positive"
                dropped[key] = dropped.get(key, 0) + 1
        ts = time.perf_counter()
        manifest = build_manifest(netuid=NETUID, window=rnd, base_version=gm.version, contributions=sel.kept,
                                  outer_lr=net.outer_lr, top_g=net.top_g, rule=net.rule)
        before = {n: p.detach().clone() for n, p in model.named_parameters()} if net.outer_momentum else None
        apply_decoded(gm, manifest, [decoded[e.uid] for e in manifest.entries], verify_hash=False)
        if before is not None:
            _outer_momentum(model, before, momentum, net.outer_lr, net.outer_momentum)
        t_apply += time.perf_counter() - ts
        previous = current
        curve.add((rnd + 1) * net.inner_steps * per_step, evaluate(model, pages, setup))
        _progress(format_progress(seed=seed, label=net.label(), round=rnd + 1, tokens=curve.tokens[-1],
                                  loss=curve.loss[-1], kept=len(sel.kept), uploaded=sum(uploaded.values()),
                                  seconds=time.perf_counter() - t0))
    return {
        "curve": asdict(curve), "seconds": time.perf_counter() - t0,
        "seconds_train": t_train, "seconds_codec": t_codec, "seconds_select": t_select, "seconds_apply": t_apply,
        "uploaded_bytes_per_miner": uploaded, "artifacts": artifacts, "version": gm.version,
        "kept_per_round": kept_per_round, "dropped_reasons": dropped, "model_hash": gm.model_hash,
    }



def one_artifact_bytes(preset: str, net: NetConfig, seed: int = 0) -> float:
    """Mean len() of one signed artifact per fragment (random update): what a miner uploads per window.

    The codec keeps exactly k values per chunk, so the size does not depend on the update; used where
    a run's own byte count is missing (a partial run recovered from an older progress log).
    """
    model = build_model(preset, seed=seed)
    codec = CodecConfig(chunk=net.chunk, topk=net.topk, value_bits=net.value_bits, ef_decay=net.ef_decay)
    key = Keypair.create_from_uri("//BenchMiner0")
    gen = torch.Generator().manual_seed(seed)
    sizes = []
    for frag in partition(model, net.fragments):
        shapes = {n: tuple(s) for n, s in fragment_shapes(model, frag).items()}
        update = {n: 1e-3 * torch.randn(s, generator=gen) for n, s in shapes.items()}
        header = ArtifactHeader(netuid=NETUID, window=0, uid=0, hotkey=key.ss58_address, fragment=frag.index,
                                base_version=0)
        sizes.append(len(write_artifact(Encoder(shapes, codec).encode(update), header, key)))
    return statistics.mean(sizes)
