"""The validator's scoring pipeline as pure stages over plain values:
verify -> gate -> sample -> evaluate -> settle -> compete.

Why pure: every outcome a peer can get must be testable in one process,
without a chain, child processes or a clock. The stages therefore take plain
values (the pinned bytes and watcher statuses per hotkey, a `ChainSnapshot` of
peers, assignments and seeds, the model and pages) and return `Submission`
values (submission.py) with an `Outcome`; `loop.py` only schedules them (time,
I/O, budgets, persistence). A peer's failure is a value here, never an
exception that leaves its stage; exceptions are for our own bugs.

Densify once: verification decodes each update to its sparse view; copy
detection, the norm gate and scoring (through `scoring.applied`) read that
view, and only the lead's aggregation densifies the contributions it selects
(`Submission.dense`).

What it refuses to do: any I/O. Rechecking a replaced upload is the loop's
(budgeted) read; its answer comes back as `intake.mark_replaced`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from loguru import logger
from torch import nn

from subnet.codec.config import CodecConfig
from subnet.codec.wire import read_artifact
from subnet.data.pages import TokenPages
from subnet.errors import ConfigError
from subnet.model.fragments import trainable_parameters
from subnet.node.chain import Peer
from subnet.node.config import ValidatorOptions
from subnet.protocol.assignment import Assignment, AssignmentParams, heldout_pages, proof_pages, random_pages
from subnet.storage.location import LocationPolicy, S3Location, parse_location
from subnet.sync.aggregate import select_top
from subnet.sync.apply import GlobalModel
from subnet.validator.batched_eval import BatchedEvalConfig, score_batch
from subnet.validator.batched_eval import Item as BatchItem
from subnet.validator.cohorts import normalise_cohorts
from subnet.validator.competition import (
    CompetitionConfig,
    CompetitionState,
    compute_weights,
    credit_round,
    play_round,
)
from subnet.validator.copydetect import (
    PARTIAL_SHARE,
    CopyVerdict,
    Support,
    judge_copies,
    overlap_stats,
    support_of,
)
from subnet.validator.copydetect import Submission as CopyCandidate
from subnet.validator.intake import IntakeRules, Pinned, Status, Verify, take_in
from subnet.validator.powevidence import (
    Credits,
    HeldCredit,
    apply_evidence,
    held_scores,
    prune_evidence,
    settle_credits,
)
from subnet.validator.sampling import EvaluationSample, SamplingConfig, choose_for_evaluation, record_evaluations
from subnet.validator.scoring import (
    NO_PROOF_OF_WORK,
    Baseline,
    ContributionScore,
    ScoreConfig,
    applied,
    compute_baseline,
    mean_loss,
    page_batches,
    score_contribution,
)
from subnet.validator.submission import Outcome, Submission

CONTROL_UID = 1 << 16  # not a real uid: the window's shared control pages
REF_NORM_DECAY = 0.7  # weight of the old reference norm per window (honest norms drift as training goes on)

Scorer = Callable[..., ContributionScore]  # scoring.score_contribution's signature


# -- inputs -------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ChainSnapshot:
    """What the chain said about window `window`, read once by the loop."""

    netuid: int
    window: int
    peers: tuple[Peer, ...]
    """Every registered neuron with its committed store (node.chain.ChainView.peers)."""
    assignments: Mapping[int, Assignment]
    """uid -> fragment and pages, for the uids that take part in `window` (registered before it started)."""
    seed: int
    """Window `window`'s seed (its first block's hash): the control pages."""
    seed_next: int
    """Window `window + 1`'s seed: the held-out pages, unknown while miners trained."""
    deadline_block: int
    """First block after the window: bytes first seen at or after it are late."""
    self_uid: int
    """This validator's uid (never scored, never weighted)."""
    owner_uids: frozenset[int] = frozenset()
    """The subnet owner's uid(s): they do not compete."""

    @property
    def competitors(self) -> list[Peer]:
        return [p for p in self.peers if p.uid != self.self_uid and p.uid not in self.owner_uids
                and p.uid in self.assignments]


@dataclass(frozen=True, kw_only=True)
class EvalContext:
    """The window's evaluation inputs, shared by every submission (one base model, one baseline)."""

    model: nn.Module
    params_of: Callable[[int], Mapping[str, torch.Tensor]]
    """fragment -> its trainable parameters (what an update is applied to)."""
    pages: TokenPages
    cfg: ScoreConfig
    heldout: list[torch.Tensor]
    control: list[torch.Tensor]
    baseline: Baseline
    seed_next: int
    """The next window's seed: it draws the held-out, control and proof-of-work pages, all unknown while miners
    train (red-team finding: control pages from the window's own seed could be degraded in advance)."""


