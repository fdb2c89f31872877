"""Name what happened to a peer's submission in a `window_scored` event.

Why: dashboards and `tessera status` need a small fixed set of outcomes to
count. The validator writes the `Outcome` enum's value
(subnet/validator/outcome.py) in each uid's `outcome` field next to the
human `reason`; that is the answer. Event logs written before the field
existed carry only the reason, so the prefixes below (the ones the validator
wrote then) classify those; anything else lands in `other`.
"""

from __future__ import annotations

import re
from typing import Any

from subnet.validator.outcome import Outcome

# Legacy events (no `outcome` field): (reason prefix, outcome), first match wins:
# "absent (store failing ..." before "absent".
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("absent (store failing", "store_failing"),
    ("absent", "absent"),
    ("late", "late"),
    ("rejected", "rejected"),
    ("stale", "stale"),
    ("copy tie", "copy_tie"),
    ("copy of", "copy"),
    ("shares a store", "shared_store"),
    ("norm outlier", "norm_outlier"),
    ("below the noise floor", "below_floor"),
    ("not scored: evaluation error", Outcome.EVAL_ERROR.value),
    ("not scored: internal error", Outcome.INTERNAL_ERROR.value),
    ("not scored", "not_scored"),
    ("no store committed", "no_store"),
    ("unusable store location", "no_store"),
    ("no proof of work", "no_proof_of_work"),
)

_ENUM = {o.value for o in Outcome if o is not Outcome.VERIFIED}  # VERIFIED is never a window's final word

OUTCOMES: tuple[str, ...] = tuple(dict.fromkeys(
    ["scored", "no_improvement", "other"] + [o for _, o in _PREFIXES] + [o.value for o in Outcome if o.value in _ENUM]))
"""Every value `peer_outcome` returns."""

_STORE_FAILING = re.compile(r"store failing: (?P<detail>.*?)(?:; \d+ attempts\))?$")
_EXC_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::|$)")


def peer_outcome(score: Any, reason: Any, outcome: Any = None) -> str:
    """One of `OUTCOMES` for a uid's (score, reason, outcome) in a `window_scored` event."""
    if isinstance(outcome, str) and outcome in _ENUM:
        return outcome
    text = str(reason or "").strip()
    for prefix, outcome in _PREFIXES:
        if text.startswith(prefix):
            return outcome
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        return "scored" if score > 0 else "no_improvement"
    return "other"


def store_error_kind(reason: Any) -> str | None:
    """The kind of peer-store failure behind a `store_failing` reason (exception name or budget), else None.

    "absent (store failing: TimeoutError: read timed out; 3 attempts)" -> "TimeoutError";
    "absent (store failing: store used its 60s budget this window (...))" -> "over_budget".
    """
    text = str(reason or "").strip()
    if not text.startswith("absent (store failing"):
        return None
    m = _STORE_FAILING.search(text)
    detail = m.group("detail").strip() if m else ""
    if detail.startswith("store used its"):
        return "over_budget"
    name = _EXC_NAME.match(detail)
    return name.group(1) if name else "unknown"
