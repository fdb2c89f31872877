"""Name what happened to a peer's submission, from the `reason` the validator wrote in `window_scored`.

Why: the validator records one free-text reason per uid and window (intake.py,
scoring.py, loop.py); dashboards and `tessera status` need a small fixed set
of outcomes to count. The prefixes below are the ones those modules write;
anything new lands in `other` until it is named here.
"""

from __future__ import annotations

import re
from typing import Any

# (reason prefix, outcome), first match wins: "absent (store failing ..." before "absent".
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
    ("not scored", "not_scored"),
    ("no store committed", "no_store"),
    ("unusable store location", "no_store"),
    ("no proof of work", "no_proof_of_work"),
)

OUTCOMES: tuple[str, ...] = ("scored", "no_improvement", "other") + tuple(dict.fromkeys(o for _, o in _PREFIXES))
"""Every value `peer_outcome` returns."""

_STORE_FAILING = re.compile(r"store failing: (?P<detail>.*?)(?:; \d+ attempts\))?$")
_EXC_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::|$)")


def peer_outcome(score: Any, reason: Any) -> str:
    """One of `OUTCOMES` for a uid's (score, reason) in a `window_scored` event."""
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