def prepare_eval(gm: GlobalModel, pages: TokenPages, snap: ChainSnapshot, cfg: ScoreConfig,
                 params: AssignmentParams) -> EvalContext:
    """Held-out batches (seed of w+1), one control-page set per window, and the shared baseline losses.

    The baseline pass also records the hidden states entering each fragment's first layer on the held-out and
    control batches (scoring.compute_baseline, prefix_cache.py), so scoring an update to fragment f > 0 runs only
    the layers from f's first on (the same losses as the full forward).
    """
    all_assigned = {pg for a in snap.assignments.values() for pg in a.pages}
    heldout = page_batches(pages, heldout_pages(snap.seed_next, params), "heldout", cfg.batch_size,
                           cfg.n_heldout_batches)
    control_pages = random_pages(snap.seed_next, CONTROL_UID, params, cfg.pow_batch_size * cfg.n_random_batches,
                                 exclude=all_assigned)
    control = (page_batches(pages, control_pages, "train", cfg.pow_batch_size, cfg.n_random_batches)
               if cfg.n_random_batches else [])  # R0: the held-out pages are the proof-of-work control
    return EvalContext(model=gm.model, params_of=lambda f: trainable_parameters(gm.model, gm.fragment(f)),
                       pages=pages, cfg=cfg, heldout=heldout, control=control, seed_next=snap.seed_next,
                       baseline=compute_baseline(gm.model, heldout, control,
                                                 prefix_layers=[f.layers[0] for f in gm.fragments]))


def artifact_verifier(snap: ChainSnapshot, shapes_of: Callable[[int], Mapping[str, Sequence[int]]],
                      max_bytes_of: Callable[[int], int], codec: CodecConfig) -> Callable[[Peer, int], Verify]:
    """peer, fragment -> `read_artifact` with every expected header field pinned (netuid, window, uid, ...)."""
    def for_peer(p: Peer, fragment: int) -> Verify:
        def verify(data: bytes):  # noqa: ANN202 - wire.Artifact
            return read_artifact(data, expected_hotkey=p.hotkey, max_bytes=max_bytes_of(fragment),
                                 shapes=shapes_of(fragment), netuid=snap.netuid, window=snap.window,
                                 fragment=fragment, uid=p.uid, codec=codec)
        return verify
    return for_peer


# -- stage 1: verify ----------------------------------------------------------------------------------
def verify_all(snap: ChainSnapshot, pinned: Mapping[str, Pinned | None], statuses: Mapping[str, Status],
               rules: IntakeRules, verifier: Callable[[Peer, int], Verify]) -> list[Submission]:
    """Every competitor's submission from the bytes pinned for it (intake.take_in; never raises)."""
    out = []
    for p in snap.competitors:
        frag = snap.assignments[p.uid].fragment
        out.append(take_in(window=snap.window, uid=p.uid, hotkey=p.hotkey, fragment=frag,
                           pinned=pinned.get(p.hotkey), status=statuses.get(p.hotkey, (None, "", 0)),
                           rules=rules, verify=verifier(p, frag), commit_block=p.commit_block or 0))
    return out


# -- stage 2: gate (cheap checks on every verified upload) --------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Gated:
    subs: list[Submission]
    tied: dict[int, int]
    """uid -> its near-duplicate twin whose order the evidence cannot tell (settled after evaluation)."""
    slashed: frozenset[int]
    """Charged uids (copies, shared stores): ranked last and barred from weight for a while."""


def gate(subs: Sequence[Submission], competitors: Sequence[Peer], ref_norms: Mapping[int, float],
         opts: ValidatorOptions) -> Gated:
    """Copy detection, the shared-store rule and the norm gate (see `norm_gate` for its invariant)."""
    subs = list(subs)
    # copy detection over every verified upload, within each fragment: the later upload is charged;
    # near-duplicates whose order the evidence cannot tell are both evaluated, then resolve_ties
    candidates = [CopyCandidate(uid=s.uid, hotkey=s.hotkey, fragment=s.fragment, first_seen=s.first_seen,
                                seen_after=s.seen_after if s.seen_after is not None else float("-inf"),
                                commit_block=s.commit_block, update=list(s.sparse))
                  for s in subs if s.pending and s.sparse is not None]
    verdict = judge_copies(candidates, opts.copy_threshold) if candidates else CopyVerdict(charged={}, tied={})
    copies = verdict.charged
    subs = [s.judged(Outcome.COPY, f"copy of uid {copies[s.uid]}", score=0.0) if s.uid in copies else s
            for s in subs]
    # after copy detection, so a sybil's upload still counts as the original a copier took
    shared = shared_stores(competitors)
    subs = [s.judged(Outcome.SHARED_STORE, f"shares a store with uid {shared[s.uid]}", score=0.0)
            if s.uid in shared and s.uid not in copies else s for s in subs]
    subs = norm_gate(subs, ref_norms, opts.norm_outlier)
    return Gated(subs=subs, tied=dict(verdict.tied), slashed=frozenset(copies) | frozenset(shared))


