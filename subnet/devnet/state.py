"""Devnet persistence: an in-memory key-value state mirrored to SQLite (WAL).

One writer (the node's block producer) owns the state. Keys are short strings
("acct:<ss58>", "net:<netuid>", ...) holding JSON values; every block is one
SQLite transaction writing the keys it changed plus the block row, so a crash
(even kill -9) leaves the database at the last committed block and a restart
resumes there with all state intact. Each extrinsic runs inside an undo scope:
a failed dispatch restores the keys it touched, as a failed extrinsic on the
real chain leaves storage unchanged.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

_MISSING = object()

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    parent TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    extrinsics TEXT NOT NULL,
    events TEXT NOT NULL
);
"""


@dataclass(frozen=True, kw_only=True)
class BlockRecord:
    """A committed block: header fields plus its extrinsics (with receipts) and events."""

    number: int
    hash: str
    parent: str
    timestamp: int  # unix ms
    extrinsics: list  # [{"hash", "extrinsic", "success", "error", "events"}]
    events: list  # decoded System.Events records for the whole block


class Store:
    """The state dict, its undo scope and its SQLite mirror."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL survives process crashes
        self._conn.executescript(SCHEMA)
        self._data: dict[str, Any] = {
            k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM kv")
        }
        self._dirty: set[str] = set()
        self._undo: dict[str, Any] | None = None
        self._hashes: dict[int, str] = {}
        self._numbers: dict[str, int] = {}
        for number, hash_ in self._conn.execute("SELECT number, hash FROM blocks"):
            self._hashes[number] = hash_
            self._numbers[hash_] = number

    # -- reads -----------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """A value for reading only (mutate through `get_mut`)."""
        return self._data.get(key, default)

    def keys(self, prefix: str) -> Iterator[str]:
        return (k for k in list(self._data) if k.startswith(prefix))

    # -- writes ----------------------------------------------------------------

    def _remember(self, key: str) -> None:
        if self._undo is not None and key not in self._undo:
            old = self._data.get(key, _MISSING)
            self._undo[key] = old if old is _MISSING else copy.deepcopy(old)
        self._dirty.add(key)

    def get_mut(self, key: str, default: Callable[[], Any] | None = None) -> Any:
        """A value to mutate in place; the change is persisted with the block."""
        if key not in self._data:
            if default is None:
                raise KeyError(key)
            self._remember(key)
            self._data[key] = default()
            return self._data[key]
        self._remember(key)
        return self._data[key]

    def put(self, key: str, value: Any) -> None:
        self._remember(key)
        self._data[key] = value

    def delete(self, key: str) -> None:
        if key in self._data:
            self._remember(key)
            del self._data[key]

    # -- extrinsic scope -------------------------------------------------------

    def begin(self) -> None:
        self._undo = {}

    def rollback(self) -> None:
        for key, old in (self._undo or {}).items():
            if old is _MISSING:
                self._data.pop(key, None)
            else:
                self._data[key] = old
        self._undo = None

    def release(self) -> None:
        self._undo = None

    # -- blocks ------------------------------------------------------------------

    def commit_block(self, block: BlockRecord) -> None:
        """Write the block and every key changed since the last commit, atomically."""
        rows = []
        deletes = []
        for key in self._dirty:
            if key in self._data:
                rows.append((key, json.dumps(self._data[key], separators=(",", ":"))))
            else:
                deletes.append((key,))
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                conn.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", rows)
            if deletes:
                conn.executemany("DELETE FROM kv WHERE key = ?", deletes)
            conn.execute(
                "INSERT INTO blocks (number, hash, parent, timestamp, extrinsics, events) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    block.number,
                    block.hash,
                    block.parent,
                    block.timestamp,
                    json.dumps(block.extrinsics, separators=(",", ":")),
                    json.dumps(block.events, separators=(",", ":")),
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._dirty.clear()
        self._hashes[block.number] = block.hash
        self._numbers[block.hash] = block.number

    def head(self) -> BlockRecord | None:
        row = self._conn.execute(
            "SELECT number, hash, parent, timestamp, extrinsics, events FROM blocks "
            "ORDER BY number DESC LIMIT 1"
        ).fetchone()
        return _record(row) if row else None

    def block(self, number: int) -> BlockRecord | None:
        row = self._conn.execute(
            "SELECT number, hash, parent, timestamp, extrinsics, events FROM blocks WHERE number = ?",
            (int(number),),
        ).fetchone()
        return _record(row) if row else None

    def block_hash(self, number: int) -> str | None:
        return self._hashes.get(int(number))

    def block_number(self, hash_: str) -> int | None:
        return self._numbers.get(hash_)

    def close(self) -> None:
        self._conn.close()


def _record(row: tuple) -> BlockRecord:
    number, hash_, parent, ts, extrinsics, events = row
    return BlockRecord(
        number=number,
        hash=hash_,
        parent=parent,
        timestamp=ts,
        extrinsics=json.loads(extrinsics),
        events=json.loads(events),
    )
