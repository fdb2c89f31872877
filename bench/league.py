"""The adversary league: honest miners plus adversaries of every kind, side by side with an all-honest twin.

Why: each defence is tested alone elsewhere; this bench asks what the whole
validator pays out when every attack runs at once, window after window, with
the lead's aggregation moving the model the adversaries then attack again.

Real parts, in one process: the tiny model after a short pre-training, the
miner's real inner loop on each miner's assigned pages, the real SparseLoCo
codec, real sr25519 signatures, the adversary package's own recipes
(subnet/adversary/behaviours.py: the broken and forged files are its
`broken_artifact`, the noisy copy its `noisy_copy`), the validator's pure
pipeline (verify -> gate -> sample -> evaluate -> settle -> compete, with
the neurons' default ScoreConfig, ValidatorOptions and CompetitionConfig; the
sequential proof-of-work accounts and deferred credits carried window to window
as the loop persists them),
and the lead's aggregation (`build_manifest` + `apply_decoded`, SyncConfig
defaults) applied to the global model each window. The chain is what this
bench plays (peers, assignments, seeds are plain values, as in
validator_tests/harness/pipeline_world.py, whose World it extends).

The twin: the same seeds, the same honest miners on the same pages, the
adversaries removed. Honest training is memoised by (exact model hash, pages):
while the two global models are bit-identical an honest update is computed
once for both (the same deterministic function of the same inputs); once they
differ each twin trains its own.

Kinds: the 19 behaviours of subnet/adversary, `tiny` (the griefing case: own
work x 0.01 in the honest miners' cohort; the demo's lazy miner) and
`partial_copy` (own work + 0.5 x an honest peer's update: red-team finding 3).
`sybil` is one operator's two hotkeys sharing one store, both uploading the
same update trained on the first hotkey's pages: the first does real work on
its own assignment, so its pay is earned; the rule is that the pair earns no
more than one. `steal_key` writes only under a victim's key in its own store,
so the validator finds nothing under its key (absent); `oversized` is pinned
here (the watcher would refuse it before download) and refused at verify.

Prints and writes bench/results/league.{json,md}: share of emission (weights)
adversaries earned per kind (goal 0), honest miners' mean score change vs the
twin, honest contributions zeroed (league and twin), the global model's
held-out loss vs the twin, and the partial-copy share over honest pairs (the
margin under copydetect.PARTIAL_SHARE).

Run: .venv/bin/python bench/league.py [--honest 4] [--windows 4] [--kinds all]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "validator_tests"))

from harness.pipeline_world import DEADLINE, TRAIN, Upload, Window, World  # noqa: E402

from subnet.adversary import behaviours  # noqa: E402
from subnet.codec import decode, read_artifact  # noqa: E402
from subnet.codec.sparseloco import EncodedUpdate  # noqa: E402
from subnet.codec.wire import ArtifactHeader, expected_max_bytes  # noqa: E402
from subnet.node.chain import Peer  # noqa: E402
from subnet.protocol.assignment import Assignment, random_pages  # noqa: E402
from subnet.protocol.config import ProtocolConfig  # noqa: E402
from subnet.protocol.keys import artifact_key  # noqa: E402
from subnet.sync.aggregate import Contribution, build_manifest  # noqa: E402
from subnet.sync.apply import apply_decoded  # noqa: E402
from subnet.sync.config import SyncConfig  # noqa: E402
from subnet.validator.competition import CompetitionState  # noqa: E402
from subnet.validator.copydetect import PARTIAL_SHARE, overlap_stats, support_of  # noqa: E402
from subnet.validator.pipeline import Verdict  # noqa: E402
from subnet.validator.powevidence import Credits  # noqa: E402
from subnet.validator.scoring import mean_loss, page_batches  # noqa: E402
from subnet.validator.submission import Outcome  # noqa: E402

KINDS = (*behaviours.QUALITY, *behaviours.FREE_RIDERS, *behaviours.BROKEN, "tiny", "partial_copy")
"""19 behaviours of subnet/adversary (honest excluded), the griefing case and the partial copy."""
ADVERSARY_UID0 = 100
EVAL_PAGES = 64  # held-out pages of the global-model loss (fixed for the whole run, both twins)
SLOTS = 40  # disjoint 300-page blocks of the training pages an assignment can take
PAGES_PER_MINER = ProtocolConfig().pages_per_miner
"""The protocol's assignment size (16), as the neurons run it: TRAIN's 4 steps x 8 pages cover each page twice,
so every proof-of-work page was trained on (pipeline_world's 64-page assignment leaves half of them unseen)."""


class LeagueWorld(World):
    """pipeline_world's World, one per twin, moved window by window (seeds, assignments, model)."""

    def __init__(self, train_cache: dict[tuple, dict[str, torch.Tensor]]) -> None:
        super().__init__(n_fragments=1)
        self.window_index = 0
        self.slot: dict[int, int] = {}
        self._train_cache = train_cache

    def start_window(self, w: int) -> None:
        self.window_index = w
        self.seed, self.seed_next = 0x1EA6_0000 + w, 0x1EA6_0000 + w + 1
        self._ctx.clear()  # held-out, control pages and the baseline belong to this window's model

    def assignment(self, uid: int, fragment: int = 0) -> Assignment:
        slot = (self.slot.setdefault(uid, len(self.slot)) + 7 * self.window_index) % SLOTS
        start = 1000 + 300 * slot
        return Assignment(fragment=fragment, pages=tuple(range(start, start + PAGES_PER_MINER)))

    def trained(self, pages: tuple[int, ...], fragment: int = 0, steps: int = TRAIN.inner_steps,
                lr: float = TRAIN.lr) -> dict[str, torch.Tensor]:
        key = (self.gm.model_hash, pages, fragment, steps, lr)
        if key not in self._train_cache:
            self._train_cache[key] = World.trained.__wrapped__(self, pages, fragment, steps, lr)
        return self._train_cache[key]


@dataclass
class Twin:
    """One side of the comparison: its world, its validator state and what it measured."""

    name: str
    world: LeagueWorld
    ref_norms: dict[int, float] = field(default_factory=dict)
    comp: CompetitionState = field(default_factory=CompetitionState)
    rows: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    history: list[tuple[int, EncodedUpdate, int]] = field(default_factory=list)
    """(window, encoded honest update, its base version): what a replayer can re-sign."""
    pow_evidence: dict[str, float] = field(default_factory=dict)
    """hotkey -> running proof-of-work account (the network's sequential rule), carried window to window."""
    pow_credits: dict[str, Credits] = field(default_factory=dict)
    """hotkey -> held proof-of-work credits (the deferred credit, oldest first), carried window to window."""


def _scaled(update: Mapping[str, torch.Tensor], k: float) -> dict[str, torch.Tensor]:
    return {n: t * k for n, t in update.items()}


def _runtime(w: LeagueWorld, uid: int, state_dir: str) -> SimpleNamespace:
    """What behaviours.broken_artifact reads from a NodeRuntime: our key, the model, codec and byte bound."""
    max_bytes = expected_max_bytes(w.gm.shapes(0), w.codec)
    store = SimpleNamespace(max_artifact_bytes=max_bytes)
    return SimpleNamespace(uid=uid, wallet=SimpleNamespace(hotkey=w.keypair(uid)), gm=w.gm, codec=w.codec,
                           state_dir=state_dir, cfg=SimpleNamespace(store=store))


def _header(w: LeagueWorld, uid: int, base_version: int | None = None) -> ArtifactHeader:
    from harness.pipeline_world import NETUID, WINDOW
    return ArtifactHeader(netuid=NETUID, window=WINDOW, uid=uid, hotkey=w.hotkey(uid), fragment=0,
                          base_version=w.gm.version if base_version is None else base_version)


def adversary_upload(kind: str, uid: int, w: LeagueWorld, twin: Twin, victim: int, victim_bytes: bytes,
                     peers: list[Peer], state_dir: str) -> Upload | None:
    """The file one adversary of `kind` uploads this window (None: nothing under its own key)."""
    own = lambda: w.honest(uid)  # noqa: E731 - trained lazily: broken files need no training
    later = {"first_seen": 1010.0, "seen_after": 1005.0}  # copiers read the victim's file after it was up
    stolen = read_artifact(victim_bytes, expected_hotkey=w.hotkey(victim), max_bytes=10**9,
                           shapes=w.gm.shapes(0)).encoded
    if kind == "noise":
        data = w.sign(uid, w.noise(uid * 1000 + w.window_index))
    elif kind == "zero":
        data = w.sign(uid, w.zero())
    elif kind == "wrong_pages":
        other = random_pages(w.seed, uid, w.params, PAGES_PER_MINER)
        data = w.sign(uid, w.trained(other))
    elif kind == "scaled":
        data = w.sign(uid, _scaled(own(), 100.0))  # AdversaryOptions.poison_scale's default
    elif kind == "sign_flip":
        data = w.sign(uid, _scaled(own(), -1.0))
    elif kind == "tiny":
        data = w.sign(uid, _scaled(own(), 0.01))
    elif kind == "copier":
        return Upload(uid=uid, data=w.sign(uid, stolen), **later)
    elif kind == "copier_noisy":
        noisy = behaviours.noisy_copy(stolen, w.gm.shapes(0), w.codec, seed=(uid << 20) + w.window_index)
        return Upload(uid=uid, data=w.sign(uid, noisy), **later)
    elif kind == "partial_copy":
        mix = {n: t + 0.5 * d for (n, t), d in zip(own().items(), decode(stolen).values())}
        return Upload(uid=uid, data=w.sign(uid, mix), **later)
    elif kind == "late":
        return Upload(uid=uid, data=w.sign(uid, own()), block=DEADLINE)
    elif kind == "steal_key":
        return None  # its file sits under the victim's key in the thief's store; nothing under its own key
    elif kind == "replay":
        old = [(win, enc, ver) for win, enc, ver in twin.history if win <= w.window_index - 2]
        if not old:
            return None
        _, enc, ver = old[-1]
        data = w.sign(uid, enc, base_version=ver)
    elif kind in behaviours.BROKEN:
        rt = _runtime(w, uid, state_dir)
        data = behaviours.broken_artifact(kind, rt, w.window_index, w.gm.fragment(0), _header(w, uid),
                                          lambda: w.encode(own()), peers)
    else:
        raise ValueError(f"unknown league kind {kind!r}; expected one of {KINDS}")
    return Upload(uid=uid, data=data)


def _roster(honest: int, kinds: Sequence[str], per_kind: int) -> dict[int, str]:
    """uid -> kind ('honest' for uids 1..honest); sybil groups are two hotkeys per adversary."""
    roster = {u: "honest" for u in range(1, honest + 1)}
    uid = ADVERSARY_UID0
    for kind in kinds:
        for _ in range(per_kind * (2 if kind == "sybil" else 1)):
            roster[uid] = kind
            uid += 1
    return roster


def _aggregate(w: LeagueWorld, verdict: Verdict, window: int) -> list[int]:
    """The lead's step: select top_g per fragment, clip to the median norm, mean, apply (SyncConfig defaults)."""
    sync = SyncConfig()
    chosen = verdict.selected(sync.top_g)
    contribs = [Contribution(fragment=s.fragment, uid=s.uid, hotkey=s.hotkey,
                             key=artifact_key(3, window, s.hotkey, s.fragment), sha256=s.artifact.sha256,
                             score=float(s.score or 0.0), delta=s.dense())
                for s in chosen if s.artifact is not None]
    manifest = build_manifest(netuid=3, window=window, base_version=w.gm.version, contributions=contribs,
                              outer_lr=sync.outer_lr, top_g=sync.top_g, rule=sync.rule)
    by_uid = {c.uid: c for c in contribs}
    apply_decoded(w.gm, manifest, [by_uid[e.uid].delta for e in manifest.entries], verify_hash=False)
    return [e.uid for e in manifest.entries]


def _eval_batches(w: LeagueWorld) -> list[torch.Tensor]:
    return page_batches(w.pages, range(w.pages.n_heldout - EVAL_PAGES, w.pages.n_heldout), "heldout", 8,
                        EVAL_PAGES // 8)


def play_window(twin: Twin, roster: Mapping[int, str], window: int, state_dir: str,
                shares: list[float]) -> None:
    """One window: uploads, the pipeline's verdict, the lead's aggregate, the model's held-out loss."""
    w = twin.world
    w.start_window(window)
    win = Window(world=w)
    honest = sorted(u for u, k in roster.items() if k == "honest")
    honest_bytes = {u: w.sign(u, w.honest(u)) for u in honest}
    twin.history.append((window, read_artifact(honest_bytes[honest[0]], expected_hotkey=w.hotkey(honest[0]),
                                               max_bytes=10**9, shapes=w.gm.shapes(0)).encoded, w.gm.version))
    sybil_store: dict[str, str] = {}
    for u in honest:
        win.add(u, Upload(uid=u, data=honest_bytes[u]))
    peers = list(win.peers)
    for n, (u, kind) in enumerate(sorted((u, k) for u, k in roster.items() if k != "honest")):
        victim = honest[n % len(honest)]
        if kind == "sybil":  # one operator's hotkeys: one store, one update trained on the first hotkey's pages
            first = sybil_store.setdefault("uid", str(u))
            up = Upload(uid=u, data=w.sign(u, w.trained(w.assignment(int(first)).pages)))
            win.add(u, up, location=f"file:///stores/operator-{first}", commit_block=10 + u)
            continue
        up = adversary_upload(kind, u, w, twin, victim, honest_bytes[victim], peers, state_dir)
        win.add(u, up)
    verified = win.verified()
    sparse = {s.uid: support_of(list(s.sparse)) for s in verified if s.uid in honest and s.sparse is not None}
    shares += [overlap_stats(sparse[a], sparse[b]).share for a, b in itertools.permutations(sorted(sparse), 2)]
    v = win.judge(subs=verified, ref_norms=twin.ref_norms, competition=twin.comp, pow_evidence=twin.pow_evidence,
                  pow_credits=twin.pow_credits)
    twin.ref_norms, twin.comp = v.ref_norms, v.standing.competition
    twin.pow_evidence, twin.pow_credits = v.pow_evidence or {}, v.pow_credits or {}
    released = {c.uid for c in v.standing.released}
    aggregated = _aggregate(w, v, window)
    with torch.no_grad():
        twin.losses.append(mean_loss(w.gm.model, _eval_batches(w)))
    for s in v.subs:
        twin.rows.append({"window": window, "uid": s.uid, "kind": roster[s.uid], "outcome": s.outcome.value,
                          "reason": s.reason, "score": s.score, "weight": v.standing.weights.get(s.uid, 0.0),
                          "aggregated": s.uid in aggregated, "norm_score": v.standing.norm_scores.get(s.uid),
                          "pow_t": s.detail.get("pow_t"), "pow_evidence": s.detail.get("pow_evidence"),
                          "released_late": s.uid in released})


def summarise(league: Twin, twin: Twin, roster: Mapping[int, str], shares: Sequence[float],
              windows: int) -> dict[str, Any]:
    """Every figure of the table, computed from the two runs' rows."""
    def weight_of(rows: list[dict], kind_pred) -> list[float]:  # noqa: ANN001 - a predicate on kinds
        return [sum(r["weight"] for r in rows if r["window"] == w and kind_pred(r["kind"])) for w in range(windows)]

    adv_kinds = sorted({k for k in roster.values() if k != "honest"})
    per_kind = {}
    for k in adv_kinds:
        rows = [r for r in league.rows if r["kind"] == k]
        per_kind[k] = {"hotkeys": sum(1 for v in roster.values() if v == k),
                       "emission_share": statistics.fmean(weight_of(league.rows, lambda x, k=k: x == k)),
                       "aggregated": sum(r["aggregated"] for r in rows),
                       "outcomes": sorted({r["outcome"] for r in rows})}
    honest_l = {(r["window"], r["uid"]): r for r in league.rows if r["kind"] == "honest"}
    honest_t = {(r["window"], r["uid"]): r for r in twin.rows if r["kind"] == "honest"}
    sl = [float(r["score"] or 0.0) for r in honest_l.values()]
    st = [float(honest_t[key]["score"] or 0.0) for key in honest_l]
    zeroed_l = [key for key, r in honest_l.items() if r["outcome"] != Outcome.SCORED.value]
    zeroed_t = [key for key, r in honest_t.items() if r["outcome"] != Outcome.SCORED.value]
    mean_t = statistics.fmean(st) if st else 0.0
    n_honest = sum(1 for k in roster.values() if k == "honest")
    honest_weight = statistics.fmean(weight_of(league.rows, lambda x: x == "honest")) / max(1, n_honest)
    return {
        "roster": {str(u): k for u, k in sorted(roster.items())},
        "rows": {"league": league.rows, "twin": twin.rows},
        "size": {"honest": sum(1 for k in roster.values() if k == "honest"), "adversaries": len(roster) - sum(
            1 for k in roster.values() if k == "honest"), "kinds": len(adv_kinds), "windows": windows},
        "adversary_emission_share": statistics.fmean(weight_of(league.rows, lambda x: x != "honest")),
        "adversary_emission_share_by_kind": {k: v["emission_share"] for k, v in per_kind.items()},
        "adversary_emission_share_without_sybil": statistics.fmean(
            weight_of(league.rows, lambda x: x not in ("honest", "sybil"))),
        "honest_weight_per_hotkey": {"league": honest_weight, "twin": statistics.fmean(
            weight_of(twin.rows, lambda x: x == "honest")) / max(1, n_honest)},
        "weight_by_uid": {str(u): statistics.fmean([sum(r["weight"] for r in league.rows
                                                        if r["window"] == w and r["uid"] == u)
                                                    for w in range(windows)]) for u in sorted(roster)},
        "kinds": per_kind,
        "honest_mean_score": {"league": statistics.fmean(sl) if sl else 0.0, "twin": mean_t},
        "honest_mean_score_change": (statistics.fmean(sl) / mean_t - 1.0) if mean_t else None,
        "honest_zeroed": {"league": len(zeroed_l), "twin": len(zeroed_t),
                          "league_only": len(set(zeroed_l) - set(zeroed_t)), "of": len(honest_l),
                          "league_reasons": sorted({honest_l[k]["reason"] for k in zeroed_l})},
        "heldout_loss": {"league": league.losses, "twin": twin.losses,
                         "final_delta": league.losses[-1] - twin.losses[-1]},
        "honest_pair_share": {"max": max(shares) if shares else None, "pairs": len(shares),
                              "threshold": PARTIAL_SHARE},
        "late_credits": {"league": sum(r["released_late"] for r in league.rows),
                         "twin": sum(r["released_late"] for r in twin.rows)},
        "per_uid": _per_uid(league.rows, roster),
    }


def _per_uid(rows: list[dict], roster: Mapping[int, str]) -> dict[str, dict[str, Any]]:
    """Honest and sybil hotkeys: mean raw and cohort-normalised score, pow t, windows paid (the sybil question)."""
    out = {}
    for u, k in sorted(roster.items()):
        if k not in ("honest", "sybil"):
            continue
        mine = [r for r in rows if r["uid"] == u]
        ts = [r["pow_t"] for r in mine if r["pow_t"] is not None]
        out[str(u)] = {"kind": k, "raw_score": statistics.fmean(float(r["score"] or 0.0) for r in mine),
                       "norm_score": statistics.fmean(float(r["norm_score"] or 0.0) for r in mine),
                       "pow_t": statistics.fmean(ts) if ts else None,
                       "paid_windows": sum(r["outcome"] == Outcome.SCORED.value for r in mine),
                       "weight": statistics.fmean(r["weight"] for r in mine), "outcomes": [r["outcome"] for r in mine]}
    return out


def markdown(res: dict[str, Any], seconds: float, command: str) -> str:
    size = res["size"]
    z = res["honest_zeroed"]
    hl = res["heldout_loss"]
    change = res["honest_mean_score_change"]
    hw = [w for u, w in res["weight_by_uid"].items() if res["roster"][u] == "honest"]
    lines = [
        f"# Adversary league (bench/league.py): {size['honest']} honest miners + {size['adversaries']} adversary "
        f"hotkeys ({size['kinds']} kinds), {size['windows']} windows, tiny preset, 1 fragment, torch threads 1; "
        f"{seconds:.0f} s",
        "",
        "| figure | league | all-honest twin | goal |",
        "|---|---|---|---|",
        f"| adversaries' share of emission (mean over windows) | **{res['adversary_emission_share']:.3f}** | - | 0 |",
        f"| the same without `sybil` (its first hotkey does real work on its own pages) | "
        f"**{res['adversary_emission_share_without_sybil']:.3f}** | - | 0 |",
        f"| an honest hotkey's mean weight | {res['honest_weight_per_hotkey']['league']:.3f} | "
        f"{res['honest_weight_per_hotkey']['twin']:.3f} | - |",
        f"| honest hotkeys' mean weight, lowest / highest (league) | "
        f"{min(hw):.3f} / {max(hw):.3f} | - | - |",
        f"| honest miners' mean raw score | {res['honest_mean_score']['league']:.5f} | "
        f"{res['honest_mean_score']['twin']:.5f} | change {'n/a' if change is None else f'{change:+.1%}'} |",
        f"| honest contributions zeroed | {z['league']} of {z['of']} ({z['league_only']} not zeroed in the twin) | "
        f"{z['twin']} of {z['of']} | 0 caused by adversaries |",
        f"| global model held-out loss after the last window | {hl['league'][-1]:.5f} | {hl['twin'][-1]:.5f} | "
        f"delta {hl['final_delta']:+.5f} |",
        f"| partial-copy share over honest pairs (max) | {res['honest_pair_share']['max']:.3f} over "
        f"{res['honest_pair_share']['pairs']} pairs | - | < {res['honest_pair_share']['threshold']} |",
        "",
        "| kind | hotkeys | share of emission | times aggregated | outcomes |",
        "|---|---|---|---|---|",
    ]
    for k, v in res["kinds"].items():
        lines.append(f"| {k} | {v['hotkeys']} | {v['emission_share']:.3f} | {v['aggregated']} | "
                     f"{', '.join(v['outcomes'])} |")
    lines += ["", f"proof of work: sequential rule (NETWORK_SCORE), windows paid late by the deferred credit: league "
              f"{res['late_credits']['league']}, twin {res['late_credits']['twin']}", "",
              "| uid | kind | mean raw score | mean normalised score | mean pow t | windows SCORED | mean weight |",
              "|---|---|---|---|---|---|---|"]
    for u, d in res["per_uid"].items():
        t = "-" if d["pow_t"] is None else f"{d['pow_t']:.1f}"
        lines.append(f"| {u} | {d['kind']} | {d['raw_score']:.5f} | {d['norm_score']:.3f} | {t} | "
                     f"{d['paid_windows']} of {len(d['outcomes'])} | {d['weight']:.3f} |")
    sybils = [w for u, w in res["weight_by_uid"].items() if res["roster"][u] == "sybil"]
    if sybils:
        lines += ["", "`sybil`'s first hotkey trains on its own assignment (real work, earned); the rule is that the "
                  "operator's hotkeys together earn no more than one honest hotkey: per hotkey "
                  + " / ".join(f"{x:.3f}" for x in sybils) + " against the honest range above."]
    if z["league_reasons"]:
        lines += ["", "Honest contributions zeroed in the league: " + "; ".join(z["league_reasons"])]
    lines += ["", f"held-out loss per window, league: {', '.join(f'{x:.4f}' for x in hl['league'])}",
              f"held-out loss per window, twin: {', '.join(f'{x:.4f}' for x in hl['twin'])}", "",
              f"command: {command}", ""]
    return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class LeagueRun:
    """Both twins after the run, and what `summarise` reads."""

    league: Twin
    twin: Twin
    roster: dict[int, str]
    shares: list[float]
    windows: int

    def summary(self) -> dict[str, Any]:
        return summarise(self.league, self.twin, self.roster, self.shares, self.windows)


def run(honest: int = 4, windows: int = 4, kinds: Sequence[str] = KINDS, per_kind: int | None = None
        ) -> dict[str, Any]:
    """Both twins over `windows` windows; returns the summary (the figures are computed from the runs' rows)."""
    return run_twins(honest, windows, kinds, per_kind).summary()


def run_twins(honest: int = 4, windows: int = 4, kinds: Sequence[str] = KINDS, per_kind: int | None = None
              ) -> LeagueRun:
    """Play the league and its all-honest twin side by side, window by window."""
    torch.set_num_threads(1)
    per_kind = per_kind if per_kind is not None else max(1, round(0.25 * honest))
    roster = _roster(honest, kinds, per_kind)
    cache: dict[tuple, dict[str, torch.Tensor]] = {}
    league, twin = Twin("league", LeagueWorld(cache)), Twin("twin", LeagueWorld(cache))
    if league.world.gm.model_hash != twin.world.gm.model_hash:
        raise RuntimeError("the twins' pre-trained models differ: the comparison would not be side by side")
    honest_roster = {u: k for u, k in roster.items() if k == "honest"}
    shares: list[float] = []
    with tempfile.TemporaryDirectory(prefix="league-") as state_dir:
        for wdw in range(windows):
            t0 = time.perf_counter()
            play_window(league, roster, wdw, state_dir, shares)
            play_window(twin, honest_roster, wdw, state_dir, [])
            print(f"window {wdw}: {time.perf_counter() - t0:.0f} s, held-out loss league {league.losses[-1]:.4f} "
                  f"twin {twin.losses[-1]:.4f}", file=sys.stderr, flush=True)
        if (Path(state_dir) / behaviours.PICKLE_MARKER).exists():
            raise RuntimeError("a pickle from a peer was loaded")
    return LeagueRun(league=league, twin=twin, roster=roster, shares=shares, windows=windows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--honest", type=int, default=4, help="honest miners (25%% of this, >= 1, per adversary kind)")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--kinds", default="all", help="comma-separated kinds, or all")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for league.json and league.md")
    args = ap.parse_args(argv)
    kinds = KINDS if args.kinds == "all" else tuple(k.strip() for k in args.kinds.split(","))
    t0 = time.perf_counter()
    res = run(args.honest, args.windows, kinds)
    seconds = time.perf_counter() - t0
    command = " ".join([".venv/bin/python", "bench/league.py", *(argv if argv is not None else sys.argv[1:])])
    res["seconds"], res["command"] = seconds, command
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "league.json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    md = markdown(res, seconds, command)
    (out / "league.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