def norm_gate(subs: Sequence[Submission], ref_norms: Mapping[int, float], limit: float) -> list[Submission]:
    """Zero updates whose norm exceeds `limit` times their fragment's reference norm (before evaluation).

    Aggregation clips every update to the median norm, so a scaled-up copy of
    an honest update would otherwise be scored at full size and out-earn the
    honest miners for damage it could not do.

    Griefing invariant (validator_tests/test_validator_pipeline_griefing.py):
    adding any number of noise, zero, tiny or scaled uploads to a cohort
    leaves an honest miner's raw score bit-identical (the stated bound is 0)
    and never zeroes it; uploads that earn nothing (noise, zeros, tiny updates
    below the floor, norm outliers, copies) never lower its cohort-normalised
    score or rank it below them. Why: the
    yardstick is `ref_norms` (persisted state, moved only by
    `update_ref_norms`, i.e. by positively scored updates weighted by their
    score), so nothing uploaded in this window moves it; an honest update is
    evaluated alone on the same base model (`scoring.applied` restores the
    exact bits), so another upload cannot change its loss; and uploads that
    score nothing (noise, zeros, tiny updates below the floor, outliers) never
    enter the cohort's positive median. A fragment without a reference yet
    (its first scored window) is not gated here but after evaluation
    (`settle`), against the score-weighted median norm of that window's
    positively scored updates: there a tiny upload weighs what it improves, so
    zeroing an honest update takes more credited improvement at smaller norm
    than the honest miners produce, i.e. more real work than theirs.

    Known limit: an update scaled by less than `limit` passes and is scored as
    applied; if that improves held-out loss it competes as work (and can lift
    the cohort median that normalises everyone), while aggregation clips it
    to the median norm. Lifting the reference never zeroes anyone.
    """
    out = []
    for s in subs:
        ref = ref_norms.get(s.fragment)
        if s.pending and ref is not None and ref > 0 and s.norm is not None and s.norm > limit * ref:
            s = s.judged(Outcome.NORM_OUTLIER, f"norm outlier ({s.norm / ref:.1f}x the fragment's reference norm)",
                         score=0.0)
        out.append(s)
    return out


# -- stage 2b: sample (who gets the full evaluation this window) --------------------------------------
@dataclass(frozen=True, kw_only=True)
class SamplingPlan:
    """What the draw needs beyond the submissions: the rules, who draws, and the evaluation history."""

    cfg: SamplingConfig
    validator_hotkey: str
    last_evaluated: Mapping[str, int]
    """hotkey -> window of its last full evaluation by this validator (ValidatorState.last_evaluated)."""
    ratings: Mapping[int, float]
    """uid -> rating ordinal before this window (missing: a newcomer)."""


def sample(subs: Sequence[Submission], snap: ChainSnapshot, plan: SamplingPlan | None,
           tied: Mapping[int, int] | None = None) -> tuple[list[Submission], EvaluationSample | None]:
    """Cheap checks ran on everyone; the full evaluation runs on the draw of `sampling.choose_for_evaluation`.

    Submissions still pending after the gate and not drawn become NOT_SAMPLED:
    no score, not aggregated, and they sit the competition round out (ratings
    untouched), so not being drawn neither rewards nor punishes. None: no plan,
    everyone pending is evaluated.
    """
    subs = list(subs)
    if plan is None:
        return subs, None
    pending = {s.uid: s.hotkey for s in subs if s.pending}
    try:
        drawn = choose_for_evaluation(candidates=pending, ratings=plan.ratings, last_evaluated=plan.last_evaluated,
                                      window=snap.window, seed_next=snap.seed_next,
                                      validator_hotkey=plan.validator_hotkey, cfg=plan.cfg)
    except ConfigError as exc:  # more candidates than the guarantee is sized for: evaluate all, loudly
        logger.error("sampling: {}; evaluating all {} this window (raise --sampling.max_candidates)", exc,
                     len(pending))
        drawn = EvaluationSample(evaluate=tuple(sorted(pending)), overdue=(), drawn=tuple(sorted(pending)), skipped=())
    evaluated = set(drawn.evaluate)
    twins = {t for u, t in (tied or {}).items() if u in evaluated}
    if twins & set(drawn.skipped):  # a drawn near-duplicate is judged against its twin: evaluate both
        drawn = EvaluationSample(evaluate=tuple(sorted(evaluated | twins)), overdue=drawn.overdue,
                                 drawn=drawn.drawn, skipped=tuple(u for u in drawn.skipped if u not in twins))
    skipped = set(drawn.skipped)
    return [s.judged(Outcome.NOT_SAMPLED, "not sampled for the full evaluation this window", score=None)
            if s.uid in skipped else s for s in subs], drawn


# -- stage 3: evaluate --------------------------------------------------------------------------------
def evaluate(subs: Sequence[Submission], assignments: Mapping[int, Assignment], ctx: EvalContext,
             scorer: Scorer = score_contribution, tied: Mapping[int, int] | None = None,
             batched: BatchedEvalConfig | None = None) -> list[Submission]:
    """Loss before/after on assigned, held-out and control pages for every pending submission (sparse apply).

    Near-duplicate twins (`tied`) are also measured on each other's proof pages
    (`cross_check_ties`), which is what settles who copied whom. With
    `batched.batch_contributions` > 1 (and the default scorer) pending
    submissions of one fragment are scored that many per vmapped pass
    (batched_eval.py: the same scores within 1e-5).
    """
    if batched is not None and batched.batch_contributions > 1 and scorer is score_contribution:
        out = _evaluate_batched(subs, assignments, ctx, batched.batch_contributions)
    else:
        out = [_evaluate_one(s, assignments[s.uid], ctx, scorer) if s.pending else s for s in subs]
    return cross_check_ties(out, tied or {}, assignments, ctx) if tied else out


