"""Devnet persistence: an in-memory key-value state mirrored to SQLite (WAL).

One writer (the node's block producer) owns the state. Keys are short strings
("acct:<ss58>", "net:<netuid>", ...) holding JSON values; every block is one
SQLite transaction writing the keys it changed plus the block row, so a crash
(even kill -9) leaves the database at the last committed block and a restart
resumes there with all state intact. Each extrinsic runs inside an undo scope:
a failed dispatch restores the keys it touched, as a failed extrinsic on the
real chain leaves storage unchanged.

Block-pinned reads: each commit also journals, per changed key, the value it
had before the block (`journal`, same transaction). The state at block B is
the head state with every change made after B undone, so `at(B)` answers
reads exactly as of B. Like a pruned node (Substrate's default
`--state-pruning 256`), only the last `state_pruning` blocks are kept; older
pins raise `StateDiscarded`.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
CREATE TABLE IF NOT EXISTS journal (
    block INTEGER NOT NULL,
    key TEXT NOT NULL,
    old TEXT
);
CREATE INDEX IF NOT EXISTS journal_key_block ON journal (key, block);
CREATE INDEX IF NOT EXISTS journal_block ON journal (block);
"""
DEFAULT_STATE_PRUNING = 256  # blocks of state history kept, as Substrate's default --state-pruning


class StateDiscarded(LookupError):
    """A read pinned to a block whose state is past the retention window (a pruned node's error)."""


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

    def __init__(self, path: Path, *, state_pruning: int = DEFAULT_STATE_PRUNING) -> None:
        self.path = Path(path)
        self.state_pruning = max(0, int(state_pruning))
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
            conn.executemany(  # pre-block values, read before the kv rows change
                "INSERT INTO journal (block, key, old) VALUES (?, ?, (SELECT value FROM kv WHERE key = ?))",
                [(block.number, key, key) for key in self._dirty],
            )
            if rows:
                conn.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", rows)
            if deletes:
                conn.executemany("DELETE FROM kv WHERE key = ?", deletes)
            conn.execute("DELETE FROM journal WHERE block <= ?", (block.number - self.state_pruning,))
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

    def oldest_state(self, head: int) -> int:
        """The oldest block whose state can still be read (the pruning window)."""
        return max(0, head - self.state_pruning + 1)

    def at(self, number: int, head: int) -> StoreAt:
        """A read-only view of the state as it was after block `number`."""
        if number > head:
            raise LookupError(f"block {number} is ahead of the head {head}")
        if number < self.oldest_state(head):
            raise StateDiscarded(
                f"State already discarded for block {number}: the devnet keeps the state of the last "
                f"{self.state_pruning} blocks (head {head}), like a node with --state-pruning {self.state_pruning}")
        return StoreAt(self, number)

    def _journal_old(self, key: str, number: int) -> tuple[bool, Any]:
        """(found, value before the first change after `number`); value _MISSING if the key did not exist."""
        row = self._conn.execute(
            "SELECT old FROM journal WHERE key = ? AND block > ? ORDER BY block ASC LIMIT 1", (key, int(number))
        ).fetchone()
        if row is None:
            return False, None
        return True, (_MISSING if row[0] is None else json.loads(row[0]))

    def _journal_keys(self, prefix: str, number: int) -> set[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT key FROM journal WHERE block > ? AND key >= ? AND key < ?",
            (int(number), prefix, prefix + "\U0010ffff"),
        )
        return {key for (key,) in rows}

    def close(self) -> None:
        self._conn.close()


class StoreAt:
    """The state after block `number`, for reads only: head values with later changes undone."""

    def __init__(self, store: Store, number: int) -> None:
        self._store = store
        self.number = int(number)

    def get(self, key: str, default: Any = None) -> Any:
        found, old = self._store._journal_old(key, self.number)
        if not found:
            return self._store.get(key, default)
        return default if old is _MISSING else old

    def keys(self, prefix: str) -> Iterator[str]:
        candidates = set(self._store.keys(prefix)) | self._store._journal_keys(prefix, self.number)
        return iter(sorted(k for k in candidates if self.get(k, _MISSING) is not _MISSING))


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
