"""A network arm cut short, recovered from the progress lines `run_network` prints (issue 12).

Why: `run_network` returns its curve only at the end, and on the shared box a 1,000-step arm may not
finish before a deadline. Its per-round held-out losses are on stderr (one line per round), so a
killed run still says how far it got; this turns those lines back into a `run_network`-shaped result,
marked partial, so it can be compared with the same seed's centralized curve at equal tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PROGRESS = re.compile(
    r"network seed (?P<seed>\d+) (?P<label>[^:]+): round (?P<round>\d+) tokens (?P<tokens>\d+) "
    r"loss (?P<loss>[0-9.eE+-]+|nan|inf) kept (?P<kept>\d+)(?: uploaded (?P<uploaded>\d+))? \[(?P<secs>\d+)s\]\Z")


class PartialLogError(ValueError):
    """The log holds no usable progress for the arm asked for."""


@dataclass(frozen=True, kw_only=True)
class ProgressPoint:
    """One round of a network arm as printed: held-out loss after the round's outer step."""

    seed: int
    label: str
    round: int
    tokens: int
    loss: float
    kept: int
    uploaded: int | None
    """Bytes all miners uploaded so far (only in logs of runs that print it)."""
    seconds: int


def format_progress(*, seed: int, label: str, round: int, tokens: int, loss: float, kept: int, uploaded: int,
                    seconds: float) -> str:
    """The line run_network prints after each round (read back by read_progress)."""
    return (f"network seed {seed} {label}: round {round} tokens {tokens} loss {loss:.4f} kept {kept} "
            f"uploaded {uploaded} [{seconds:.0f}s]")


def read_progress(text: str, *, seed: int, label: str) -> list[ProgressPoint]:
    """The arm's rounds in order; raises PartialLogError if absent or not consecutive from round 1."""
    points = []
    for line in text.splitlines():
        m = PROGRESS.match(line.strip())
        if m and int(m["seed"]) == seed and m["label"] == label:
            points.append(ProgressPoint(seed=seed, label=label, round=int(m["round"]), tokens=int(m["tokens"]),
                                        loss=float(m["loss"]), kept=int(m["kept"]),
                                        uploaded=int(m["uploaded"]) if m["uploaded"] else None,
                                        seconds=int(m["secs"])))
    if not points:
        raise PartialLogError(f"no progress lines for seed {seed} {label!r}")
    if [p.round for p in points] != list(range(1, len(points) + 1)):
        raise PartialLogError(f"seed {seed} {label!r}: rounds are not 1..n consecutive (two runs in one log?)")
    return points


def partial_network(points: list[ProgressPoint], *, rounds: int, initial: tuple[int, float], miners: int,
                    artifact_bytes: float) -> dict[str, Any]:
    """A run_network-shaped result from the first `rounds` points.

    `initial`: (0, loss) of the untrained model, the centralized curve's first point (same seed, same
    init, same evaluation pages). Upload per miner: the log's byte count where it has one, else
    `artifact_bytes` (len() of one real signed artifact of this codec, whose size is fixed by k per
    chunk) x rounds, and `upload_source` says which.
    """
    if rounds > len(points):
        raise PartialLogError(f"asked for {rounds} rounds, the log has {len(points)}")
    used = points[:rounds]
    last = used[-1]
    if last.uploaded is not None:
        per_miner, source = last.uploaded / miners, "measured (progress log)"
    else:
        per_miner, source = artifact_bytes * rounds, "len() of one signed artifact per fragment x rounds"
    return {
        "curve": {"tokens": [initial[0]] + [p.tokens for p in used], "loss": [initial[1]] + [p.loss for p in used]},
        "seconds": float(last.seconds), "uploaded_bytes_per_miner": {uid: per_miner for uid in range(miners)},
        "upload_source": source, "kept_per_round": [p.kept for p in used], "partial": True,
        "rounds_done": rounds, "rounds_in_log": len(points),
    }