def _evaluate_batched(subs: Sequence[Submission], assignments: Mapping[int, Assignment], ctx: EvalContext,
                      k: int) -> list[Submission]:
    """`_evaluate_one` for every pending submission, with scores from `batched_eval.score_batch`, k per pass.

    A chunk whose batched pass raises is scored one at a time instead, so one
    peer's failure stays that peer's outcome.
    """
    judged: dict[int, Submission] = {}
    pending = [s for s in subs if s.pending]
    for frag in sorted({s.fragment for s in pending}):
        group = [s for s in pending if s.fragment == frag]
        for at in range(0, len(group), k):
            chunk = group[at:at + k]
            try:
                items = [BatchItem(params=ctx.params_of(s.fragment), delta=list(s.sparse or ()),
                                   assigned=proof_batches(s.uid, assignments[s.uid], ctx)) for s in chunk]
                scores = score_batch(ctx.model, items, ctx.cfg, ctx.heldout, ctx.control, ctx.baseline)
            except Exception as exc:  # noqa: BLE001 - our batching must not cost anyone a score: one at a time
                logger.warning("batched evaluation of {} uploads failed ({}); scoring them one at a time",
                               len(chunk), exc)
                scores = [None] * len(chunk)
            for s, cs in zip(chunk, scores):
                scorer = score_contribution if cs is None else (lambda *_a, _cs=cs, **_k: _cs)
                judged[s.uid] = _evaluate_one(s, assignments[s.uid], ctx, scorer)
    return [judged.get(s.uid, s) for s in subs]


def proof_batches(uid: int, assignment: Assignment, ctx: EvalContext) -> list[torch.Tensor]:
    """The batches of `uid`'s assigned pages its proof of work is measured on (drawn by the next seed)."""
    cfg = ctx.cfg
    chosen = proof_pages(ctx.seed_next, uid, tuple(assignment.pages), cfg.pow_batch_size * cfg.n_assigned_batches)
    return page_batches(ctx.pages, chosen, "train", cfg.pow_batch_size, cfg.n_assigned_batches)


def _relative_gain(before: float, after: float, relative: bool) -> float:
    return (before - after) / before if relative and before else before - after


def cross_check_ties(subs: Sequence[Submission], tied: Mapping[int, int], assignments: Mapping[int, Assignment],
                     ctx: EvalContext) -> list[Submission]:
    """For each evaluated twin, how well its update fits the OTHER twin's proof pages (beyond control pages).

    A copy carries the original's work, so it fits the original's pages; the
    original carries nothing of the copier's. Padding a stolen update with the
    copier's own work raises its own margin but cannot remove the original's
    work from it (red-team finding 1): `cross_margin` is what `resolve_ties`
    reads first. Cost: one forward pass over the twin's proof pages per tied
    submission (ties are rare). Sets `detail["cross_margin"]`; a failure leaves
    it unset (the own-margin rule then decides).
    """
    by_uid = {s.uid: s for s in subs}
    cfg = ctx.cfg
    cross: dict[int, float] = {}
    for uid, twin in tied.items():
        s, other = by_uid.get(uid), by_uid.get(twin)
        if s is None or other is None or s.sparse is None or other.sparse is None or twin not in assignments:
            continue
        rand = _control_improvement(s)
        if rand is None:
            continue
        try:
            batches = proof_batches(twin, assignments[twin], ctx)
            before = mean_loss(ctx.model, batches)
            with applied(ctx.params_of(s.fragment), list(s.sparse), cfg.eval_lr):
                after = mean_loss(ctx.model, batches)
        except Exception as exc:  # a peer's update must not end the window; the own-margin rule decides
            logger.warning("uid {}: cross check against twin uid {} failed: {}", uid, twin, exc)
            continue
        gain = _relative_gain(before, after, cfg.relative)
        if math.isfinite(gain):
            cross[uid] = gain - float(rand)
    return [s.with_detail(cross_margin=cross[s.uid]) if s.uid in cross else s for s in subs]


def _evaluate_one(s: Submission, assignment: Assignment, ctx: EvalContext, scorer: Scorer) -> Submission:
    cfg = ctx.cfg
    try:
        assigned = proof_batches(s.uid, assignment, ctx)
        cs = scorer(ctx.model, ctx.params_of(s.fragment), list(s.sparse or ()), cfg, assigned, ctx.heldout,
                    ctx.control, ctx.baseline)
    except Exception as exc:  # a peer's update must not end the window for everyone else
        logger.exception("uid {}: evaluation failed", s.uid)
        return s.judged(Outcome.EVAL_ERROR, f"not scored: evaluation error {type(exc).__name__}", score=None)
    outcome = (Outcome.NO_PROOF_OF_WORK if not cs.proof_of_work and cs.reason == NO_PROOF_OF_WORK
               else Outcome.EMPTY if cs.reason == "empty update"
               else Outcome.SCORED if cs.score > 0 else Outcome.NO_IMPROVEMENT)
    measured = cs.reason == "no held-out improvement"  # not a zero that stands for "could not measure"
    return s.judged(outcome, cs.reason, score=cs.score,
                    keep_update=outcome is Outcome.SCORED or (outcome is Outcome.NO_IMPROVEMENT and measured),
                    heldout_se=heldout_se(cs.heldout_pages),
                    heldout_improvement=cs.heldout_improvement, assigned_improvement=cs.assigned_improvement,
                    random_improvement=cs.random_improvement, proof_of_work=cs.proof_of_work,
                    pow_t=cs.pow_t if math.isfinite(cs.pow_t) else None)


