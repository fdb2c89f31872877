"""Append-only JSONL event logs shared by the neurons, the devnet and the demo.

Why this shape: several processes (a validator, N miners, the demo) write
telemetry at once and any of them may be killed with SIGKILL. Each process
appends to its own file (or to a shared one) with exactly one ``os.write`` of a
complete line on an ``O_APPEND`` descriptor, so lines from concurrent writers
never interleave and a crash can only leave a *trailing* partial line, which
readers skip. Nothing here buffers: an event is on disk (in the page cache)
when ``emit`` returns.

Record schema, one JSON object per line::

    {"ts": float, "component": "validator"|"miner"|"devnet"|"demo",
     "uid": int|None, "hotkey": str|None, "event": str, ...fields}

JSON turns integer dict keys into strings; :func:`uid_map` turns them back.

Rotation: a neuron runs for weeks, so a log given ``max_bytes`` is rotated
when a write takes it past that size: the file is renamed to
``<stem>.<UTC stamp>.jsonl`` (still a ``*.jsonl`` of the directory, so every
reader keeps seeing the kept history) and a fresh file is opened at the same
path; only the newest ``keep`` segments are kept. Readers that tail
(`EventTail`) follow a file by its inode, so a rename is neither a truncation
nor new data to them. A second process appending to the same path through its
own descriptor keeps writing into the renamed segment until it rotates itself;
its lines stay whole.

Sinks: the metrics endpoint and W&B are fed from these same records, not from
a second code path. After a line is written, each sink of the `EventLog`
(given at construction or with :meth:`EventLog.add_sink`) is called with that
line decoded back from JSON, i.e. exactly what a reader of the file gets. A
sink that raises is logged and skipped; it never fails the write.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from subnet.errors import SubnetError

COMPONENTS = frozenset({"validator", "miner", "devnet", "demo"})
RESERVED = frozenset({"ts", "component", "uid", "hotkey", "event"})
SUFFIX = ".jsonl"
# A line larger than this is refused: PIPE_BUF-style atomicity is not the issue
# for regular files, but a runaway payload (a whole tensor) is a bug upstream.
MAX_LINE_BYTES = 4 * 1024 * 1024

Sink = Callable[[Mapping[str, Any]], None]
"""An observer of written records (e.g. `subnet.telemetry.metrics.MetricsSink`)."""


class TelemetryError(SubnetError):
    """An event that cannot be written (bad component, reserved field, oversize)."""


def _jsonable(obj: Any) -> Any:
    """`json.dumps` fallback for the types neurons naturally hold."""
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return obj.item()
        except (ValueError, RuntimeError):
            pass
    if hasattr(obj, "tolist") and callable(obj.tolist):  # small arrays
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """Replace NaN/inf by None so every line is strict JSON (jq, pandas, browsers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def encode_event(record: Mapping[str, Any]) -> bytes:
    """One event as one newline-terminated UTF-8 JSON line."""
    try:
        # Round-trip through the fallback first so numpy floats get the NaN check too.
        plain = json.loads(json.dumps(record, default=_jsonable, allow_nan=True))
        line = json.dumps(_finite(plain), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TelemetryError(f"event {record.get('event')!r} is not serialisable: {exc}") from exc
    data = (line + "\n").encode("utf-8")
    if len(data) > MAX_LINE_BYTES:
        raise TelemetryError(f"event {record.get('event')!r} is {len(data)} bytes (> {MAX_LINE_BYTES})")
    return data


class EventLog:
    """Writer for one JSONL file; safe to share between threads and processes.

    ``component``/``uid``/``hotkey`` given here are defaults stamped on every
    event; ``emit`` may override them per call.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        component: str | None = None,
        uid: int | None = None,
        hotkey: str | None = None,
        sinks: Iterable[Sink] = (),
        max_bytes: int = 0,
        keep: int = 8,
    ) -> None:
        if max_bytes < 0 or keep < 1:
            raise TelemetryError(f"event log rotation needs max_bytes >= 0 (0 = never) and keep >= 1, "
                                 f"got {max_bytes}, {keep}")
        if component is not None and component not in COMPONENTS:
            raise TelemetryError(f"unknown component {component!r}; expected one of {sorted(COMPONENTS)}")
        self.path = Path(path)
        self.component = component
        self.uid = uid
        self.hotkey = hotkey
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        self.sinks: tuple[Sink, ...] = tuple(sinks)
        self.max_bytes = int(max_bytes)
        self.keep = int(keep)

    def add_sink(self, sink: Sink) -> None:
        """Also feed `sink` every record written from now on (the neuron's metrics, W&B)."""
        with self._lock:
            if sink not in self.sinks:
                self.sinks = (*self.sinks, sink)

    def emit(self, event: str, /, **fields: Any) -> dict[str, Any]:
        """Write one event and return the record written."""
        component = fields.pop("component", self.component)
        if component not in COMPONENTS:
            raise TelemetryError(f"event {event!r} needs a component in {sorted(COMPONENTS)}, got {component!r}")
        if not event or not isinstance(event, str):
            raise TelemetryError(f"event name must be a non-empty string, got {event!r}")
        record: dict[str, Any] = {
            "ts": float(fields.pop("ts", time.time())),
            "component": component,
            "uid": fields.pop("uid", self.uid),
            "hotkey": fields.pop("hotkey", self.hotkey),
            "event": event,
        }
        record.update(fields)
        self.write(record)
        return record

    def write(self, record: Mapping[str, Any]) -> None:
        """Append a ready-made record with a single ``os.write``."""
        missing = RESERVED - set(record)
        if missing:
            raise TelemetryError(f"record lacks {sorted(missing)}")
        data = encode_event(record)
        with self._lock:
            if self._fd is None:
                raise TelemetryError(f"event log {self.path} is closed")
            written = os.write(self._fd, data)
            if self.max_bytes and written == len(data):
                self._maybe_rotate()
        if written != len(data):  # disk full: the reader will skip the torn line
            raise TelemetryError(f"short write to {self.path}: {written}/{len(data)} bytes")
        _notify(self.sinks, data)

    def segments(self) -> list[Path]:
        """The rotated segments of this log, oldest first (the live file not included)."""
        return sorted(self.path.parent.glob(f"{glob_escape(self.path.stem)}.*{SUFFIX}"))

    def _maybe_rotate(self) -> None:
        """Rename the live file away once it is past max_bytes and open a fresh one; prune old segments.

        Called with the lock held. A failure to rotate (disk trouble) is logged
        and writing goes on into the big file: losing telemetry is worse.
        """
        assert self._fd is not None
        try:
            if os.fstat(self._fd).st_size < self.max_bytes:
                return
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"
            target = self.path.with_name(f"{self.path.stem}.{stamp}{SUFFIX}")
            os.replace(self.path, target)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            logger.warning("event log {}: rotation failed ({}); still appending to it", self.path, exc)
            return
        os.close(self._fd)
        self._fd = fd
        for old in self.segments()[: -self.keep]:
            try:
                old.unlink()
            except OSError as exc:
                logger.warning("event log {}: cannot delete old segment {}: {}", self.path, old, exc)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; explicit close() preferred
        try:
            self.close()
        except Exception:
            pass


def _notify(sinks: tuple[Sink, ...], data: bytes) -> None:
    """Hand the line just written, decoded as a reader would, to the sinks; a failing sink is only logged."""
    if not sinks:
        return
    record = json.loads(data)
    for sink in sinks:
        try:
            sink(record)
        except Exception as exc:  # noqa: BLE001 - observability must never stop a neuron
            logger.warning("telemetry sink {!r} failed on {!r}: {}: {}", sink, record.get("event"),
                           type(exc).__name__, exc)


def log_path(directory: str | os.PathLike[str], component: str, name: str | int) -> Path:
    """Conventional per-process file: ``<dir>/<component>-<name>.jsonl``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
    return Path(directory) / f"{component}-{safe}{SUFFIX}"


def open_event_log(
    directory: str | os.PathLike[str] | None,
    component: str,
    *,
    name: str | int,
    uid: int | None = None,
    hotkey: str | None = None,
    max_bytes: int = 0,
    keep: int = 8,
) -> EventLog | None:
    """The log a neuron writes when ``--telemetry.dir`` is set; None when it is not."""
    if directory is None or str(directory) == "":
        return None
    return EventLog(log_path(directory, component, name), component=component, uid=uid, hotkey=hotkey,
                    max_bytes=max_bytes, keep=keep)


def glob_escape(text: str) -> str:
    """`text` with glob metacharacters bracketed, for a literal prefix in `Path.glob`."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _parse_lines(chunk: bytes, source: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for raw in chunk.split(b"\n"):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.warning("skipping malformed telemetry line in {}: {!r}", source, raw[:80])
            continue
        if isinstance(rec, dict) and "event" in rec:
            out.append(rec)
    return out


def _event_files(paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths_or_dir, (str, os.PathLike)):
        items = [Path(paths_or_dir)]
    else:
        items = [Path(p) for p in paths_or_dir]
    files: list[Path] = []
    for p in items:
        if p.is_dir():
            files.extend(sorted(p.glob(f"*{SUFFIX}")))
        elif p.exists():
            files.append(p)
    return files


def read_events(paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Every complete event in the given files (or ``*.jsonl`` of a directory), by time.

    A trailing line without its newline is an event still being written (or
    torn by a crash) and is skipped; malformed lines elsewhere are skipped with
    a warning.
    """
    events: list[dict[str, Any]] = []
    for f in _event_files(paths_or_dir):
        data = f.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        events.extend(_parse_lines(complete, f))
    events.sort(key=lambda e: float(e.get("ts") or 0.0))  # stable: same-ts order kept per file
    return events


class EventTail:
    """Incremental reader of a run's event directory (files may appear later).

    ``poll()`` returns only events completed since the previous call; a
    partial trailing line stays unread until its newline lands. Files are
    followed by inode, so a rotated log (renamed, a fresh file at its path) is
    read on from where it was left and its successor from its start; a file
    that got shorter than what was read of it (truncated) is read again.
    """

    def __init__(self, paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> None:
        self._source = paths_or_dir
        self._offsets: dict[tuple[int, int], int] = {}

    def poll(self) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        seen: set[tuple[int, int]] = set()
        for f in _event_files(self._source):
            try:
                with f.open("rb") as fh:
                    st = os.fstat(fh.fileno())
                    key = (st.st_dev, st.st_ino)
                    start = self._offsets.get(key, 0)
                    if st.st_size < start:  # truncated in place: what was read is gone
                        start = 0
                    fh.seek(start)
                    data = fh.read()
            except FileNotFoundError:
                continue
            seen.add(key)
            end = data.rfind(b"\n") + 1
            self._offsets[key] = start + end
            if end == 0:
                continue
            new.extend(_parse_lines(data[:end], f))
        for gone in set(self._offsets) - seen:  # deleted segments: forget them (an inode may be reused)
            del self._offsets[gone]
        new.sort(key=lambda e: float(e.get("ts") or 0.0))
        return new


def uid_map(mapping: Mapping[Any, Any] | None) -> dict[int, Any]:
    """``{"3": x}`` (as JSON stores it) back to ``{3: x}``; non-integer keys are dropped."""
    out: dict[int, Any] = {}
    for k, v in (mapping or {}).items():
        try:
            out[int(k)] = v
        except (TypeError, ValueError):
            continue
    return out


def as_number(x: Any) -> float | None:
    """A record field as a float for metrics and W&B, None for missing, boolean or non-numeric values."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None
