"""What the web dashboard shows, folded incrementally from a run's event log.

Why: the event log is the one source (events.py); the dashboard must say what
the scoreboard, the report, `tessera status` and the metrics say. So
`DashboardFeed` tails the event directory with `EventTail` (only the bytes
appended since the last read; a partial trailing line waits for its newline),
folds each record into the shared `RunState` plus a few views of its own (the
window timeline, weights calls, chain and store health), and hands out one
JSON-safe snapshot. It refuses to let a record break it: a line that is not
JSON is skipped by the reader, a record whose fields have the wrong shapes is
counted in `source.rejected` and dropped, and a log that shrank (rotated or
truncated) is re-read from the start. It never writes and never reads the
chain, a store or the model's tensors (the model file's header only, for its
version). `dashboard_http` serves it.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from subnet.telemetry.events import SUFFIX, EventTail, as_number, uid_map
from subnet.telemetry.outcomes import OUTCOMES, peer_outcome, store_error_kind
from subnet.telemetry.state import RunState

MAX_LOSS_POINTS = 2000
"""Points of the loss curve kept (the oldest go first): bounded memory over a weeks-long run."""
MAX_SCORES_PER_UID = 200
"""Windows of scores kept per uid for its mean (the leaderboard's `mean_score` is over these)."""
MAX_CALLS = 20
"""Weights calls (set / committed / revealed / failed) listed."""
STORE_USAGE_EVERY_S = 60.0
"""Least seconds between two walks of the state directory for its disk usage."""


@dataclass(kw_only=True)
class WindowRow:
    """One scored window on the timeline: who took part, with what outcome, on which fragment."""

    window: int
    version: int | None = None
    heldout_loss: float | None = None
    heldout_loss_after: float | None = None
    seconds: float | None = None
    leader: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    peers: dict[int, dict[str, Any]] = field(default_factory=dict)  # uid -> {outcome, reason, score, fragment}
    selected: list[int] = field(default_factory=list)  # uids the manifest of this window aggregated


@dataclass(kw_only=True)
class Health:
    """Chain and store trouble the nodes reported, by kind."""

    chain_errors: dict[str, int] = field(default_factory=dict)
    store_errors: dict[str, int] = field(default_factory=dict)  # "own:<kind>" | "peer:<kind>"
    last_chain_error: dict[str, Any] | None = None
    last_store_error: dict[str, Any] | None = None
    late_uploads: int = 0


def _int(x: Any) -> int | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def _num(x: Any) -> float | None:
    v = as_number(x)
    return v if v is not None and math.isfinite(v) else None


def _short(text: Any, n: int = 200) -> str | None:
    return None if text is None else str(text)[:n]


class DashboardFeed:
    """The dashboard's state over one event directory (plus, optionally, the node's state directory).

    Thread-safe: the HTTP server calls `snapshot()` from its request threads.
    """

    def __init__(self, events_dir: str | os.PathLike[str], *, state_dir: str | os.PathLike[str] | None = None,
                 history: int = 48, min_poll_s: float = 0.5, validator: str = "") -> None:
        self.events_dir = Path(events_dir).expanduser()
        self.validator = str(validator or "").strip()
        self.state_dir = None if state_dir is None else Path(state_dir).expanduser()
        self.history = int(history)
        self.min_poll_s = float(min_poll_s)
        self._lock = threading.Lock()
        self._usage: tuple[float, dict[str, Any] | None] = (-math.inf, None)
        self._reset()

    def _reset(self) -> None:
        self._tail = EventTail(self.events_dir)
        self._sizes: dict[tuple[int, int], int] = {}
        self.run = RunState()
        self.windows: deque[WindowRow] = deque(maxlen=self.history)
        self.calls: deque[dict[str, Any]] = deque(maxlen=MAX_CALLS)
        self.health = Health()
        self.pending: dict[str, Any] | None = None
        self.lead: dict[str, Any] | None = None
        self.round: int | None = None
        self.rejected = 0
        self.last_rejected: str | None = None
        self._polled = -math.inf
        self._shown: tuple[int | None, str | None] | None = None  # (uid, hotkey) of the validator shown
        self.other_validators: dict[str, int] = {}  # "uid/hotkey" -> records left out

    # -- reading ------------------------------------------------------------------------------------------

    def _shrank(self) -> bool:
        """True when a file got shorter than what was read of it (truncated in place): re-read all.

        A rotated log (renamed away, a fresh file at its path) is a new inode,
        not a shrink: the tail follows both by inode, so nothing is re-read.
        """
        shrank = False
        for f in sorted(self.events_dir.glob(f"*{SUFFIX}")) if self.events_dir.is_dir() else [self.events_dir]:
            try:
                st = f.stat()
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_size < self._sizes.get(key, 0):
                shrank = True
            self._sizes[key] = st.st_size
        return shrank

    def poll(self, *, force: bool = False) -> int:
        """Fold the records appended since the last poll; the number folded (at most one read per min_poll_s)."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._polled < self.min_poll_s:
                return 0
            self._polled = now
            if self._shrank():
                logger.info("dashboard: an event log in {} shrank; reading it again from the start", self.events_dir)
                self._reset()
                self._shrank()
                self._polled = now
            try:
                records = self._tail.poll()
            except OSError as exc:  # the directory went away, permissions: show what we have
                logger.warning("dashboard: cannot read {}: {}", self.events_dir, exc)
                return 0
            for rec in records:
                self._fold(rec)
            self._trim()
            return len(records)

    def _is_shown(self, rec: Mapping[str, Any]) -> bool:
        """One validator's view only: several validators' windows, ratings and weights must not be mixed.

        Records of other components (miners, devnet, demo) are always folded.
        The validator shown is `validator` (a uid or hotkey) or else the first
        one met; the others' records are counted in `other_validators`.
        """
        if rec.get("component") != "validator":
            return True
        uid, hotkey = _int(rec.get("uid")), rec.get("hotkey")
        hotkey = None if hotkey is None else str(hotkey)
        if uid is None and hotkey is None:  # unattributed (hand-written or legacy): nothing to tell apart
            return True
        if self._shown is None:
            wanted = self.validator
            if wanted and wanted not in (str(uid), hotkey):
                self._count_other(uid, hotkey)
                return False
            self._shown = (uid, hotkey)
            return True
        if (uid, hotkey) == self._shown or (uid is not None and uid == self._shown[0] and hotkey is None) \
                or (hotkey is not None and hotkey == self._shown[1] and uid is None):
            return True
        self._count_other(uid, hotkey)
        return False

    def _count_other(self, uid: int | None, hotkey: str | None) -> None:
        key = f"{uid}/{hotkey}"
        if key not in self.other_validators:
            logger.info("dashboard: records of validator {} are left out (showing {})", key,
                        self.validator or (self._shown and f"{self._shown[0]}/{self._shown[1]}") or "none yet")
        self.other_validators[key] = self.other_validators.get(key, 0) + 1

    def _fold(self, rec: Mapping[str, Any]) -> None:
        if not self._is_shown(rec):
            return
        try:
            self.run.apply(rec)
            handler = getattr(self, "_on_" + str(rec.get("event")), None)
            if handler is not None:
                handler(rec)
        except Exception as exc:  # noqa: BLE001 - a record with the wrong shapes is dropped, never fatal
            self.rejected += 1
            self.last_rejected = f"{rec.get('event')!r}: {type(exc).__name__}: {exc}"[:300]
            logger.warning("dashboard: dropped a malformed {!r} record: {}: {}", rec.get("event"),
                           type(exc).__name__, exc)

    def _trim(self) -> None:
        for series in (self.run.loss_series, self.run.loss_after_series):
            del series[:-MAX_LOSS_POINTS]
        for m in self.run.miners.values():
            del m.scores[:-MAX_SCORES_PER_UID]

    # -- the views of our own ----------------------------------------------------------------------------

    def _on_window_scored(self, ev: Mapping[str, Any]) -> None:
        w = _int(ev.get("window"))
        if w is None:
            return
        row = WindowRow(window=w, version=_int(ev.get("version")), heldout_loss=_num(ev.get("heldout_loss")),
                        seconds=_num(ev.get("seconds")), leader=_int(ev.get("leader")))
        for uid, s in uid_map(ev.get("scores")).items():
            s = s if isinstance(s, Mapping) else {}
            outcome = peer_outcome(s.get("score"), s.get("reason"))
            row.counts[outcome] = row.counts.get(outcome, 0) + 1
            row.peers[uid] = {"outcome": outcome, "reason": _short(s.get("reason")), "score": _num(s.get("score")),
                              "fragment": _int(s.get("fragment"))}
            kind = store_error_kind(s.get("reason"))
            if kind is not None:
                key = f"peer:{kind}"
                self.health.store_errors[key] = self.health.store_errors.get(key, 0) + 1
        self.round = _int(ev.get("round")) if ev.get("round") is not None else self.round
        # One row per window: a validator restarted mid-window scores it again, the later row wins.
        for i, old in enumerate(self.windows):
            if old.window == w:
                row.selected = old.selected
                del self.windows[i]
                break
        self.windows.append(row)

    def _on_manifest_published(self, ev: Mapping[str, Any]) -> None:
        w = _int(ev.get("window"))
        self.lead = {"uid": _int(ev.get("uid")), "hotkey": ev.get("hotkey"), "window": w,
                     "source": "published the last manifest"}
        selected = [u for u in (_int(s.get("uid")) for s in ev.get("selected") or [] if isinstance(s, Mapping))
                    if u is not None]
        for row in self.windows:
            if row.window == w:
                row.selected = selected
                row.heldout_loss_after = _num(ev.get("heldout_loss_after"))

    def _on_weights_set(self, ev: Mapping[str, Any]) -> None:
        self._call(ev)

    def _on_weights_revealed(self, ev: Mapping[str, Any]) -> None:
        self._call(ev)

    def _call(self, ev: Mapping[str, Any]) -> None:
        outcome = ev.get("outcome") or ("set" if ev.get("success") else "failed")
        self.calls.append({"ts": _num(ev.get("ts")), "event": ev.get("event"), "block": _int(ev.get("block")),
                           "outcome": str(outcome), "success": bool(ev.get("success")),
                           "error": _short(ev.get("error")), "detail": _short(ev.get("detail"))})
        pending = ev.get("pending")
        if ev.get("event") == "weights_revealed" or pending is not None or outcome in ("set", "committed_pending"):
            self.pending = dict(pending) if isinstance(pending, Mapping) else None

    def _on_chain_error(self, ev: Mapping[str, Any]) -> None:
        kind = str(ev.get("kind") or "unknown")
        self.health.chain_errors[kind] = self.health.chain_errors.get(kind, 0) + 1
        self.health.last_chain_error = {"ts": _num(ev.get("ts")), "component": ev.get("component"),
                                        "uid": _int(ev.get("uid")), "kind": kind, "error": _short(ev.get("error"))}

    def _on_store_error(self, ev: Mapping[str, Any]) -> None:
        kind = str(ev.get("kind") or store_error_kind(ev.get("error")) or "unknown")
        key = f"{ev.get('store') or 'own'}:{kind}"
        self.health.store_errors[key] = self.health.store_errors.get(key, 0) + 1
        self.health.last_store_error = {"ts": _num(ev.get("ts")), "component": ev.get("component"),
                                        "uid": _int(ev.get("uid")), "kind": kind, "error": _short(ev.get("error"))}

    def _on_late(self, ev: Mapping[str, Any]) -> None:
        self.health.late_uploads += 1

    # -- the snapshot --------------------------------------------------------------------------------------

    def _state_dir_view(self) -> dict[str, Any] | None:
        """The node's model file (header only) and disk usage, at most once a minute (a walk of the directory)."""
        if self.state_dir is None:
            return None
        at, cached = self._usage
        if cached is not None and time.monotonic() - at < STORE_USAGE_EVERY_S:
            return cached
        from subnet.telemetry.status import model_status, store_usage

        try:
            model = asdict(model_status(self.state_dir, with_hash=False))
            usage = asdict(store_usage(self.state_dir, self.events_dir if self.events_dir.is_dir() else None,
                                       None, None))
            view: dict[str, Any] = {"model": model, "usage": usage}
        except Exception as exc:  # noqa: BLE001 - a state dir being written: say so, show the rest
            view = {"error": f"{type(exc).__name__}: {exc}"}
        self._usage = (time.monotonic(), view)
        return view

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, JSON-safe (`/api/state`; the other endpoints are its parts)."""
        self.poll()
        with self._lock:
            run = self.run
            board = sorted(run.miners.values(), key=lambda m: (-(m.ordinal if m.ordinal is not None else -math.inf),
                                                                -m.weight, m.uid))
            leaderboard = [{
                "rank": i + 1, "uid": m.uid, "hotkey": m.hotkey, "behaviour": m.behaviour, "fragment": m.fragment,
                "score": _num(m.score), "norm_score": _num(m.norm_score), "mean_score": _num(m.mean_score),
                "rounds": m.rounds, "mu": _num(m.mu), "sigma": _num(m.sigma), "ordinal": _num(m.ordinal),
                "weight": _num(m.weight) or 0.0, "selected": m.selected, "uploads": m.uploads,
                "last_upload_window": _int(m.last_upload_window),
                "outcome": peer_outcome(m.score, m.reason) if m.reason is not None or m.score is not None else None,
                "reason": _short(m.reason), "leader": m.uid == run.leader,
            } for i, m in enumerate(board)]
            windows = [asdict(r) for r in self.windows]
            for r in windows:  # JSON keys are strings anyway; say so here rather than in the browser
                r["peers"] = {str(u): v for u, v in sorted(r["peers"].items())}
            last = self.windows[-1] if self.windows else None
            fragments: dict[str, list[int]] = {}
            if last is not None:
                for uid, p in sorted(last.peers.items()):
                    fragments.setdefault(str(p.get("fragment")), []).append(uid)
            summary = {
                "window": run.window, "version": run.version, "block": run.block, "model_hash": run.model_hash,
                "heldout_loss": _num(run.heldout_loss), "leader": run.leader, "round": self.round,
                "validator_uid": _int(run.validator_uid), "validator_hotkey": run.validator_hotkey,
                "windows_scored": run.windows_scored, "manifests": run.manifests, "lead": self.lead,
                "miners": len(run.miners),
                "weights_ok": run.weights_set_ok, "weights_failed": run.weights_set_failed,
                "last_weights_error": _short(run.last_weights_error),
            }
            return {
                "generated_at": time.time(),
                "source": {"events_dir": str(self.events_dir),
                           "state_dir": None if self.state_dir is None else str(self.state_dir),
                           "files": len(self._sizes), "events": run.events_seen, "rejected": self.rejected,
                           "last_rejected": self.last_rejected, "last_event_ts": run.last_ts,
                           "validator_shown": None if self._shown is None else
                           {"uid": self._shown[0], "hotkey": self._shown[1]},
                           "other_validators": dict(self.other_validators)},
                "summary": summary,
                "leaderboard": leaderboard,
                "loss": {"before": [[w, v] for w, v in run.loss_series if _num(v) is not None],
                         "after": [[w, v] for w, v in run.loss_after_series if _num(v) is not None]},
                "windows": windows,
                "outcomes": list(OUTCOMES),
                "fragments": {"window": None if last is None else last.window, "uids": fragments,
                              "selected": [] if last is None else last.selected},
                "weights": {"current": {str(m.uid): m.weight for m in sorted(run.miners.values(), key=lambda m: m.uid)
                                        if m.weight},
                            "calls": list(self.calls), "pending": self.pending},
                "health": {**asdict(self.health), "state_dir": self._state_dir_view()},
            }


SECTIONS = ("summary", "leaderboard", "loss", "windows", "fragments", "weights", "health", "source")
"""The parts of the snapshot served on their own (`/api/<section>`)."""