# -- stage 4: settle (ties, floor, cold-start norm gate, the reference norms) --------------------------
def _control_improvement(s: Submission) -> float | None:
    """The improvement on pages the miner could not have trained on: the random control pages, or without them
    (``n_random_batches=0``, NETWORK_SCORE) the held-out pages, which are then the proof-of-work control."""
    for key in ("random_improvement", "heldout_improvement"):
        v = s.detail.get(key)
        if v is not None and math.isfinite(float(v)):
            return float(v)
    return None


def _pow_margin(s: Submission) -> float:
    """How much better an update fits its miner's own assigned pages than control pages (-inf: not evaluated)."""
    a, c = s.detail.get("assigned_improvement"), _control_improvement(s)
    return float(a) - c if a is not None and c is not None and s.score is not None else float("-inf")


def resolve_ties(subs: Sequence[Submission], tied: Mapping[int, int]) -> list[Submission]:
    """Near-duplicates whose order the evidence cannot tell: the update is whoever's data it fits.

    First rule (`cross_check_ties`): a copy carries the original's work, so it
    fits the original's proof pages; the twin whose update fits the other's
    pages better (larger `cross_margin`) is the copy and scores zero. Without
    cross margins (one twin not evaluated): a copy fits the copier's own pages
    no better than control pages, so the one with the smaller proof-of-work
    margin scores zero. Zero is unslashed: the judgement is statistical. A tie
    between two equal margins (neither evaluated) zeroes both.
    """
    by_uid = {s.uid: s for s in subs}
    losers: dict[int, str] = {}
    for uid, twin in tied.items():
        s, other = by_uid.get(uid), by_uid.get(twin)
        if s is None or other is None:
            continue
        carried, carried_back = s.detail.get("cross_margin"), other.detail.get("cross_margin")
        if carried is not None and carried_back is not None and carried != carried_back:
            if carried > carried_back:  # this update carries its twin's work: it is the copy
                losers[uid] = (f"copy tie uid {twin} (near-duplicates, order unknown; the update carries uid "
                               f"{twin}'s work: it fits uid {twin}'s proof pages: zero, unslashed)")
            continue
        mine, theirs = _pow_margin(s), _pow_margin(other)
        if mine < theirs:
            losers[uid] = (f"copy tie uid {twin} (near-duplicates, order unknown; the update fits uid {twin}'s "
                           f"assigned pages better: zero, unslashed)")
        elif mine == theirs:
            losers[uid] = (f"copy tie uid {twin} (near-duplicates, order unknown, no proof of work tells them "
                           f"apart: zero, unslashed)")
    return [s.judged(Outcome.COPY_TIE, losers[s.uid], score=0.0) if s.uid in losers else s for s in subs]


def apply_floor(subs: Sequence[Submission], floor: float) -> list[Submission]:
    """A held-out improvement below the noise floor counts as none."""
    return [s.judged(Outcome.BELOW_FLOOR, f"below the noise floor ({s.score:.2e} < {floor:g})", score=0.0,
                     keep_update=True, raw_score=s.score)
            if s.score is not None and 0 < s.score < floor else s for s in subs]


def heldout_se(pages: Sequence[float]) -> float | None:
    """Standard error of the mean of per-page held-out improvements (None: fewer than two, or non-finite)."""
    if len(pages) < 2 or not all(math.isfinite(p) for p in pages):
        return None
    mu = sum(pages) / len(pages)
    return math.sqrt(sum((p - mu) * (p - mu) for p in pages) / (len(pages) - 1) / len(pages))  # inf, not raise


def within_noise(score: float | None, se: float | None, z: float) -> bool:
    """Whether a measured held-out change is positive or at most ``z`` standard errors below zero.

    Why it exists: payment needs evidence that an update helped (score > 0, at
    or above the noise floor), but aggregation needs only that it did not
    measurably hurt. One window's held-out batch is small, and late in
    training about 40% of honest uploads measure <= 0 on it
    (bench/convergence.py's dropped reasons); leaving them out of the mean
    halves the cohort the outer step averages over. ``se`` is the per-page
    spread of the same improvements (`heldout_se`), so the rule is
    scale-free: it does not move with the loss level, the learning rate or
    the fragment's size. ``z <= 0`` admits positive scores only; without a
    standard error nothing below zero qualifies.
    """
    if score is None or not math.isfinite(score):
        return False
    if score > 0:
        return True
    if z <= 0 or se is None or not math.isfinite(se):
        return False
    return score > -z * se


UNPAID = (Outcome.NO_IMPROVEMENT, Outcome.BELOW_FLOOR)
"""Evaluated outcomes that pay nothing but may still be aggregated (`unpaid_aggregation`)."""


