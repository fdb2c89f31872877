"""From pinned evidence to a verified submission: the pipeline's first stage, one peer at a time.

`take_in` turns what the watcher pinned for one miner and window into a
`Submission` (submission.py): ABSENT / STORE_FAILING / NO_STORE (nothing
pinned, with the watcher's last word on why), LATE (first seen at or after the
deadline block, or replaced after it was first seen), REJECTED (the pinned
bytes fail verification, score 0), STALE (built on a model version too old),
or VERIFIED (ready for the gates and the loss evaluation, its update decoded
to the sparse view once). It reads only the pinned bytes it is handed, so
nothing a miner writes after the deadline can change the outcome, and it does
no I/O of its own (a `recheck` is the caller's budgeted read). Every exception
raised while handling the peer becomes that peer's outcome; none leaves this
function.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from subnet.codec.errors import ArtifactError
from subnet.codec.sparseloco import decode_sparse
from subnet.codec.wire import Artifact
from subnet.validator.evidence import Sighting
from subnet.validator.submission import Evidence, Outcome, Submission, sparse_norm
from subnet.validator.watch import PollResult

Verify = Callable[[bytes], Artifact]  # read_artifact with every expected field pinned; raises ArtifactError
Recheck = Callable[[], "bytes | None"]  # the bytes at the peer's key now (budgeted), None if absent/unreachable
Pinned = tuple[Sighting, bytes]  # evidence.EvidenceBook.pinned(): the sighting and its exact bytes
Status = tuple[PollResult | None, str, int]  # watch.UploadWatcher.status(): last result, its detail, attempts

_FAILING = (PollResult.FAILED, PollResult.OVER_BUDGET, PollResult.OVERSIZED, PollResult.REJECTED)


@dataclass(frozen=True, kw_only=True)
class IntakeRules:
    deadline_block: int
    """First block after the window: bytes first seen at or after it are late."""
    model_version: int
    """The validator's global model version (what the artifact's base version is compared with)."""
    max_staleness: int
    """Versions the base may lag the validator's before the submission is stale."""


def take_in(*, window: int, uid: int, hotkey: str, fragment: int, pinned: Pinned | None,
            status: Status = (None, "", 0), rules: IntakeRules, verify: Verify, recheck: Recheck | None = None,
            commit_block: int = 0) -> Submission:
    """One peer's submission for `window`, from the pinned bytes only (see the module docstring)."""
    out = Submission(uid=uid, hotkey=hotkey, fragment=fragment, commit_block=commit_block)
    try:
        return _take_in(out, pinned, status, rules, verify, recheck)
    except Exception as exc:  # our bug or an unforeseen peer input: the peer's outcome, logged loudly
        logger.exception("uid {}: unexpected error while taking in its window-{} submission", uid, window)
        return out.judged(Outcome.INTERNAL_ERROR, f"not scored: internal error {type(exc).__name__}", score=None)


def _take_in(out: Submission, pinned: Pinned | None, status: Status, rules: IntakeRules, verify: Verify,
             recheck: Recheck | None) -> Submission:
    if pinned is None:
        result, detail, attempts = status
        if result is PollResult.REFUSED:  # "no store committed" or "unusable store location: <why>"
            return out.judged(Outcome.NO_STORE, detail or "no store committed", score=None)
        if result in _FAILING:
            return out.judged(Outcome.STORE_FAILING, f"absent (store failing: {detail}; {attempts} attempts)",
                              score=None)
        return out.judged(Outcome.ABSENT, "absent", score=None)
    sighting, data = pinned
    out = _with_evidence(out, sighting)
    if sighting.block >= rules.deadline_block:
        return out.judged(Outcome.LATE, f"late (first seen at block {sighting.block}, deadline "
                                        f"{rules.deadline_block})", score=None)
    try:
        art = verify(data)
        sparse = tuple(decode_sparse(art.encoded))  # the one decode: gates, copy sketch and scoring read this
    except ArtifactError as exc:
        refused = out.judged(Outcome.REJECTED, f"rejected: {type(exc).__name__}: {exc}", score=0.0)
        if recheck is not None and _replaced(data, recheck):
            return mark_replaced(refused, sighting.block)
        return refused
    staleness = rules.model_version - art.header.base_version
    if staleness < 0 or staleness > rules.max_staleness:
        return out.judged(Outcome.STALE, f"stale base version {art.header.base_version} (model at "
                                         f"{rules.model_version})", score=0.0)
    return dataclasses.replace(out, outcome=Outcome.VERIFIED, reason="verified", score=None,
                               detail={**out.detail, "staleness": staleness, "norm": sparse_norm(sparse)},
                               artifact=art, data=data, sparse=sparse)


def _with_evidence(out: Submission, s: Sighting) -> Submission:
    ev = Evidence(first_seen=s.first_seen, seen_after=s.seen_after, block=s.block, nbytes=s.nbytes, sha256=s.sha256)
    return dataclasses.replace(out, evidence=ev, detail={"bytes": s.nbytes, "first_seen_block": s.block})


def mark_replaced(sub: Submission, first_block: int) -> Submission:
    """The key now holds other bytes than those pinned: the upload was replaced, so it is late."""
    cause = sub.reason.split(":")[1].strip() if sub.outcome is Outcome.REJECTED else "refused"
    return sub.judged(Outcome.LATE, f"late (replaced after first seen at block {first_block}; the first bytes "
                                    f"were refused: {cause})", score=None)


def _replaced(first: bytes, recheck: Recheck) -> bool:
    """True when the key now holds other bytes than those first seen."""
    try:
        now = recheck()
    except Exception as exc:  # unreachable now: cannot tell, so the first bytes stand
        logger.debug("recheck failed: {}", exc)
        return False
    return now is not None and hashlib.sha256(now).digest() != hashlib.sha256(first).digest()
