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

Uploads are watched on their own thread (watch.py) with per-peer budgets, and
the bytes first seen are pinned (evidence.py): scoring reads only those, so
the deadline binds bytes, not keys, and no slow or hostile store delays the
loop. Every per-peer failure is that peer's outcome (intake.py); anything
left that escapes a window is logged and the loop goes on.

Every decision is persisted atomically before the next window, so a restart
(also after kill -9) resumes with the same ratings and never sets weights
twice inside the chain's rate limit.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import signal
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import torch
from loguru import logger

import subnet
from subnet.codec.sparseloco import EncodedUpdate, decode, decode_sparse
from subnet.chain import make_subtensor
from subnet.codec.wire import expected_max_bytes, read_artifact
from subnet.errors import ChainError, ConfigError
from subnet.model.fragments import trainable_parameters
from subnet.node.chain import ChainView, Peer, lead_validator
from subnet.node.globalmodel import follow_lead, manifest_policy, persist, restore
from subnet.node.peerstores import PeerStores, StoreRefusal
from subnet.node.runtime import Deregistered, NodeRuntime
from subnet.protocol.assignment import assign_all, heldout_pages, random_pages
from subnet.protocol.keys import artifact_key
from subnet.protocol.registration import takes_part
from subnet.protocol.windows import window_end, window_of, window_start
from subnet.storage.base import open_store
from subnet.storage.location import LocationPolicy, S3Location, parse_location
from subnet.sync.aggregate import Contribution, build_manifest, select_top
from subnet.sync.apply import apply_decoded
from subnet.sync.checkpoints import manifest_ready, publish_checkpoint, publish_manifest, should_checkpoint
from subnet.telemetry.events import EventLog
from subnet.validator.cohorts import normalise_cohorts
from subnet.validator.competition import compute_weights, play_round
from subnet.validator.copydetect import CopyVerdict, Submission, judge_copies
from subnet.validator.evidence import EvidenceBook
from subnet.validator.intake import IntakeRules, Scored, mark_replaced, take_in
from subnet.validator.scoring import compute_baseline, mean_loss, page_batches, score_contribution
from subnet.validator.state import ValidatorState
from subnet.validator.watch import BlockClock, UploadWatcher, WatchBudget, WatchTarget, WatchThread

CONTROL_UID = 1 << 16  # not a real uid: the window's shared control pages
REF_NORM_DECAY = 0.7  # weight of the old reference norm per window (honest norms drift as training goes on)
RECHECK_BUDGET_S = 2.0  # the scoring thread's whole wait for replaced-upload checks, per window
# Fault injection for tests only (never set it on a real validator): seconds to sleep at the start of
# scoring each window, after the window closed and before its pinned evidence is read, so uploads made
# after the deadline are already in the miners' stores when scoring runs (validator_tests/test_real_weather.py).
SCORING_DELAY_ENV = "TESSERA_TEST_SCORING_DELAY_S"


