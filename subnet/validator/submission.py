"""One miner's submission for one window, as it flows through the validator's pipeline.

Why one type: the validator used to carry a submission through five shapes in
three packages and name what happened to it in free strings matched by
prefix. Here there is one `Submission` value per uid per window. Every stage
(pipeline.py) returns it with an `Outcome` (an enum the tests, the telemetry
and the competition read) plus a human `reason` and a `detail` dict, or passes
it on. The verified artifact is decoded to its sparse view *once*, at
verification; copy detection, the norm gate and scoring read that view, and
only the contributions aggregation selects are densified (`dense()`).

It refuses nothing by itself: it is a value. What a peer sent is judged by
the stages; a `Submission` only records the judgement.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from subnet.codec.sparseloco import SparseTensor
from subnet.codec.wire import Artifact
from subnet.validator.outcome import Outcome


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """When this validator first had the bytes (evidence.Sighting, plus the miner's commitment block)."""

    first_seen: float
    """Unix seconds (our clock) when the bytes were in hand: the upload's interval ends here."""
    seen_after: float | None
    """Unix seconds of the store's last "absent" answer (the interval's start); None: never asked before."""
    block: int
    """Chain block read after the bytes arrived: what the deadline is judged by."""
    nbytes: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class Submission:
    """One uid's window submission and the pipeline's judgement of it (see the module docstring)."""

    uid: int
    hotkey: str
    fragment: int
    outcome: Outcome = Outcome.ABSENT
    reason: str = "absent"
    """Human-readable outcome (the event log's `reason`; telemetry and the demo print it)."""
    score: float | None = None
    """Held-out improvement; 0.0 for refused or charged uploads; None when nothing was scored."""
    detail: Mapping[str, Any] = field(default_factory=dict)
    """Measured facts (bytes, first_seen_block, staleness, norm, improvements, ...), JSON-serialisable."""
    evidence: Evidence | None = None
    commit_block: int = 0
    """Block of the miner's store commitment (copy-detection tie-breaker)."""
    data: bytes | None = None
    """The pinned artifact bytes (mirrored into the lead's store when selected)."""
    artifact: Artifact | None = None
    """The verified artifact; None once a stage refused or charged the submission."""
    sparse: tuple[SparseTensor, ...] | None = None
    """The artifact's update decoded once: flat indices and fp32 values per tensor."""

    # -- views ------------------------------------------------------------------------------------
    @property
    def first_seen(self) -> float:
        return self.evidence.first_seen if self.evidence is not None else 0.0

    @property
    def seen_after(self) -> float | None:
        return self.evidence.seen_after if self.evidence is not None else None

    @property
    def norm(self) -> float | None:
        value = self.detail.get("norm")
        return None if value is None else float(value)

    @property
    def pending(self) -> bool:
        """Verified and not judged yet: the gates and the evaluation still have their say."""
        return self.outcome is Outcome.VERIFIED and self.sparse is not None

    @property
    def eligible(self) -> bool:
        """Verified, positively scored, not charged: may enter aggregation."""
        return (self.outcome is Outcome.SCORED and self.sparse is not None and self.score is not None
                and self.score > 0)

    @property
    def aggregable(self) -> bool:
        """May enter aggregation: eligible, or unpaid but within noise of zero (pipeline.unpaid_aggregation)."""
        return self.eligible or (self.sparse is not None and bool(self.detail.get("aggregated_unpaid"))
                                 and self.score is not None and math.isfinite(self.score))

    # -- transitions ------------------------------------------------------------------------------
    def judged(self, outcome: Outcome, reason: str, *, score: float | None, keep_update: bool = False,
               **detail: Any) -> Submission:
        """This submission with a stage's verdict; the update is dropped unless `keep_update`."""
        changes: dict[str, Any] = dict(outcome=outcome, reason=reason, score=score)
        if detail:
            changes["detail"] = {**self.detail, **detail}
        if not keep_update:
            changes.update(artifact=None, sparse=None, data=None)
        return dataclasses.replace(self, **changes)

    def with_detail(self, **detail: Any) -> Submission:
        return dataclasses.replace(self, detail={**self.detail, **detail})

    def dense(self) -> dict[str, torch.Tensor]:
        """The update as dense fp32 tensors (aggregation only: the one densification).

        Bit-identical to `codec.decode` of the same bytes (zeros, then the same
        entries put in place), so the lead applies what followers decode.
        """
        if self.sparse is None:
            raise ValueError(f"uid {self.uid}: no verified update to densify")
        return densify(self.sparse)


def densify(sparse: Sequence[SparseTensor]) -> dict[str, torch.Tensor]:
    """Dense fp32 tensors from decoded sparse entries (zeros where nothing was sent)."""
    out: dict[str, torch.Tensor] = {}
    for s in sparse:
        buf = torch.zeros(s.shape, dtype=torch.float32)
        buf.view(-1).index_put_((s.index,), s.values)
        out[s.name] = buf
    return out


def sparse_norm(sparse: Sequence[SparseTensor]) -> float:
    """L2 norm of an update from its sparse entries (float64 accumulation, no dense decode)."""
    return math.sqrt(sum(float((t.values.double() ** 2).sum()) for t in sparse))


def event_row(sub: Submission, norm_score: float | None) -> dict[str, Any]:
    """The `window_scored` event's entry for one uid: score, outcome name, human reason and detail."""
    return {"score": sub.score, "norm_score": norm_score, "reason": sub.reason, "outcome": sub.outcome.value,
            "fragment": sub.fragment, **sub.detail}
