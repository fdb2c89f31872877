"""The validator loop: watch uploads, score the previous window, compete, aggregate, set weights.

Timeline (DESIGN.md, Protocol): during window `w` miners upload; the
validator polls their stores and records when each artifact first appeared
(an artifact first seen after the window's last block is late, so absent).
Once window `w+1` starts, the seed of `w+1` (its first block's hash) fixes the
held-out pages, and the validator scores every window-`w` artifact on its copy
of the global model. The lead validator (highest stake with a permit) then
aggregates the best contributions per fragment, mirrors the selected artifacts
into its own store, publishes the manifest (and a checkpoint every N versions)
and applies it; other validators apply the lead's manifest.

Every decision is persisted atomically before the next window, so a restart
(also after kill -9) resumes with the same ratings and never sets weights
twice inside the chain's rate limit.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import signal
import time
from dataclasses import dataclass
from typing import Any

import torch
from loguru import logger

import subnet
from subnet.codec.errors import ArtifactError
from subnet.codec.sparseloco import EncodedUpdate, decode, decode_sparse
from subnet.codec.wire import Artifact, read_artifact
from subnet.errors import ChainError, SubnetError
from subnet.model.fragments import trainable_parameters
from subnet.node.chain import Peer, lead_validator
from subnet.node.globalmodel import follow_lead, persist, restore
from subnet.node.peerstores import PeerStores
from subnet.node.runtime import NodeRuntime
from subnet.protocol.assignment import assign_all, heldout_pages, random_pages
from subnet.protocol.keys import artifact_key
from subnet.protocol.windows import window_end, window_of
from subnet.storage.base import open_store
from subnet.sync.aggregate import Contribution, build_manifest, select_top
from subnet.sync.apply import apply_decoded
from subnet.sync.checkpoints import publish_checkpoint, publish_manifest, read_manifest, should_checkpoint
from subnet.telemetry.events import EventLog
from subnet.validator.cohorts import normalise_cohorts
from subnet.validator.competition import compute_weights, play_round
from subnet.validator.copydetect import Submission, find_copies
from subnet.validator.scoring import compute_baseline, mean_loss, page_batches, score_contribution
from subnet.validator.state import ValidatorState

CONTROL_UID = 1 << 16  # not a real uid: the window's shared control pages


@dataclass
class Scored:
    uid: int
    hotkey: str
    fragment: int
    score: float | None
    reason: str
    detail: dict
    artifact: Artifact | None = None  # verified; decoded only to score it and, if selected, to aggregate
    data: bytes | None = None
    first_seen: float = 0.0

    @property
    def eligible(self) -> bool:
        """Verified, positively scored, not charged: may enter aggregation."""
        return self.artifact is not None and self.score is not None and self.score > 0


class Validator:
    def __init__(self, rt: NodeRuntime) -> None:
        self.rt = rt
        self.cfg = rt.cfg
        self.store = open_store(rt.cfg.store.location)
        self.peer_stores = PeerStores(allow_local=rt.allow_local_stores)
        self.state = ValidatorState.load(rt.state_dir, rt.identity)
        restore(rt.gm, rt.state_dir)
        self.events = EventLog(rt.events_path("validator"), component="validator", uid=rt.uid,
                               hotkey=rt.hotkey) if rt.events_dir else None
        self._stop = False
        self._peers: list[Peer] = []
        self._peers_window = -1
        self._owner_uid: int | None = None
        self._last_poll: dict[int, float] = {}
        self._assign_cache: dict[int, dict] = {}
        self._weights_rate_limit: int | None = None
        logger.info("validator state: {} rounds played, last scored window {}, model version {}",
                    self.state.competition.round, self.state.last_scored_window, rt.gm.version)

    def stop(self, *_: Any) -> None:
        logger.info("stop requested")
        self._stop = True

    # -- main loop ------------------------------------------------------------------------------
    def run(self, max_windows: int | None = None) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        self.rt.ensure_commitment(self.store.location)
        scored = 0
        while not self._stop and (max_windows is None or scored < max_windows):
            try:
                now = self.rt.chain.block()
                w = window_of(now, self.rt.window_params)
                self._refresh_peers(w)
                target = w - 1
                if target > self.state.last_scored_window and target >= 0:
                    self.score_window(target)
                    scored += 1
                    self._maybe_set_weights()
                self._poll_uploads(w, now)
                time.sleep(self.cfg.validator.poll_interval)
            except ChainError as exc:
                logger.error("chain unavailable: {}; retrying in 5s", exc)
                time.sleep(5)

    # -- watching uploads -----------------------------------------------------------------------
    def _refresh_peers(self, w: int) -> None:
        if self._peers_window != w:
            mg = self.rt.chain.metagraph()
            self._peers = self.rt.chain.peers(mg)
            owner = mg.by_hotkey(mg.owner_hotkey) if mg.owner_hotkey else None
            self._owner_uid = owner.uid if owner is not None else None
            self._peers_window = w

    def _assignments(self, w: int, n: int) -> dict | None:
        cached = self._assign_cache.get(w)
        if cached is not None and cached["n"] == n:
            return cached["a"]
        seed = self.rt.chain.window_seed(w)
        if seed is None:
            return None
        a = assign_all(seed, range(n), self.rt.assignment_params)
        self._assign_cache = {k: v for k, v in self._assign_cache.items() if k >= w - 2}
        self._assign_cache[w] = {"n": n, "a": a}
        return a

    def _poll_uploads(self, w: int, block: int) -> None:
        """Record when each miner's window-`w` artifact first appears (the deadline evidence)."""
        assignments = self._assignments(w, len(self._peers))
        if assignments is None:
            return
        seen = self.state.seen.setdefault(w, {})
        changed = False
        now = time.time()
        since = self._last_poll.get(w, now - self.cfg.validator.poll_interval)
        for p in self._peers:
            if p.uid == self.rt.uid or p.hotkey in seen or p.uid not in assignments:
                continue
            store = self.peer_stores.get(p.location)
            if store is None:
                continue
            key = artifact_key(self.rt.netuid, w, p.hotkey, assignments[p.uid].fragment)
            try:
                stamp = store.modified(key)
            except SubnetError as exc:
                logger.debug("uid {} store unreachable: {}", p.uid, exc)
                continue
            if stamp is not None:
                # Ordered by poll pass; within one pass by the store's write time, clamped into the pass so
                # no store clock can move an upload before the previous poll (copy detection's "earlier").
                seen[p.hotkey] = [min(max(stamp, since), now), float(block)]
                changed = True
                logger.debug("window {}: artifact of uid {} seen at block {}", w, p.uid, block)
        self._last_poll = {w: now}
        if changed:
            self.state.save(self.rt.state_dir)

    # -- scoring --------------------------------------------------------------------------------
    def score_window(self, t: int) -> None:
        rt, cfg = self.rt, self.cfg
        t0 = time.perf_counter()
        seed_next = rt.chain.window_seed(t + 1)
        peers = self._peers
        assignments = self._assignments(t, len(peers))
        if seed_next is None or assignments is None:
            return
        scfg = cfg.score
        heldout_b = page_batches(rt.pages, heldout_pages(seed_next, rt.assignment_params), "heldout",
                                 scfg.batch_size, scfg.n_heldout_batches)
        all_assigned = {pg for a in assignments.values() for pg in a.pages}
        control = random_pages(rt.chain.window_seed(t), CONTROL_UID, rt.assignment_params,
                               scfg.pow_batch_size * scfg.n_random_batches, exclude=all_assigned)
        random_b = page_batches(rt.pages, control, "train", scfg.pow_batch_size, scfg.n_random_batches)
        baseline = compute_baseline(rt.gm.model, heldout_b, random_b)
        deadline = window_end(t, rt.window_params)  # first block after the window
        seen = self.state.seen.get(t, {})
        owners = {cfg.competition.owner_uid, self._owner_uid}  # the subnet owner does not compete
        competitors = [p for p in peers if p.uid != rt.uid and p.uid not in owners and p.uid in assignments]

        results = [self._fetch_one(t, p, assignments[p.uid], seen.get(p.hotkey), deadline) for p in competitors]
        # copy detection over every verified upload, within each fragment: the later upload is charged
        subs = [Submission(uid=r.uid, hotkey=r.hotkey, fragment=r.fragment, first_seen=r.first_seen,
                           commit_block=_commit_block(peers, r.uid), update=r.artifact.encoded)
                for r in results if r.artifact is not None]
        copies = find_copies(subs, cfg.validator.copy_threshold) if subs else {}
        for r in results:
            if r.uid in copies:
                r.score, r.reason, r.artifact = 0.0, f"copy of uid {copies[r.uid]}", None
        # after copy detection, so a sybil's upload still counts as the original a copier took
        shared = _shared_stores(competitors)
        for r in results:
            if r.uid in shared and r.uid not in copies:
                r.score, r.reason, r.artifact = 0.0, f"shares a store with uid {shared[r.uid]}", None
        self._gate_norm_outliers(results)
        for r in results:
            if r.artifact is not None and r.score is None:
                self._evaluate(r, assignments[r.uid], heldout_b, random_b, baseline)
        floor = cfg.validator.min_score
        for r in results:
            if r.score is not None and 0 < r.score < floor:
                r.score, r.reason = 0.0, f"below the noise floor ({r.score:.2e} < {floor:g})"
        raw = {r.uid: r.score for r in results}
        norm = normalise_cohorts(raw, {r.uid: r.fragment for r in results}, cfg.validator.cohort_method)
        comp = play_round(self.state.competition, norm, [p.uid for p in competitors], cfg.competition,
                          slashed=set(copies) | set(shared), hotkeys={p.uid: p.hotkey for p in competitors})
        self.state.competition = comp
        weights = compute_weights(comp, [p.uid for p in peers if p.uid != rt.uid], cfg.competition)

        lead = lead_validator(peers)
        manifest_info: dict[str, Any] = {}
        if lead is not None and lead.hotkey == rt.hotkey:
            manifest_info = self._aggregate(t, [r for r in results if r.eligible], heldout_b)
        elif lead is not None:
            self._follow(lead, t)

        self.state.last_scored_window = t
        self.state.prune_seen(t + 1)
        self.state.save(rt.state_dir)
        persist(rt.gm, rt.state_dir)
        ratings = {str(u): {"mu": pl.mu, "sigma": pl.sigma, "ordinal": pl.ordinal(cfg.competition.z)}
                   for u, pl in comp.players.items()}
        self._emit("window_scored", window=t, version=rt.gm.version, heldout_loss=baseline.heldout_loss,
                   scores={str(r.uid): {"score": r.score, "norm_score": norm.get(r.uid), "reason": r.reason,
                                        "fragment": r.fragment, **r.detail} for r in results},
                   ratings=ratings, leader=comp.leader, round=comp.round, weights={str(u): w for u, w in weights.items()},
                   seconds=time.perf_counter() - t0)
        if manifest_info:
            self._emit("manifest_published", window=t, **manifest_info)
        logger.info("window {} scored in {:.1f}s: {} submissions, leader uid {}, held-out loss {:.4f}", t,
                    time.perf_counter() - t0, sum(r.score is not None for r in results), comp.leader,
                    baseline.heldout_loss)

    def _fetch_one(self, t: int, p: Peer, assignment, seen: list[float] | None, deadline: int) -> Scored:
        """Fetch and verify one submission; a refusal is a scored outcome (score 0 or absent), never a crash."""
        rt, cfg = self.rt, self.cfg
        frag = assignment.fragment
        base = Scored(uid=p.uid, hotkey=p.hotkey, fragment=frag, score=None, reason="", detail={})
        store = self.peer_stores.get(p.location)
        if store is None:
            base.reason = "no usable store committed"
            return base
        if seen is None:
            base.reason = "absent"
            return base
        if seen[1] >= deadline:
            base.reason = f"late (first seen at block {int(seen[1])}, deadline {deadline})"
            return base
        key = artifact_key(rt.netuid, t, p.hotkey, frag)
        try:
            data = store.get(key, cfg.store.max_artifact_bytes)
        except SubnetError as exc:
            data = None
            logger.warning("uid {}: store error {}", p.uid, exc)
        if data is None:
            base.reason = "absent at scoring time"
            return base
        try:
            art = read_artifact(data, expected_hotkey=p.hotkey, max_bytes=cfg.store.max_artifact_bytes,
                                shapes=rt.gm.shapes(frag), netuid=rt.netuid, window=t, fragment=frag, uid=p.uid,
                                codec=rt.codec)
        except ArtifactError as exc:
            base.score, base.reason = 0.0, f"rejected: {type(exc).__name__}: {exc}"
            return base
        staleness = rt.gm.version - art.header.base_version
        if staleness < 0 or staleness > cfg.validator.max_staleness:
            base.score, base.reason = 0.0, f"stale base version {art.header.base_version} (model at {rt.gm.version})"
            return base
        base.artifact, base.data, base.first_seen = art, data, seen[0]
        base.detail = {"bytes": len(data), "staleness": staleness, "norm": _norm(art.encoded)}
        return base

    def _gate_norm_outliers(self, results: list[Scored]) -> None:
        """Zero updates whose norm is far above their fragment cohort's (lower) median.

        Aggregation clips every update to the median norm, so a scaled-up copy of
        an honest update would otherwise be scored at full size and out-earn the
        honest miners for damage it could not do. Honest updates of one window
        have similar norms (same H, lr and data volume).
        """
        limit = self.cfg.validator.norm_outlier
        by_frag: dict[int, list[Scored]] = {}
        for r in results:
            if r.artifact is not None:
                by_frag.setdefault(r.fragment, []).append(r)
        for cohort in by_frag.values():
            if len(cohort) < 2:
                continue
            median = statistics.median_low([r.detail["norm"] for r in cohort])
            for r in cohort:
                if median > 0 and r.detail["norm"] > limit * median:
                    r.score = 0.0
                    r.reason = f"norm outlier ({r.detail['norm'] / median:.1f}x the cohort median)"
                    r.artifact = None

    def _evaluate(self, r: Scored, assignment, heldout_b, random_b, baseline) -> None:
        """Loss before/after on assigned, held-out and control pages (decoded transiently)."""
        rt, cfg = self.rt, self.cfg
        delta = decode(r.artifact.encoded, rt.gm.shapes(r.fragment))
        params = trainable_parameters(rt.gm.model, rt.gm.fragment(r.fragment))
        assigned_b = page_batches(rt.pages, assignment.pages, "train", cfg.score.pow_batch_size,
                                  cfg.score.n_assigned_batches)
        cs = score_contribution(rt.gm.model, params, delta, cfg.score, assigned_b, heldout_b, random_b, baseline)
        r.score, r.reason = cs.score, cs.reason
        r.detail.update(heldout_improvement=cs.heldout_improvement, assigned_improvement=cs.assigned_improvement,
                        random_improvement=cs.random_improvement, proof_of_work=cs.proof_of_work)

    # -- aggregation (lead) ---------------------------------------------------------------------
    def _aggregate(self, t: int, positive: list[Scored], heldout_b: list[torch.Tensor]) -> dict[str, Any]:
        rt, cfg = self.rt, self.cfg
        chosen: list[Scored] = []
        for frag in sorted({r.fragment for r in positive}):
            cohort = [r for r in positive if r.fragment == frag]
            chosen += select_top(cohort, cfg.sync.top_g, score=lambda r: float(r.score))
        contribs = []
        for r in chosen:  # mirror: followers fetch selected artifacts from the lead's store only
            key = artifact_key(rt.netuid, t, r.hotkey, r.fragment)
            self.store.put(key, r.data)
            contribs.append(Contribution(fragment=r.fragment, uid=r.uid, hotkey=r.hotkey, key=key,
                                         sha256=r.artifact.sha256, score=float(r.score),
                                         delta=decode(r.artifact.encoded, rt.gm.shapes(r.fragment))))
        manifest = build_manifest(netuid=rt.netuid, window=t, base_version=rt.gm.version, contributions=contribs,
                                  outer_lr=cfg.sync.outer_lr, top_g=cfg.sync.top_g)
        by_uid = {c.uid: c for c in contribs}
        deltas = [by_uid[e.uid].delta for e in manifest.entries]
        apply_decoded(rt.gm, manifest, deltas, verify_hash=False)
        manifest = dataclasses.replace(manifest, model_hash=rt.gm.model_hash)
        publish_manifest(self.store, manifest)
        if should_checkpoint(rt.gm.version, cfg.sync.checkpoint_every):
            publish_checkpoint(self.store, rt.netuid, rt.gm)
        return {"new_version": manifest.new_version, "model_hash": manifest.model_hash,
                "heldout_loss_after": mean_loss(rt.gm.model, heldout_b) if manifest.entries else None,
                "selected": [{"uid": e.uid, "fragment": e.fragment, "coef": e.weight} for e in manifest.entries]}

    def _follow(self, lead: Peer, t: int) -> None:
        """A non-lead validator applies the lead's manifest for `t` (waiting for it until `t+1` ends)."""
        lead_store = self.peer_stores.get(lead.location)
        if lead_store is None:
            return
        end = window_end(t + 1, self.rt.window_params)
        while not self._stop and self.rt.chain.block() < end:
            if read_manifest(lead_store, self.rt.netuid, t) is not None:
                break
            time.sleep(self.cfg.validator.poll_interval)
        follow_lead(self.rt.gm, lead_store, self.rt.netuid, t, self.cfg.store.max_artifact_bytes)

    # -- weights --------------------------------------------------------------------------------
    def _maybe_set_weights(self) -> None:
        rt, cfg = self.rt, self.cfg
        self.state.weights_windows += 1
        if self.state.weights_windows < cfg.validator.weights_interval:
            self.state.save(rt.state_dir)
            return
        block = rt.chain.block()
        if self._weights_rate_limit is None:
            self._weights_rate_limit = rt.chain.weights_rate_limit()
        me = next((p for p in self._peers if p.uid == rt.uid), None)
        last = max(self.state.last_weights_block, me.last_update if me else -1)
        if last >= 0 and block - last < self._weights_rate_limit:
            logger.info("weights: {} blocks since the last set, rate limit {}; waiting", block - last,
                        self._weights_rate_limit)
            return
        weights = compute_weights(self.state.competition, [p.uid for p in self._peers if p.uid != rt.uid],
                                  cfg.competition)
        weights = {u: w for u, w in weights.items() if w > 0}
        if not weights:
            logger.info("weights: nobody eligible yet; not setting")
            return
        try:
            result = rt.chain.set_weights(rt.wallet, weights, subnet.SPEC_VERSION)
        except Exception as exc:  # the SDK's preflight raises on rate limit / permits
            logger.warning("set_weights failed: {}", exc)
            self._emit("weights_set", block=block, weights={str(u): w for u, w in weights.items()}, success=False,
                       error=str(exc))
            return
        ok = bool(getattr(result, "success", False))
        err = None if ok else str(getattr(result, "error", None) or getattr(result, "message", ""))
        if ok:
            self.state.last_weights_block = block
            self.state.weights_windows = 0
            self.state.save(rt.state_dir)
        logger.info("set_weights {}: {}", "ok" if ok else f"refused ({err})",
                    {u: round(w, 3) for u, w in weights.items()})
        self._emit("weights_set", block=block, weights={str(u): w for u, w in weights.items()}, success=ok,
                   error=err)

    def _emit(self, event: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(event, **fields)


def _commit_block(peers: list[Peer], uid: int) -> int:
    for p in peers:
        if p.uid == uid:
            return p.commit_block or 0
    return 0


def _norm(encoded: EncodedUpdate) -> float:
    """L2 norm of an update from its sparse entries (no dense decode)."""
    return math.sqrt(sum(float((t.values.double() ** 2).sum()) for t in decode_sparse(encoded)))


def _shared_stores(peers: list[Peer]) -> dict[int, int]:
    """Hotkeys committing the same store are one operator (sybils): only the first committed competes.

    Returns charged uid -> the uid that keeps the store (earliest commitment, then lowest uid).
    """
    by_loc: dict[str, list[Peer]] = {}
    for p in peers:
        if p.location:
            by_loc.setdefault(p.location, []).append(p)
    charged: dict[int, int] = {}
    for group in by_loc.values():
        if len(group) > 1:
            keep, *rest = sorted(group, key=lambda p: (p.commit_block or 0, p.uid))
            charged.update({p.uid: keep.uid for p in rest})
    return charged