class Validator:
    def __init__(self, rt: NodeRuntime) -> None:
        self.rt = rt
        self.cfg = rt.cfg
        self.store = open_store(rt.cfg.store.location)
        self.peer_stores = PeerStores.from_config(rt.cfg.store, allow_local=rt.allow_local_stores)
        self.state = ValidatorState.load(rt.state_dir, rt.identity)
        restore(rt.gm, rt.state_dir)
        self.events = EventLog(rt.events_path("validator"), component="validator", uid=rt.uid,
                               hotkey=rt.hotkey) if rt.events_dir else None
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
        self._watch_chain = ChainView(make_subtensor(self.cfg.subtensor.network), rt.netuid, rt.window_params)
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
    def score_window(self, t: int) -> None:
        rt, cfg = self.rt, self.cfg
        t0 = time.perf_counter()
        seed_next = rt.chain.window_seed(t + 1)
        peers = self._peers
        assignments = self._assignments(t, peers)  # peers registered after t started sit t out
        if seed_next is None or assignments is None:
            return
        if self._scoring_delay_s:  # fault injection (tests): scoring runs late while uploads keep landing
            time.sleep(self._scoring_delay_s)
        scfg = cfg.score
        rt.pages.prefetch(sorted({pg for a in assignments.values() for pg in a.pages}), "train")  # overlaps scoring
        heldout_b = page_batches(rt.pages, heldout_pages(seed_next, rt.assignment_params), "heldout",
                                 scfg.batch_size, scfg.n_heldout_batches)
        all_assigned = {pg for a in assignments.values() for pg in a.pages}
        control = random_pages(rt.chain.window_seed(t), CONTROL_UID, rt.assignment_params,
                               scfg.pow_batch_size * scfg.n_random_batches, exclude=all_assigned)
        random_b = page_batches(rt.pages, control, "train", scfg.pow_batch_size, scfg.n_random_batches)
        baseline = compute_baseline(rt.gm.model, heldout_b, random_b)
        deadline = window_end(t, rt.window_params)  # first block after the window
        owners = {cfg.competition.owner_uid, self._owner_uid}  # the subnet owner does not compete
        competitors = [p for p in peers if p.uid != rt.uid and p.uid not in owners and p.uid in assignments]

        results = [self._take_in(t, p, assignments[p.uid].fragment, deadline) for p in competitors]
        self._recheck_rejected(t, results, {p.uid: p for p in competitors})
        # copy detection over every verified upload, within each fragment: the later upload is charged;
        # near-duplicates whose order the evidence cannot tell are both evaluated, then _resolve_ties
        subs = [Submission(uid=r.uid, hotkey=r.hotkey, fragment=r.fragment, first_seen=r.first_seen,
                           seen_after=r.seen_after if r.seen_after is not None else float("-inf"),
                           commit_block=_commit_block(peers, r.uid), update=r.artifact.encoded)
                for r in results if r.artifact is not None]
        verdict = judge_copies(subs, cfg.validator.copy_threshold) if subs else CopyVerdict(charged={}, tied={})
        copies = verdict.charged
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
                try:
                    self._evaluate(r, assignments[r.uid], heldout_b, random_b, baseline)
                except Exception as exc:  # a peer's update must not end the window for everyone else
                    logger.exception("uid {}: evaluation failed", r.uid)
                    r.score, r.reason, r.artifact = None, f"not scored: evaluation error {type(exc).__name__}", None
        _resolve_ties(results, verdict.tied)
        floor = cfg.validator.min_score
        for r in results:
            if r.score is not None and 0 < r.score < floor:
                r.score, r.reason = 0.0, f"below the noise floor ({r.score:.2e} < {floor:g})"
        self._update_ref_norms(results)
        raw = {r.uid: r.score for r in results}
        norm = normalise_cohorts(raw, {r.uid: r.fragment for r in results}, cfg.validator.cohort_method)
        comp = play_round(self.state.competition, norm, [p.uid for p in competitors], cfg.competition,
                          slashed=set(copies) | set(shared), hotkeys={p.uid: p.hotkey for p in competitors})
        self.state.competition = comp
        weights = compute_weights(comp, [p.uid for p in peers if p.uid != rt.uid], cfg.competition,
                                  hotkeys={p.uid: p.hotkey for p in peers})

        lead = lead_validator(peers)
        manifest_info: dict[str, Any] = {}
        if lead is not None and lead.hotkey == rt.hotkey:
            manifest_info = self._aggregate(t, [r for r in results if r.eligible], heldout_b)
        elif lead is not None:
            self._follow(lead, t)

        self.state.last_scored_window = t
        self.state.prune_seen(t + 1)
        self.evidence.prune(t + 1)
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

    def _take_in(self, t: int, p: Peer, frag: int, deadline: int) -> Scored:
        """One peer's pinned window-`t` submission, verified (intake.take_in: every failure is an outcome)."""
        rt, cfg = self.rt, self.cfg

        def verify(data: bytes):  # noqa: ANN202 - Artifact
            return read_artifact(data, expected_hotkey=p.hotkey, max_bytes=self._max_bytes[frag],
                                 shapes=rt.gm.shapes(frag), netuid=rt.netuid, window=t, fragment=frag, uid=p.uid,
                                 codec=rt.codec)

        r = take_in(window=t, uid=p.uid, hotkey=p.hotkey, fragment=frag, book=self.evidence,
                    status=self.watcher.status(t, p.hotkey),
                    rules=IntakeRules(deadline_block=deadline, model_version=rt.gm.version,
                                      max_staleness=cfg.validator.max_staleness),
                    verify=verify)
        if r.artifact is not None:
            r.detail["norm"] = _norm(r.artifact.encoded)
        return r

    def _recheck_rejected(self, t: int, results: list[Scored], by_uid: dict[int, Peer]) -> None:
        """Pinned bytes that failed verification: replaced since (late) or junk (rejected)? Concurrently, bounded.

        One short request per such peer, all at once, and the scoring thread waits
        at most `RECHECK_BUDGET_S` for them all: a store that does not answer in
        time leaves the refusal standing (the first bytes are what counts).
        """
        todo = [r for r in results if r.reason.startswith("rejected:") and "first_seen_block" in r.detail]
        if not todo:
            return
        timeout = min(RECHECK_BUDGET_S, self.budget.request_timeout_s)
        pool = ThreadPoolExecutor(max_workers=min(len(todo), self.budget.workers), thread_name_prefix="recheck")
        futures = {}
        for r in todo:
            pinned = self.evidence.pinned(t, r.hotkey)
            if pinned is None:
                continue
            key = artifact_key(self.rt.netuid, t, r.hotkey, r.fragment)
            futures[pool.submit(self._recheck(by_uid[r.uid], key, r.fragment, timeout))] = (r, pinned)
        done, _ = wait(futures, timeout=timeout + 1.0)
        pool.shutdown(wait=False, cancel_futures=True)
        for fut in done:
            r, (sighting, data) = futures[fut]
            try:
                now = fut.result()
            except Exception as exc:  # unreachable now: the first bytes stand
                logger.debug("uid {}: recheck failed: {}", r.uid, exc)
                continue
            if now is not None and now != data:
                mark_replaced(r, sighting.block)

    def _gate_norm_outliers(self, results: list[Scored]) -> None:
        """Zero updates whose norm is far above what honest updates of their fragment measure.

        Aggregation clips every update to the median norm, so a scaled-up copy of
        an honest update would otherwise be scored at full size and out-earn the
        honest miners for damage it could not do. The yardstick is the fragment's
        reference norm (`ref_norms`: an EMA of the lower median of *positively
        scored* updates of past windows), so nothing an upload that earns nothing
        does (noise, zeros, tiny or newcomer updates) can move it: another
        miner's small update never zeroes an honest one. Only before a fragment
        has a reference (its first scored windows) does the gate fall back to the
        cohort's lower median of this window.
        """
        limit = self.cfg.validator.norm_outlier
        by_frag: dict[int, list[Scored]] = {}
        for r in results:
            if r.artifact is not None:
                by_frag.setdefault(r.fragment, []).append(r)
        for frag, cohort in by_frag.items():
            ref = self.state.ref_norms.get(frag)
            if ref is None:
                if len(cohort) < 2:
                    continue
                ref = statistics.median_low([r.detail["norm"] for r in cohort])
            for r in cohort:
                if ref > 0 and r.detail["norm"] > limit * ref:
                    r.score = 0.0
                    r.reason = f"norm outlier ({r.detail['norm'] / ref:.1f}x the fragment's reference norm)"
                    r.artifact = None

    def _update_ref_norms(self, results: list[Scored]) -> None:
        """Move each fragment's reference norm towards this window's positively scored updates."""
        by_frag: dict[int, list[float]] = {}
        for r in results:
            if r.score is not None and r.score > 0 and "norm" in r.detail:
                by_frag.setdefault(r.fragment, []).append(float(r.detail["norm"]))
        for frag, norms in by_frag.items():
            now = statistics.median_low(norms)
            old = self.state.ref_norms.get(frag)
            self.state.ref_norms[frag] = now if old is None else REF_NORM_DECAY * old + (1 - REF_NORM_DECAY) * now

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
        publish_manifest(self.store, manifest, rt.wallet.hotkey)
        if should_checkpoint(rt.gm.version, cfg.sync.checkpoint_every):
            publish_checkpoint(self.store, rt.netuid, rt.gm, rt.wallet.hotkey)
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
            if manifest_ready(lead_store, self.rt.netuid, t, expected_signer=lead.hotkey):
                break
            time.sleep(self.cfg.validator.poll_interval)
        follow_lead(self.rt.gm, lead_store, self.rt.netuid, t, self.cfg.store.max_artifact_bytes,
                    lead_hotkey=lead.hotkey, codec=self.rt.codec, policy=manifest_policy(self.cfg.sync))

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


