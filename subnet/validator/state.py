"""The validator's persistent state: one JSON file, replaced atomically.

Holds what a restart must not lose: the competition (ratings, leader), the
last window scored, the block of the last weights set or commit (so a restart
never sets weights twice inside the rate limit), a timelocked commit still
waiting for its reveal (so a restart neither commits twice nor forgets to
verify it), each fragment's reference update norm (the norm gate's
yardstick), each miner's running proof-of-work evidence (powevidence.py:
losing it would let every free-rider start over, or make honest miners
prove themselves again) and its held proof-of-work credit (the one window
it may still be paid for late; a file written before credits existed loads
with none). Upload evidence (first-seen bytes and blocks) lives in
evidence.py's own files.
The model itself is persisted beside it by `subnet.node.globalmodel.persist`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subnet.atomic import write_text_atomic
from subnet.errors import ConfigError
from subnet.validator.competition import CompetitionState
from subnet.validator.powevidence import Credits, credits_from_json

STATE_FILE = "validator_state.json"
SCHEMA = 1


@dataclass(kw_only=True)
class ValidatorState:
    competition: CompetitionState = field(default_factory=CompetitionState)
    last_scored_window: int = -1
    last_weights_block: int = -1
    weights_windows: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    # A timelocked weights commit waiting for its reveal (weights_loop.PendingCommit.to_dict()), or None.
    pending_commit: dict[str, Any] | None = None
    # fragment -> reference update norm (EMA of the score-weighted lower median norm of positively scored updates,
    # pipeline.update_ref_norms): the norm gate's yardstick, which uploads that earn little or nothing cannot move
    ref_norms: dict[int, float] = field(default_factory=dict)
    # hotkey -> window of its last full evaluation by this validator (sampling.record_evaluations): the coverage
    # guarantee's clock
    last_evaluated: dict[str, int] = field(default_factory=dict)
    # hotkey -> running proof-of-work evidence (powevidence.update_evidence; used with ScoreConfig.pow_sequential)
    pow_evidence: dict[str, float] = field(default_factory=dict)
    # hotkey -> the held windows it may still be paid for, oldest first (powevidence.HeldCredit; the deferred
    # credit, at most ScoreConfig.pow_credits each); a file from when it was one credit object loads as one
    pow_credits: dict[str, Credits] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "schema": SCHEMA,
            "competition": json.loads(self.competition.to_json()),
            "last_scored_window": self.last_scored_window,
            "last_weights_block": self.last_weights_block,
            "weights_windows": self.weights_windows,
            "identity": self.identity,
            "pending_commit": self.pending_commit,
            "ref_norms": {str(f): v for f, v in self.ref_norms.items()},
            "last_evaluated": dict(self.last_evaluated),
            "pow_evidence": dict(self.pow_evidence),
            "pow_credits": {h: [c.to_dict() for c in cs] for h, cs in self.pow_credits.items()},
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ValidatorState:
        try:
            raw = json.loads(text)
            if raw.get("schema") != SCHEMA:
                raise ValueError(f"unknown schema {raw.get('schema')!r}")
            return cls(
                competition=CompetitionState.from_json(json.dumps(raw["competition"])),
                last_scored_window=int(raw["last_scored_window"]),
                last_weights_block=int(raw["last_weights_block"]),
                weights_windows=int(raw.get("weights_windows", 0)),
                identity=dict(raw.get("identity") or {}),
                pending_commit=_pending(raw.get("pending_commit")),
                ref_norms={int(f): float(v) for f, v in (raw.get("ref_norms") or {}).items()
                           if float(v) > 0 and float(v) < float("inf")},
                last_evaluated={str(h): int(w) for h, w in (raw.get("last_evaluated") or {}).items()},
                pow_evidence={str(h): float(e) for h, e in (raw.get("pow_evidence") or {}).items()
                              if 0.0 <= float(e) < float("inf")},
                pow_credits={str(h): cs for h, c in (raw.get("pow_credits") or {}).items()
                             if (cs := credits_from_json(c))},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"validator state is malformed: {exc}",
                              remediation="move the state file away to start fresh") from exc

    def save(self, state_dir: str | Path) -> Path:
        """tmp file + fsync + os.replace + directory fsync: a kill -9 leaves the old or the new file."""
        return write_text_atomic(Path(state_dir).expanduser() / STATE_FILE, self.to_json())

    @classmethod
    def load(cls, state_dir: str | Path, identity: dict[str, Any]) -> ValidatorState:
        path = Path(state_dir).expanduser() / STATE_FILE
        if not path.exists():
            return cls(identity=dict(identity))
        state = cls.from_json(path.read_text())
        if state.identity and state.identity != dict(identity):
            raise ConfigError(f"validator state in {path} belongs to {state.identity}, not {identity}",
                              remediation="use another --state_dir for another hotkey/netuid/model")
        state.identity = dict(identity)
        return state


def _pending(raw: Any) -> dict[str, Any] | None:
    """A persisted pending commit (absent in files written before commit-reveal support)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or "commit_block" not in raw:
        raise ValueError(f"pending_commit must be an object with commit_block, got {raw!r}")
    return dict(raw)
