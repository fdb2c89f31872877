"""The validator loop: watch uploads, score the previous window, compete, aggregate, set weights.

Timeline (DESIGN.md, Protocol): during window `w` miners upload; the
validator polls their stores and records when each artifact first appeared
(an artifact first seen after the window's last block is late, so absent).
Once window `w+1` starts, the seed of `w+1` (its first block's hash) fixes the
held-out pages, and the validator scores every window-`w` artifact on its copy
of the global model through the pure stages of pipeline.py (verify -> gate ->
evaluate -> settle -> compete); this module only schedules them: chain
snapshot, pinned evidence, budgeted rechecks, persistence, events. The lead
validator (highest stake with a permit) then aggregates the best
contributions per fragment, mirrors the selected artifacts into its own
store, publishes the manifest (and a checkpoint every N versions) and applies
it; other validators apply the lead's manifest.

Uploads are watched on their own thread (watch.py) with per-peer budgets, and
the bytes first seen are pinned (evidence.py): scoring reads only those, so
the deadline binds bytes, not keys, and no slow or hostile store delays the
loop. Every per-peer failure is that peer's `Outcome` (submission.py); anything
left that escapes a window is logged and the loop goes on.

Every decision is persisted atomically before the next window, so a restart
(also after kill -9) resumes with the same ratings and never sets weights
twice inside the chain's rate limit.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import torch
from loguru import logger

import subnet
from subnet.chain import make_subtensor
from subnet.codec.wire import expected_max_bytes
from subnet.consensus import consensus_values
from subnet.errors import ChainError, ConfigError, SubnetError
from subnet.node.chain import ChainView, Peer, lead_validator
from subnet.node.globalmodel import follow_lead, manifest_policy, persist, restore
from subnet.node.peerstores import PeerStores, StoreRefusal
from subnet.node.runtime import Deregistered, NodeRuntime
from subnet.protocol.assignment import assign_all
from subnet.protocol.keys import artifact_key
from subnet.protocol.registration import takes_part
from subnet.protocol.windows import window_end, window_of, window_start
from subnet.storage.base import open_store
from subnet.storage.s3 import S3Options
from subnet.sync.aggregate import Contribution, build_manifest
from subnet.sync.apply import apply_decoded
from subnet.sync.checkpoints import (
    manifest_ready,
    max_checkpoint_bytes,
    publish_checkpoint,
    publish_manifest,
    should_checkpoint,
)
from subnet.sync.retention import RetentionPolicy, lead_sweep
from subnet.telemetry.events import EventLog
from subnet.validator.competition import compute_weights
from subnet.validator.evidence import EvidenceBook
from subnet.validator.intake import IntakeRules, mark_replaced
from subnet.validator.pipeline import (
    CONTROL_UID,
    ChainSnapshot,
    SamplingPlan,
    artifact_verifier,
    judge,
    prepare_eval,
    verify_all,
)
from subnet.validator.scoring import mean_loss
from subnet.validator.state import ValidatorState
from subnet.validator.submission import Outcome, Submission, event_row
from subnet.validator.watch import BlockClock, UploadWatcher, WatchBudget, WatchTarget, WatchThread

__all__ = ["CONTROL_UID", "SCORING_DELAY_ENV", "Validator"]  # CONTROL_UID: benches and tests import it here

RECHECK_BUDGET_S = 2.0  # the scoring thread's whole wait for replaced-upload checks, per window
# Fault injection for tests only (never set it on a real validator): seconds to sleep at the start of
# scoring each window, after the window closed and before its pinned evidence is read, so uploads made
# after the deadline are already in the miners' stores when scoring runs (validator_tests/test_real_weather.py).
SCORING_DELAY_ENV = "TESSERA_TEST_SCORING_DELAY_S"


class Validator:
    def __init__(self, rt: NodeRuntime) -> None:
        self.rt = rt
        self.cfg = rt.cfg
        self.store = open_store(rt.cfg.store.location, S3Options.from_store_config(rt.cfg.store))
        self._retention = RetentionPolicy.from_store_config(rt.cfg.store)
        self._known_ckpt: dict[int, int] = {}  # version -> last_manifest_window of checkpoints we published
        self.peer_stores = PeerStores.from_config(rt.cfg.store, allow_local=rt.allow_local_stores)
        self.state = ValidatorState.load(rt.state_dir, rt.identity)
        restore(rt.gm, rt.state_dir)
        self.events = EventLog(rt.events_path("validator"), component="validator", uid=rt.uid,
                               hotkey=rt.hotkey, **rt.cfg.telemetry.rotation) if rt.events_dir else None
        self._stop = False
        self._peers: list[Peer] = []
        self._peers_window = -1
        self._owner_uid: int | None = None
        self._assign_cache: dict[int, dict] = {}
        self._weights_setter: Any = None  # WeightSetter, built on first use
        vcfg = self.cfg.validator
        self.budget = WatchBudget(workers=vcfg.poll_workers, request_timeout_s=self.cfg.store.peer_request_timeout_s,
                                  window_budget_s=vcfg.peer_window_budget_s, retry_after_s=vcfg.peer_retry_after_s,
                                  per_endpoint=vcfg.per_endpoint_requests)
        self.evidence = EvidenceBook(rt.state_dir / "evidence")
        # The watcher thread has its own chain client: the SDK's connection is not shared across threads.
        self._watch_chain = ChainView(make_subtensor(self.cfg.subtensor.target,
                                                     timeout_s=self.cfg.subtensor.devnet_timeout_s,
                                                     transport=self.cfg.subtensor.devnet_transport),
                                      rt.netuid, rt.window_params)
        self.watcher = UploadWatcher(self.evidence, self.peer_stores, BlockClock(self._watch_chain.block), self.budget)
        self._watch_thread = WatchThread(self._watch_tick, vcfg.watch_interval)
        self._watch_peers: tuple[int, list[Peer]] = (-1, [])
        self._watch_assign: dict[int, dict] = {}  # the watcher thread's own assignment cache
        self._max_bytes = {f: min(rt.cfg.store.max_artifact_bytes, expected_max_bytes(rt.gm.shapes(f), rt.codec))
                           for f in range(len(rt.gm.fragments))}
        self._scoring_delay_s = _fault_delay(os.environ.get(SCORING_DELAY_ENV))
        if self._scoring_delay_s:
            logger.warning("fault injection: {}={} delays scoring of every window by {:g} s (tests only)",
                           SCORING_DELAY_ENV, os.environ[SCORING_DELAY_ENV], self._scoring_delay_s)
        logger.info("validator state: {} rounds played, last scored window {}, model version {}",
                    self.state.competition.round, self.state.last_scored_window, rt.gm.version)

    def stop(self, *_: Any) -> None:
        logger.info("stop requested")
        self._stop = True

    # -- main loop ------------------------------------------------------------------------------
    def run(self, max_windows: int | None = None) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        self.rt.ensure_commitment(self.store.location)
        self._watch_thread.start()
        scored = 0
        try:
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
                    time.sleep(self.cfg.validator.poll_interval)
                except Deregistered:
                    raise  # the neuron exits (status 3) instead of validating under someone else's uid
                except ChainError as exc:
                    logger.error("chain unavailable: {}; retrying in 5s", exc)
                    self._emit("chain_error", kind=type(exc).__name__, error=str(exc)[:300])
                    time.sleep(5)
                except Exception:  # our own bug: never let one window end the validator
                    logger.exception("window loop failed; retrying in 5s")
                    time.sleep(5)
        finally:
            self._watch_thread.stop()
            self.watcher.close()

    # -- watching uploads (the watcher thread) --------------------------------------------------
    def _refresh_peers(self, w: int) -> None:
        if self._peers_window != w:
            mg = self.rt.chain.metagraph()
            self._peers = self.rt.chain.peers(mg)
            self.rt.require_registered(self._peers)  # once per window: pruned or moved -> Deregistered
            owner = mg.by_hotkey(mg.owner_hotkey) if mg.owner_hotkey else None
            self._owner_uid = owner.uid if owner is not None else None
            self._peers_window = w

    def _assignments(self, w: int, peers: list[Peer], chain: ChainView | None = None,
                     cache: dict[int, dict] | None = None) -> dict | None:
        """Window `w`'s assignment of every peer registered before `w` started (None until its seed is final).

        Each entry is a function of (seed, uid) alone (protocol/assignment.py), so
        registrations since the window started never move anyone.
        """
        chain = chain or self.rt.chain
        cache = self._assign_cache if cache is None else cache
        first = window_start(w, self.rt.window_params)
        uids = sorted(p.uid for p in peers if takes_part(p.registered_at, first))
        cached = cache.get(w)
        if cached is not None and set(uids) <= set(cached):
            return {u: cached[u] for u in uids}
        seed = chain.window_seed(w)
        if seed is None:
            return None
        a = assign_all(seed, uids, self.rt.assignment_params)
        for k in [k for k in cache if k < w - 2]:
            del cache[k]
        cache[w] = {**(cached or {}), **a}
        return a

    def _watch_tick(self) -> None:
        """One watcher pass over the current window's expected uploads (never waits on a peer)."""
        chain = self._watch_chain
        w = window_of(chain.block(), self.rt.window_params)
        if self._watch_peers[0] != w:
            self._watch_peers = (w, chain.peers())
            self.watcher.forget(w - 2)
        peers = self._watch_peers[1]
        assignments = self._assignments(w, peers, chain, self._watch_assign)
        if assignments is None:
            return
        targets = [WatchTarget(uid=p.uid, hotkey=p.hotkey, location=p.location, fragment=assignments[p.uid].fragment,
                               key=artifact_key(self.rt.netuid, w, p.hotkey, assignments[p.uid].fragment),
                               max_bytes=self._max_bytes[assignments[p.uid].fragment])
                   for p in peers if p.uid != self.rt.uid and p.uid in assignments]
        self.watcher.poll(w, targets)

    def _recheck(self, p: Peer, key: str, fragment: int, timeout_s: float):  # noqa: ANN202 - intake.Recheck
        def recheck() -> bytes | None:
            reader = self.peer_stores.open(p.location)
            if isinstance(reader, StoreRefusal):
                return None
            obj = reader.fetch(key, self._max_bytes[fragment], timeout_s=timeout_s)
            return None if obj is None else obj.data
        return recheck

    # -- scoring --------------------------------------------------------------------------------
    def _snapshot(self, t: int) -> ChainSnapshot | None:
        """What the pipeline reads from the chain for window `t` (None until the seeds of `t` and `t+1` are final)."""
        rt = self.rt
        peers = self._peers
        seed, seed_next = rt.chain.window_seed(t), rt.chain.window_seed(t + 1)
        assignments = self._assignments(t, peers)  # peers registered after t started sit t out
        if seed is None or seed_next is None or assignments is None:
            return None
        owners = frozenset(u for u in (self.cfg.competition.owner_uid, self._owner_uid) if u is not None)
        return ChainSnapshot(netuid=rt.netuid, window=t, peers=tuple(peers), assignments=assignments, seed=seed,
                             seed_next=seed_next, deadline_block=window_end(t, rt.window_params), self_uid=rt.uid,
                             owner_uids=owners)

    def score_window(self, t: int) -> None:
        """Schedule the pipeline over window `t`: read the chain and the pinned evidence, judge, persist, emit."""
        rt, cfg = self.rt, self.cfg
        t0 = time.perf_counter()
        snap = self._snapshot(t)
        if snap is None:
            return
        if self._scoring_delay_s:  # fault injection (tests): scoring runs late while uploads keep landing
            time.sleep(self._scoring_delay_s)
        rt.pages.prefetch(sorted({pg for a in snap.assignments.values() for pg in a.pages}), "train")
        ctx = prepare_eval(rt.gm, rt.pages, snap, cfg.score, rt.assignment_params)
        competitors = snap.competitors
        verifier = artifact_verifier(snap, rt.gm.shapes, self._max_bytes.__getitem__, rt.codec)
        rules = IntakeRules(deadline_block=snap.deadline_block, model_version=rt.gm.version,
                            max_staleness=cfg.validator.max_staleness)
        subs = verify_all(snap, {p.hotkey: self.evidence.pinned(t, p.hotkey) for p in competitors},
                          {p.hotkey: self.watcher.status(t, p.hotkey) for p in competitors}, rules, verifier)
        subs = self._recheck_rejected(t, subs, {p.uid: p for p in competitors})
        z = cfg.competition.z
        plan = SamplingPlan(cfg=cfg.sampling, validator_hotkey=rt.hotkey, last_evaluated=self.state.last_evaluated,
                            ratings={u: pl.ordinal(z) for u, pl in self.state.competition.players.items()})
        verdict = judge(subs, snap, ctx, ref_norms=self.state.ref_norms, competition=self.state.competition,
                        opts=cfg.validator, comp_cfg=cfg.competition, sampling=plan,
                        pow_evidence=self.state.pow_evidence, pow_credits=self.state.pow_credits, batched=cfg.eval)
        comp, norm, weights = verdict.standing.competition, verdict.standing.norm_scores, verdict.standing.weights
        self.state.competition = comp
        self.state.ref_norms = verdict.ref_norms
        if verdict.last_evaluated is not None:
            self.state.last_evaluated = verdict.last_evaluated
        if verdict.pow_evidence is not None:
            self.state.pow_evidence = verdict.pow_evidence
        if verdict.pow_credits is not None:
            self.state.pow_credits = verdict.pow_credits

        lead = lead_validator(list(snap.peers))
        manifest_info: dict[str, Any] = {}
        if lead is not None and lead.hotkey == rt.hotkey:
            manifest_info = self._aggregate(t, verdict.selected(cfg.sync.top_g), ctx.heldout)
        elif lead is not None:
            self._follow(lead, t)

        self.state.last_scored_window = t
        self.evidence.prune(t + 1)
        self._prune_own_store(t)
        self.state.save(rt.state_dir)
        persist(rt.gm, rt.state_dir)
        ratings = {str(u): {"mu": pl.mu, "sigma": pl.sigma, "ordinal": pl.ordinal(cfg.competition.z)}
                   for u, pl in comp.players.items()}
        self._emit("window_scored", window=t, version=rt.gm.version, heldout_loss=ctx.baseline.heldout_loss,
                   scores={str(s.uid): event_row(s, norm.get(s.uid)) for s in verdict.subs},
                   ratings=ratings, leader=comp.leader, round=comp.round,
                   weights={str(u): w for u, w in weights.items()}, seconds=time.perf_counter() - t0,
                   pow_released=[{"uid": c.uid, "round": c.round, "score": c.score}
                                 for c in verdict.standing.released])
        if manifest_info:
            self._emit("manifest_published", window=t, **manifest_info)
        logger.info("window {} scored in {:.1f}s: {} submissions, leader uid {}, held-out loss {:.4f}", t,
                    time.perf_counter() - t0, sum(s.score is not None for s in verdict.subs), comp.leader,
                    ctx.baseline.heldout_loss)

    def _recheck_rejected(self, t: int, subs: list[Submission], by_uid: dict[int, Peer]) -> list[Submission]:
        """Pinned bytes that failed verification: replaced since (late) or junk (rejected)? Concurrently, bounded.

        One short request per such peer, all at once, and the scoring thread waits
        at most `RECHECK_BUDGET_S` for them all: a store that does not answer in
        time leaves the refusal standing (the first bytes are what counts).
        """
        todo = [s for s in subs if s.outcome is Outcome.REJECTED and s.evidence is not None]
        if not todo:
            return subs
        timeout = min(RECHECK_BUDGET_S, self.budget.request_timeout_s)
        pool = ThreadPoolExecutor(max_workers=min(len(todo), self.budget.workers), thread_name_prefix="recheck")
        futures = {}
        for s in todo:
            pinned = self.evidence.pinned(t, s.hotkey)
            if pinned is None:
                continue
            key = artifact_key(self.rt.netuid, t, s.hotkey, s.fragment)
            futures[pool.submit(self._recheck(by_uid[s.uid], key, s.fragment, timeout))] = (s, pinned)
        done, _ = wait(futures, timeout=timeout + 1.0)
        pool.shutdown(wait=False, cancel_futures=True)
        replaced: dict[int, int] = {}
        for fut in done:
            s, (sighting, data) = futures[fut]
            try:
                now = fut.result()
            except Exception as exc:  # unreachable now: the first bytes stand
                logger.debug("uid {}: recheck failed: {}", s.uid, exc)
                continue
            if now is not None and now != data:
                replaced[s.uid] = sighting.block
        return [mark_replaced(s, replaced[s.uid]) if s.uid in replaced else s for s in subs]

    # -- aggregation (lead) ---------------------------------------------------------------------
    def _aggregate(self, t: int, chosen: list[Submission], heldout_b: list[torch.Tensor]) -> dict[str, Any]:
        """Lead: mirror the selected artifacts, build and apply the manifest, publish it (and a checkpoint)."""
        rt, cfg = self.rt, self.cfg
        contribs = []
        for s in chosen:  # mirror: followers fetch selected artifacts from the lead's store only
            assert s.data is not None and s.artifact is not None  # aggregable submissions keep their update
            key = artifact_key(rt.netuid, t, s.hotkey, s.fragment)
            self.store.put(key, s.data)
            contribs.append(Contribution(fragment=s.fragment, uid=s.uid, hotkey=s.hotkey, key=key,
                                         sha256=s.artifact.sha256, score=float(s.score or 0.0),
                                         delta=s.dense()))  # the one densification, for aggregation only
        manifest = build_manifest(netuid=rt.netuid, window=t, base_version=rt.gm.version, contributions=contribs,
                                  outer_lr=cfg.sync.outer_lr, top_g=cfg.sync.top_g, rule=cfg.sync.rule)
        by_uid = {c.uid: c for c in contribs}
        deltas = [by_uid[e.uid].delta for e in manifest.entries]
        apply_decoded(rt.gm, manifest, deltas, verify_hash=False)
        manifest = dataclasses.replace(manifest, model_hash=rt.gm.model_hash, consensus=consensus_values(cfg),
                                       spec_version=subnet.SPEC_VERSION)  # followers check both (sync/bounds.py)
        publish_manifest(self.store, manifest, rt.wallet.hotkey)
        if should_checkpoint(rt.gm.version, cfg.sync.checkpoint_every):
            publish_checkpoint(self.store, rt.netuid, rt.gm, rt.wallet.hotkey)
            self._known_ckpt[rt.gm.version] = rt.gm.last_manifest_window
        return {"new_version": manifest.new_version, "model_hash": manifest.model_hash,
                "heldout_loss_after": mean_loss(rt.gm.model, heldout_b) if manifest.entries else None,
                "selected": [{"uid": e.uid, "fragment": e.fragment, "coef": e.weight} for e in manifest.entries]}

    def _prune_own_store(self, t: int) -> None:
        """Retention (sync/retention.py): drop our store's keys past the horizon, never what a late joiner needs.

        Everything at or after the oldest kept checkpoint's last manifest window
        is protected, so a node joining after the horizon loads that checkpoint
        and replays from there. A store error is logged; the sweep runs again
        next window.
        """
        rt = self.rt
        if self._retention.windows == 0 and self._retention.checkpoints == 0:
            return
        try:
            lead_sweep(self.store, netuid=rt.netuid, now_window=t, policy=self._retention, known=self._known_ckpt,
                       max_bytes=max_checkpoint_bytes(rt.gm))
        except SubnetError as exc:
            logger.warning("retention: window {}: {}", t, exc)

    def _follow(self, lead: Peer, t: int) -> None:
        """A non-lead validator applies the lead's manifest for `t` (waiting for it until `t+1` ends)."""
        lead_store = self.peer_stores.get(lead.location)
        if lead_store is None:
            return
        end = window_end(t + 1, self.rt.window_params)
        while not self._stop and self.rt.chain.block() < end:
            if manifest_ready(lead_store, self.rt.netuid, t, expected_signer=lead.hotkey):
                break
            time.sleep(self.cfg.validator.poll_interval)
        follow_lead(self.rt.gm, lead_store, self.rt.netuid, t, self.cfg.store.max_artifact_bytes,
                    lead_hotkey=lead.hotkey, codec=self.rt.codec, policy=manifest_policy(self.cfg, self.rt))

    # -- weights --------------------------------------------------------------------------------
    def _maybe_set_weights(self) -> None:
        """Once per weights cadence: plan, send (plaintext or timelocked commit) and verify via WeightSetter.

        A pending commit is verified every window, so a failed reveal is
        reported promptly; the next cadence commits afresh.
        """
        from subnet.validator.weights_loop import WeightOutcome, WeightSetter  # local: loop.py is co-edited

        rt, cfg = self.rt, self.cfg
        if self._weights_setter is None:
            self._weights_setter = WeightSetter(rt.chain, rt.wallet, rt.hotkey, self.state,
                                                lambda: self.state.save(rt.state_dir), subnet.SPEC_VERSION)
        setter = self._weights_setter
        self.state.weights_windows += 1
        if self.state.weights_windows < cfg.validator.weights_interval:
            self.state.save(rt.state_dir)
            if setter.pending is not None:
                report = setter.verify(rt.chain.weight_rules(rt.hotkey))
                reports = [report] if report is not None else []
            else:
                return
        else:
            weights = compute_weights(self.state.competition, [p.uid for p in self._peers if p.uid != rt.uid],
                                      cfg.competition, hotkeys={p.uid: p.hotkey for p in self._peers})
            reports = setter.step(weights)
        for r in reports:
            fields = dict(block=r.block, weights={str(u): w for u, w in r.weights.items()}, success=r.success,
                          error=r.error, outcome=r.outcome.value, detail=r.detail,
                          pending=r.pending.to_dict() if r.pending else None)
            if r.outcome in (WeightOutcome.REVEALED, WeightOutcome.REVEAL_FAILED):
                self._emit("weights_revealed", **fields)
            elif r.outcome in (WeightOutcome.RATE_LIMITED, WeightOutcome.PENDING, WeightOutcome.NOTHING):
                logger.info("weights: {} ({})", r.outcome.value, r.detail)
            else:
                if r.outcome in (WeightOutcome.SET, WeightOutcome.COMMITTED_PENDING):
                    self.state.weights_windows = 0
                    self.state.save(rt.state_dir)
                logger.info("set_weights {}: {} {}", r.outcome.value, r.detail,
                            {u: round(w, 3) for u, w in r.weights.items() if w >= 1e-3})
                self._emit("weights_set", **fields)

    def _emit(self, event: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(event, **fields)


def _fault_delay(raw: str | None) -> float:
    """The `SCORING_DELAY_ENV` fault-injection delay in seconds (0 when unset)."""
    if raw is None or raw.strip() == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{SCORING_DELAY_ENV}={raw!r} is not a number of seconds >= 0",
                          remediation=f"unset {SCORING_DELAY_ENV}: it is a fault-injection knob for tests")
    return value
