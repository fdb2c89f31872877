"""Upload evidence: the bytes each miner had in its store before the deadline, pinned when first seen.

The deadline binds bytes, not keys (DESIGN.md, Protocol). When the watcher
first reads a miner's artifact for window `w` it keeps a copy of those exact
bytes here, with their sha256, our clock time and the chain block read *after*
the bytes arrived (so the block can only over-state the upload time, never
under-state it). Scoring uses only the pinned copy: whatever the miner puts at
its key later (its "real work" after the deadline, or another miner's update
re-signed) is never scored, and copy attribution uses the time the scored
bytes first appeared.

Layout under `<state_dir>/evidence/`: `index.json` (the sightings) and one
`<window>/<hotkey>.<fragment>.bin` per pinned artifact, every file written
atomically, so a kill -9 loses at most the sighting being recorded (which the
next poll records again, with a later block). Access is thread-safe: the
watcher thread records while the scoring thread reads.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from loguru import logger

from subnet.atomic import write_bytes_atomic, write_text_atomic

INDEX = "index.json"
SCHEMA = 1


@dataclass(frozen=True, kw_only=True)
class Sighting:
    """One miner's window-`w` upload as this validator first read it."""

    window: int
    hotkey: str
    fragment: int
    first_seen: float  # unix seconds (our clock) when the bytes were in hand: the interval's end
    block: int  # chain block read after the bytes arrived: the deadline evidence
    seen_after: float | None  # unix seconds (our clock) of the last "absent" answer's request; None: never
    sha256: str
    nbytes: int


class EvidenceBook:
    """Pinned artifacts and their sightings, persisted under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self._lock = threading.Lock()
        self._sightings: dict[int, dict[str, Sighting]] = {}
        self._load()

    # -- persistence ------------------------------------------------------------------------------
    def _load(self) -> None:
        path = self.root / INDEX
        if not path.exists():
            return
        try:
            raw = json.loads(path.read_text())
            if raw.get("schema") != SCHEMA:
                raise ValueError(f"schema {raw.get('schema')!r}")
            for w, rows in raw["sightings"].items():
                for hk, row in rows.items():
                    s = Sighting(**{"seen_after": None, **row})
                    if self._blob(s).is_file():
                        self._sightings.setdefault(int(w), {})[hk] = s
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # Evidence is per window and re-collectable: losing it costs one window's sightings.
            logger.warning("ignoring unreadable upload evidence {}: {}", path, exc)
            self._sightings = {}

    def _save_locked(self) -> None:
        body = {"schema": SCHEMA,
                "sightings": {str(w): {hk: asdict(s) for hk, s in rows.items()} for w, rows in self._sightings.items()}}
        write_text_atomic(self.root / INDEX, json.dumps(body, sort_keys=True))

    def _blob(self, s: Sighting) -> Path:
        return self.root / str(s.window) / f"{s.hotkey}.{s.fragment}.bin"

    # -- API --------------------------------------------------------------------------------------
    def record(self, sighting: Sighting, data: bytes) -> bool:
        """Pin `data` as `sighting`; False (nothing changes) if that miner's window already has a pin."""
        with self._lock:
            rows = self._sightings.setdefault(sighting.window, {})
            if sighting.hotkey in rows:
                return False
            write_bytes_atomic(self._blob(sighting), data)  # the bytes first, then the index that names them
            rows[sighting.hotkey] = sighting
            self._save_locked()
            return True

    def sighting(self, window: int, hotkey: str) -> Sighting | None:
        with self._lock:
            return self._sightings.get(window, {}).get(hotkey)

    def pinned(self, window: int, hotkey: str) -> tuple[Sighting, bytes] | None:
        """The sighting and its exact bytes, or None (never seen, or the pinned file is gone or altered)."""
        s = self.sighting(window, hotkey)
        if s is None:
            return None
        try:
            data = self._blob(s).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != s.sha256:
            logger.warning("pinned artifact of {} for window {} does not match its hash; dropped", hotkey, window)
            return None
        return s, data

    def hotkeys(self, window: int) -> set[str]:
        with self._lock:
            return set(self._sightings.get(window, {}))

    def prune(self, before_window: int) -> None:
        """Forget windows older than `before_window` (scored and applied: evidence no longer needed)."""
        with self._lock:
            old = [w for w in self._sightings if w < before_window]
            for w in old:
                for s in self._sightings.pop(w).values():
                    self._blob(s).unlink(missing_ok=True)
                try:
                    (self.root / str(w)).rmdir()
                except OSError:
                    pass
            if old:
                self._save_locked()
            # pins whose index entry never landed (kill -9 between the two writes)
            for d in self.root.glob("[0-9]*"):
                if d.is_dir() and d.name.isdigit() and int(d.name) < before_window:
                    shutil.rmtree(d, ignore_errors=True)