def _pow_margin(r: Scored) -> float:
    """How much better an update fits its miner's own assigned pages than control pages (-inf: not evaluated)."""
    a, c = r.detail.get("assigned_improvement"), r.detail.get("random_improvement")
    return float(a) - float(c) if a is not None and c is not None and r.score is not None else float("-inf")


def _resolve_ties(results: list[Scored], tied: dict[int, int]) -> None:
    """Near-duplicates whose order the evidence cannot tell: the update is whoever's data it fits.

    Both were evaluated on their own assigned pages. A copy carries the work of
    the original on the original's pages, so it fits the copier's pages no
    better than control pages; the one with the smaller proof-of-work margin
    scores zero (unslashed: the judgement is statistical). A tie between two
    equal margins (neither evaluated) zeroes both.
    """
    by_uid = {r.uid: r for r in results}
    for uid, twin in tied.items():
        r, other = by_uid.get(uid), by_uid.get(twin)
        if r is None or other is None:
            continue
        mine, theirs = _pow_margin(r), _pow_margin(other)
        if mine < theirs or mine == theirs:
            r.score, r.artifact = 0.0, None
            r.reason = (f"copy tie uid {twin} (near-duplicates, order unknown; the update fits uid {twin}'s "
                        f"assigned pages better: zero, unslashed)" if mine < theirs else
                        f"copy tie uid {twin} (near-duplicates, order unknown, no proof of work tells them apart: "
                        f"zero, unslashed)")


