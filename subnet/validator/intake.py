"""From pinned evidence to a verified submission: the scoring stage's first step, one peer at a time.

`take_in` turns what the watcher pinned for one miner and window into a
`Scored` value: absent (never seen, with the watcher's last word on why),
late (first seen at or after the deadline block, or replaced after it was
first seen), rejected (the pinned bytes fail verification, score 0), stale
(built on a model version too old), or verified (ready for the gates and the
loss evaluation). It reads only the pinned bytes, so nothing a miner writes
after the deadline can change the outcome. Every exception raised while
handling the peer becomes that peer's outcome; none leaves this function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

from subnet.codec.errors import ArtifactError
from subnet.codec.wire import Artifact
from subnet.validator.evidence import EvidenceBook
from subnet.validator.watch import PollResult


@dataclass
class Scored:
    uid: int
    hotkey: str
    fragment: int
    score: float | None
    reason: str
    detail: dict = field(default_factory=dict)
    artifact: Artifact | None = None  # verified; decoded only to score it and, if selected, to aggregate
    data: bytes | None = None
    first_seen: float = 0.0
    seen_after: float | None = None  # interval start for copy attribution (evidence.Sighting)

    @property
    def eligible(self) -> bool:
        """Verified, positively scored, not charged: may enter aggregation."""
        return self.artifact is not None and self.score is not None and self.score > 0


Verify = Callable[[bytes], Artifact]  # read_artifact with every expected field pinned; raises ArtifactError
Recheck = Callable[[], "bytes | None"]  # the bytes at the peer's key now (budgeted), None if absent/unreachable


@dataclass(frozen=True, kw_only=True)
class IntakeRules:
    deadline_block: int  # first block after the window
    model_version: int
    max_staleness: int


def take_in(*, window: int, uid: int, hotkey: str, fragment: int, book: EvidenceBook,
            status: tuple[PollResult | None, str, int], rules: IntakeRules, verify: Verify,
            recheck: Recheck | None = None) -> Scored:
    """One peer's submission for `window`, from the pinned bytes only (see the module docstring)."""
    out = Scored(uid=uid, hotkey=hotkey, fragment=fragment, score=None, reason="")
    try:
        return _take_in(out, window, book, status, rules, verify, recheck)
    except Exception as exc:  # our bug or an unforeseen peer input: the peer's outcome, logged loudly
        logger.exception("uid {}: unexpected error while taking in its window-{} submission", uid, window)
        out.score, out.reason, out.artifact = None, f"not scored: internal error {type(exc).__name__}", None
        return out


def _take_in(out: Scored, window: int, book: EvidenceBook, status: tuple[PollResult | None, str, int],
             rules: IntakeRules, verify: Verify, recheck: Recheck | None) -> Scored:
    pinned = book.pinned(window, out.hotkey)
    if pinned is None:
        result, detail, attempts = status
        if result is PollResult.REFUSED:
            out.reason = detail  # "no store committed" or "unusable store location: <why>"
        elif result in (PollResult.FAILED, PollResult.OVER_BUDGET, PollResult.OVERSIZED, PollResult.REJECTED):
            out.reason = f"absent (store failing: {detail}; {attempts} attempts)"
        else:
            out.reason = "absent"
        return out
    sighting, data = pinned
    out.first_seen, out.seen_after = sighting.first_seen, sighting.seen_after
    out.detail = {"bytes": sighting.nbytes, "first_seen_block": sighting.block}
    if sighting.block >= rules.deadline_block:
        out.reason = f"late (first seen at block {sighting.block}, deadline {rules.deadline_block})"
        return out
    try:
        art = verify(data)
    except ArtifactError as exc:
        out.score, out.reason = 0.0, f"rejected: {type(exc).__name__}: {exc}"
        if recheck is not None and _replaced(data, recheck):
            mark_replaced(out, sighting.block)
        return out
    staleness = rules.model_version - art.header.base_version
    if staleness < 0 or staleness > rules.max_staleness:
        out.score = 0.0
        out.reason = f"stale base version {art.header.base_version} (model at {rules.model_version})"
        return out
    out.artifact, out.data = art, data
    out.detail["staleness"] = staleness
    return out


def mark_replaced(out: Scored, first_block: int) -> None:
    """The key now holds other bytes than those pinned: the upload was replaced, so it is late."""
    cause = out.reason.split(":")[1].strip() if out.reason.startswith("rejected:") else "refused"
    out.score, out.artifact, out.data = None, None, None
    out.reason = f"late (replaced after first seen at block {first_block}; the first bytes were refused: {cause})"


def _replaced(first: bytes, recheck: Recheck) -> bool:
    """True when the key now holds other bytes than those first seen."""
    try:
        now = recheck()
    except Exception as exc:  # unreachable now: cannot tell, so the first bytes stand
        logger.debug("recheck failed: {}", exc)
        return False
    return now is not None and hashlib.sha256(now).digest() != hashlib.sha256(first).digest()