def unpaid_aggregation(subs: Sequence[Submission], z: float, ref_norms: Mapping[int, float],
                       limit: float) -> list[Submission]:
    """Keep the update of an unpaid evaluated submission only if aggregation may use it.

    Passing proof of work and every gate is the evidence of honest work; an
    update that then measures within noise of zero on the held-out pages
    still carries it, so the lead averages it in, unpaid (its outcome and
    score stay what they were). The conditions, each closing an attack the
    red-team review found:

    - within noise (`within_noise`) of a standard error the upload does not
      set alone: the smaller of its own and the lower median over its
      fragment's evaluated updates this window (a harmful update's own
      per-page spread grows with its harm, so its own SE alone would admit
      it);
    - this window's proof-of-work t > 0 (banked evidence alone lets noise
      through a free window: it may be paid late, not averaged in);
    - a norm within a factor ``limit`` of its fragment's reference norm,
      either way (a tiny update only dilutes the mean; with no reference yet
      no unpaid update is aggregated); the lower bound is taken from the
      smaller of the reference and this window's median paid norm, so
      scaled-up paid uploads that lift the reference cannot push honest
      unpaid ones out. The lead clips to the median of the paid updates'
      norms (`sync.aggregate.robust_coefficients`), so an unpaid one cannot
      raise it;
    - it does not cancel another evaluated update of its fragment
      (`anti_aligned`: ``detail["cancels_uid"]`` names it).

    Known cost, not closed: each aggregated unpaid update is one more entry
    in the mean (the lead divides by the count), so a miner with banked
    evidence and this window's t > 0 can dilute the step by one entry per
    hotkey; every such hotkey must pass the running proof of work, i.e. do
    the training, for no pay.

    Everything else unpaid drops its update here. With ``z <= 0`` no unpaid
    update is kept (only paid updates are aggregated).
    """
    def se_of(s: Submission) -> float | None:
        v = s.detail.get("heldout_se")
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    evaluated = [s for s in subs if (s.outcome is Outcome.SCORED or s.outcome in UNPAID) and s.sparse is not None]
    cohort_se: dict[int, float] = {}
    low_norm: dict[int, float] = {}
    for frag in {s.fragment for s in evaluated}:
        ses = sorted(se for s in evaluated if s.fragment == frag and (se := se_of(s)) is not None)
        if ses:
            cohort_se[frag] = ses[(len(ses) - 1) // 2]
        paid = sorted(float(s.norm) for s in evaluated if s.fragment == frag and s.eligible and s.norm is not None
                      and math.isfinite(s.norm))
        if paid:
            low_norm[frag] = paid[(len(paid) - 1) // 2]
    supports: dict[int, Support] = {}  # each evaluated update's sparse view, built once for the cancel checks
    out = []
    for s in subs:
        if s.outcome in UNPAID and s.sparse is not None:
            raw = s.detail.get("raw_score", s.score)
            own, ref, t = se_of(s), ref_norms.get(s.fragment), s.detail.get("pow_t")
            se = None if own is None or s.fragment not in cohort_se else min(own, cohort_se[s.fragment])
            sane = (ref is not None and s.norm is not None and math.isfinite(s.norm)
                    and min(ref, low_norm.get(s.fragment, ref)) / limit <= s.norm <= limit * ref)
            worked = isinstance(t, (int, float)) and math.isfinite(t) and t > 0
            ok = z > 0 and sane and worked and within_noise(None if raw is None else float(raw), se, z)
            against = anti_aligned(s, evaluated, supports) if ok else None
            if ok and against is None:
                s = s.with_detail(aggregated_unpaid=True)
            elif against is not None:
                s = s.judged(s.outcome, s.reason, score=s.score, cancels_uid=against)
            else:
                s = s.judged(s.outcome, s.reason, score=s.score)
        out.append(s)
    return out


def anti_aligned(s: Submission, others: Sequence[Submission], supports: dict[int, Support] | None = None,
                 share: float = PARTIAL_SHARE) -> int | None:
    """The uid of an evaluated update of the same fragment that ``s`` cancels (sparse cosine <= -share), if any.

    Why: copy detection charges an upload that repeats another's work; one that
    subtracts it (own work minus a peer's decoded upload) is no copy, measures
    below zero, and, averaged in unpaid, would undo that peer's contribution.
    Honest pairs of one fragment share ~0.09 of their indices, so their
    cosine stays far from -``share`` (0.25, the partial-copy share). ``supports``
    caches each uid's sparse view across calls (filled here as needed).
    """
    if s.sparse is None:
        return None
    cache = {} if supports is None else supports

    def view(x: Submission) -> Support:
        if x.uid not in cache:
            cache[x.uid] = support_of(list(x.sparse or ()))
        return cache[x.uid]

    mine = view(s)
    for o in others:
        if o.uid == s.uid or o.fragment != s.fragment or o.sparse is None:
            continue
        if overlap_stats(view(o), mine).share <= -share:
            return o.uid
    return None


def weighted_median_norm(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Lower median of norms weighted by score: the norm by which half the credited improvement is reached.

    `pairs` are (norm, score) of positively scored updates. An upload weighs
    what it improved, so any number of tiny updates that improve little cannot
    drag the median below the updates doing the work. With equal scores this
    is `statistics.median_low`.
    """
    ok = sorted((n, w) for n, w in pairs if math.isfinite(n) and math.isfinite(w) and w > 0 and n > 0)
    if not ok:
        return None
    half, acc = sum(w for _, w in ok) / 2, 0.0
    for n, w in ok:
        acc += w
        if acc >= half:
            return n
    return ok[-1][0]


def _positive_norms(subs: Iterable[Submission], fragment: int) -> list[tuple[float, float]]:
    return [(float(s.norm), float(s.score)) for s in subs
            if s.fragment == fragment and s.outcome is Outcome.SCORED and s.score is not None and s.score > 0
            and s.norm is not None]


def cold_norm_gate(subs: Sequence[Submission], ref_norms: Mapping[int, float], limit: float) -> list[Submission]:
    """`norm_gate` for fragments without a reference yet, after evaluation (see its docstring)."""
    refs: dict[int, float] = {}
    for frag in {s.fragment for s in subs if s.outcome is Outcome.SCORED} - set(ref_norms):
        ref = weighted_median_norm(_positive_norms(subs, frag))
        if ref is not None:
            refs[frag] = ref
    out = []
    for s in subs:
        ref = refs.get(s.fragment)
        if (ref is not None and s.outcome is Outcome.SCORED and s.norm is not None and s.norm > limit * ref):
            s = s.judged(Outcome.NORM_OUTLIER, f"norm outlier ({s.norm / ref:.1f}x the fragment's reference norm)",
                         score=0.0)
        out.append(s)
    return out


def update_ref_norms(subs: Sequence[Submission], ref_norms: Mapping[int, float]) -> dict[int, float]:
    """Each fragment's reference norm moved towards this window's score-weighted median positive norm (EMA)."""
    out = dict(ref_norms)
    for frag in sorted({s.fragment for s in subs}):
        now = weighted_median_norm(_positive_norms(subs, frag))
        if now is None:
            continue
        old = out.get(frag)
        out[frag] = now if old is None else REF_NORM_DECAY * old + (1 - REF_NORM_DECAY) * now
    return out


def settle(subs: Sequence[Submission], tied: Mapping[int, int], ref_norms: Mapping[int, float],
           opts: ValidatorOptions) -> tuple[list[Submission], dict[int, float]]:
    """Ties, the noise floor and the cold-start norm gate; returns the final submissions and new reference norms."""
    out = resolve_ties(subs, tied)
    out = apply_floor(out, opts.min_score)
    out = cold_norm_gate(out, ref_norms, opts.norm_outlier)
    refs = update_ref_norms(out, ref_norms)
    return unpaid_aggregation(out, opts.aggregate_z, refs, opts.norm_outlier), refs


# -- stage 5: compete ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Standing:
    norm_scores: dict[int, float | None]
    """Scores normalised within each fragment's cohort (what the round ranks)."""
    competition: CompetitionState
    weights: dict[int, float]
    pow_credits: dict[str, Credits] | None = None
    """Held proof-of-work credits after this window, per hotkey oldest first (None: no credits were passed in)."""
    released: tuple[HeldCredit, ...] = ()
    """Credits paid this window (their held round's entry now reads the held score)."""


def compete(subs: Sequence[Submission], snap: ChainSnapshot, state: CompetitionState, cfg: CompetitionConfig,
            cohort_method: str, slashed: Iterable[int], *, pow_credits: Mapping[str, Credits] | None = None,
            score_cfg: ScoreConfig | None = None, floor: float = 0.0) -> Standing:
    """Normalise per fragment cohort, play the window as a round, and the weights it implies.

    NOT_SAMPLED submissions sit the round out (`play_round(sitting_out=...)`)
    and stay out of the cohort normalisation. With ``pow_credits`` (hotkey ->
    held credits, oldest first) and ``score_cfg`` the deferred proof-of-work
    credit runs (powevidence.py): a held window's would-be score is its
    cohort normalised with its own raw score restored and every other held
    upload left as it was judged (so held free-riders, which never reach the
    bar, cannot shrink the cohort's scale and inflate another held miner's
    credit, nor raise it to shrink one); an account that reached the bar
    releases each of its credits (up to ``score_cfg.pow_credits``) into its
    own round's entry before the weights are drawn. Credits die with the
    player they were recorded for: a hotkey charged with copying this window,
    or whose player was (re)created this round (its round numbers restarted),
    loses them.
    """
    slashed = set(slashed)
    resting = {s.uid for s in subs if s.outcome is Outcome.NOT_SAMPLED}
    played = [s for s in subs if s.uid not in resting]
    raw = {s.uid: s.score for s in played}
    frags = {s.uid: s.fragment for s in played}
    norm = normalise_cohorts(raw, frags, cohort_method)  # type: ignore[arg-type]
    competitors = snap.competitors
    hotkeys = {p.uid: p.hotkey for p in competitors}
    comp = play_round(state, norm, [p.uid for p in competitors], cfg, slashed=slashed,
                      hotkeys=hotkeys, sitting_out=resting)
    credits, released = None, []
    if pow_credits is not None and score_cfg is not None:
        held = {u: v for u, v in held_scores(played, floor).items() if u not in slashed}
        held_norm = {}
        for u, v in held.items():  # each held upload alone restored: the others cannot move its would-be score
            alone = normalise_cohorts({**raw, u: v}, frags, cohort_method).get(u)  # type: ignore[arg-type]
            if alone is not None:
                held_norm[u] = float(alone)
        rounds = {u: p.rounds for u, p in comp.players.items()}
        dead = {hotkeys[u] for u in slashed if u in hotkeys} | {
            p.hotkey for u, p in comp.players.items()
            if p.hotkey is not None and (state.players.get(u) is None or state.players[u].hotkey != p.hotkey)}
        live = {h: c for h, c in pow_credits.items() if h not in dead}
        credits, released = settle_credits(live, played, held_norm, rounds, score_cfg)
        credits = prune_evidence(credits, [p.hotkey for p in snap.peers])
        by_uid = {p.uid: p.hotkey for p in snap.peers}
        for c in released:
            if c.uid in by_uid:
                comp = credit_round(comp, c.uid, by_uid[c.uid], c.round, c.score, cfg)
                logger.info("pow credit: uid {} paid late for its round {} (held score {:.3f})", c.uid, c.round,
                            c.score)
    weights = compute_weights(comp, [p.uid for p in snap.peers if p.uid != snap.self_uid], cfg,
                              hotkeys={p.uid: p.hotkey for p in snap.peers})
    return Standing(norm_scores=norm, competition=comp, weights=weights, pow_credits=credits,
                    released=tuple(released))


# -- all of it ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One window's judgement: every competitor's final submission, the new reference norms and standing."""

    subs: list[Submission]
    ref_norms: dict[int, float]
    standing: Standing
    slashed: frozenset[int]
    last_evaluated: dict[str, int] | None = None
    """The evaluation history after this window (None without a sampling plan)."""
    pow_evidence: dict[str, float] | None = None
    """Every miner's running proof-of-work evidence after this window (None: the sequential rule is off)."""
    pow_credits: dict[str, Credits] | None = None
    """Held proof-of-work credits after this window, per hotkey oldest first (None: the sequential rule is off)."""

    def selected(self, top_g: int) -> list[Submission]:
        """Per fragment, the `top_g` best aggregable submissions (what the lead aggregates; paid ones first)."""
        chosen: list[Submission] = []
        eligible = [s for s in self.subs if s.aggregable]
        for frag in sorted({s.fragment for s in eligible}):
            chosen += select_top([s for s in eligible if s.fragment == frag], top_g, score=_rank_score)
        return chosen


def _rank_score(s: Submission) -> float:
    """What top-G ranks by: the score, or for an update under the noise floor the raw score it measured."""
    raw = s.detail.get("raw_score") if s.outcome is Outcome.BELOW_FLOOR else None
    return float(raw) if isinstance(raw, (int, float)) else float(s.score)  # type: ignore[arg-type]


def judge(subs: Sequence[Submission], snap: ChainSnapshot, ctx: EvalContext, *, ref_norms: Mapping[int, float],
          competition: CompetitionState, opts: ValidatorOptions, comp_cfg: CompetitionConfig,
          scorer: Scorer = score_contribution, sampling: SamplingPlan | None = None,
          pow_evidence: Mapping[str, float] | None = None, pow_credits: Mapping[str, Credits] | None = None,
          batched: BatchedEvalConfig | None = None) -> Verdict:
    """gate -> sample -> evaluate -> settle -> compete over verified submissions (after the loop's rechecks).

    With ``ctx.cfg.pow_sequential`` (the network default) the proof of work is
    the running evidence of powevidence.py, applied right after evaluation, from
    ``pow_evidence`` (hotkey -> account; None: every account starts empty, so
    leaving it out never lets a free-rider through), with the deferred credit
    (up to ``ctx.cfg.pow_credits`` held windows per hotkey) from ``pow_credits``; the new accounts and credits come
    back in ``Verdict.pow_evidence`` / ``Verdict.pow_credits`` (what the loop
    persists). With the rule off both are None.
    """
    gated = gate(subs, snap.competitors, ref_norms, opts)
    sampled, drawn = sample(gated.subs, snap, sampling, tied=gated.tied)
    evaluated = evaluate(sampled, snap.assignments, ctx, scorer, tied=gated.tied, batched=batched)
    accounts, credits = None, None
    if ctx.cfg.pow_sequential:
        evaluated, accounts = apply_evidence(evaluated, pow_evidence or {}, ctx.cfg)
        accounts = prune_evidence(accounts, [p.hotkey for p in snap.peers])
        credits = dict(pow_credits or {})
    final, new_refs = settle(evaluated, gated.tied, ref_norms, opts)
    standing = compete(final, snap, competition, comp_cfg, opts.cohort_method, gated.slashed, pow_credits=credits,
                       score_cfg=ctx.cfg, floor=opts.min_score)
    history = None
    if sampling is not None:
        by_uid = {s.uid: s.hotkey for s in gated.subs}
        history = record_evaluations(
            sampling.last_evaluated, window=snap.window,
            evaluated_hotkeys=[by_uid[u] for u in (drawn.evaluate if drawn else ()) if u in by_uid],
            candidate_hotkeys=[s.hotkey for s in gated.subs if s.pending],
            active_hotkeys=[p.hotkey for p in snap.peers])
    return Verdict(subs=final, ref_norms=new_refs, standing=standing, slashed=gated.slashed, last_evaluated=history,
                   pow_evidence=accounts, pow_credits=standing.pow_credits)


# -- the shared-store rule ----------------------------------------------------------------------------
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


def shared_stores(peers: Sequence[Peer]) -> dict[int, int]:
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