def _commit_block(peers: list[Peer], uid: int) -> int:
    for p in peers:
        if p.uid == uid:
            return p.commit_block or 0
    return 0


def _norm(encoded: EncodedUpdate) -> float:
    """L2 norm of an update from its sparse entries (no dense decode)."""
    return math.sqrt(sum(float((t.values.double() ** 2).sum()) for t in decode_sparse(encoded)))


def store_identity(location: str) -> object:
    """What a location names, whatever its spelling (case, trailing dot or slash, default port, %-escapes).

    Sybils sharing one store must not escape the rule by writing it differently;
    an unparseable location is its own identity (it is refused anyway).
    """
    try:
        loc = parse_location(location, LocationPolicy.devnet())
    except Exception:  # noqa: BLE001 - any text is acceptable input here
        return ("raw", location)
    if isinstance(loc, S3Location):
        ep = loc.endpoint
        where = None if ep is None else (ep.host.rstrip(".").lower(), ep.port or (443 if ep.scheme == "https" else 80))
        return ("s3", where, loc.bucket, loc.prefix.strip("/"))
    return ("local", os.path.normpath(loc.path))


def _shared_stores(peers: list[Peer]) -> dict[int, int]:
    """Hotkeys committing the same store are one operator (sybils): only the first committed competes.

    Returns charged uid -> the uid that keeps the store (earliest commitment, then lowest uid).
    """
    by_loc: dict[object, list[Peer]] = {}
    for p in peers:
        if p.location:
            by_loc.setdefault(store_identity(p.location), []).append(p)
    charged: dict[int, int] = {}
    for group in by_loc.values():
        if len(group) > 1:
            keep, *rest = sorted(group, key=lambda p: (p.commit_block or 0, p.uid))
            charged.update({p.uid: keep.uid for p in rest})
    return charged
