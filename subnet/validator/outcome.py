"""What happened to one uid's submission in one window: the validator's `Outcome` enum.

Why its own module: the telemetry (subnet/telemetry/outcomes.py) counts these
names without importing torch or the codec; the pipeline (pipeline.py) sets
them on `submission.Submission` values. No logic here beyond which outcomes
are charged.
"""

from __future__ import annotations

from enum import Enum


class Outcome(str, Enum):
    """What happened to one uid's submission in one window (the value is the telemetry label)."""

    ABSENT = "absent"  # nothing pinned before scoring (the store answered "no object", or never asked)
    STORE_FAILING = "store_failing"  # nothing pinned: the store failed, timed out or used its budget
    NO_STORE = "no_store"  # no store committed, or the committed location is unusable
    LATE = "late"  # first seen at or after the deadline block, or replaced after it was first seen
    REJECTED = "rejected"  # the pinned bytes fail verification (signature, identity, shapes, ...)
    STALE = "stale"  # built on a model version too old (or newer than ours)
    VERIFIED = "verified"  # passed verification, not judged yet (no stage's final word)
    COPY = "copy"  # near-duplicate of an upload seen earlier (charged, slashed)
    COPY_TIE = "copy_tie"  # near-duplicate, order unknown, the update fits the twin's pages better (unslashed)
    SHARED_STORE = "shared_store"  # commits the same store as an earlier-committed hotkey (sybil, slashed)
    NORM_OUTLIER = "norm_outlier"  # norm far above the fragment's reference (scaled-up update)
    NOT_SAMPLED = "not_sampled"  # passed the cheap checks, not drawn for the full evaluation (ratings untouched)
    EMPTY = "empty"  # an all-zero update (nothing to evaluate)
    NO_PROOF_OF_WORK = "no_proof_of_work"  # fits its assigned pages no better than pages it never saw
    NO_IMPROVEMENT = "no_improvement"  # evaluated: held-out loss did not improve (or the loss was non-finite)
    BELOW_FLOOR = "below_floor"  # improved held-out loss by less than the noise floor
    EVAL_ERROR = "eval_error"  # the evaluation raised (our bug or an unforeseen input): not scored
    INTERNAL_ERROR = "internal_error"  # taking the submission in raised (our bug): not scored
    SCORED = "scored"  # positively scored: competes, may be aggregated

    @property
    def slashed(self) -> bool:
        """Charged outcomes: ranked last and barred from weight for a while (competition `slashed`)."""
        return self in (Outcome.COPY, Outcome.SHARED_STORE)
