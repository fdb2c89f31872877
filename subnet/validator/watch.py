"""Watching miners' stores during a window: concurrent, budgeted, on its own thread.

The watcher is the validator's deadline evidence (see evidence.py). It runs
beside scoring and following, never behind them (a non-lead waiting for a
silent lead, or a slow scoring pass, does not stop it), and every peer is
handled inside its own budget:

- one request at a time per peer, each bounded in wall-clock time by the peer
  reader (`subnet.storage.peer`: per request, not per socket read);
- `window_budget_s` of store time per peer per window; once spent, the peer
  is not polled again that window (its outcome says so);
- after a failure the peer waits `retry_after_s` (doubling per failure, up to
  16x) before the next try, so a dead store costs one worker now and then,
  not one per poll; a refused location, an oversized object or a reply we
  refuse (redirect, non-regular file, 4xx) is final for the window;
- `workers` requests in flight at most (never queued behind each other),
  stores that failed before share at most half of them, and one endpoint
  (host:port) gets `per_endpoint` at a time, so neither many hanging stores
  nor many sybil hotkeys behind one server make a healthy store's request wait.

Worst case per peer per window: `window_budget_s` plus one request timeout
(a request started just before the budget ran out).

Nothing a peer does (location, store, bytes, timing) raises out of here: each
attempt ends as a `PollResult` kept for the scoring stage's outcome detail.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import parse_qs, urlsplit

from loguru import logger

from subnet.node.peerstores import PeerStores, StoreRefusal
from subnet.storage.peer import PeerRefused, PeerTooLarge
from subnet.validator.evidence import EvidenceBook, Sighting


class PollResult(str, Enum):
    PINNED = "pinned"  # bytes read and pinned
    ABSENT = "absent"  # the store answered: no object at the key (yet)
    REFUSED = "refused"  # the committed location is unusable
    FAILED = "failed"  # transport error, timeout, refusal of the reply
    OVERSIZED = "oversized"  # over the fragment's byte bound: final for the window (a replacement would be late)
    REJECTED = "rejected"  # the store answered with what we refuse (redirect, non-regular file, 4xx): final
    OVER_BUDGET = "over_budget"  # this window's time budget for the peer is spent


@dataclass(frozen=True, kw_only=True)
class WatchTarget:
    """One miner's expected upload for one window."""

    uid: int
    hotkey: str
    location: str | None
    fragment: int
    key: str
    max_bytes: int


@dataclass(kw_only=True)
class _PeerWindow:
    spent_s: float = 0.0
    attempts: int = 0
    in_flight: bool = False
    suspect: bool = False  # in flight after a failure (counts against the failing stores' share)
    endpoint: str = ""
    failures: int = 0
    next_try: float = 0.0  # monotonic
    absent_since: float | None = None  # unix time the last "absent" answer was requested
    last: PollResult | None = None
    detail: str = ""


class BlockClock:
    """Block numbers read no earlier than a given instant, shared by concurrent callers.

    `after(t)` returns a block number read at a monotonic time >= t, reusing
    the latest read when it started after t (so 256 concurrent sightings cost
    a handful of chain reads, and no sighting is stamped with a block read
    before its bytes arrived).
    """

    def __init__(self, read_block: Callable[[], int]) -> None:
        self._read = read_block
        self._lock = threading.Lock()
        self._at = -1.0
        self._block = -1

    def after(self, t: float) -> int:
        with self._lock:
            if self._at >= t:
                return self._block
            started = time.monotonic()
            block = int(self._read())
            self._at, self._block = started, block
            return block


@dataclass(frozen=True, kw_only=True)
class WatchBudget:
    workers: int = 32
    request_timeout_s: float = 10.0
    window_budget_s: float = 60.0
    retry_after_s: float = 3.0
    per_endpoint: int = 2  # requests in flight to one host:port (or one local root)


def endpoint_key(location: str | None) -> str:
    """Which server a location's requests go to (host:port, an S3 bucket on AWS, a local root); never raises."""
    if not location:
        return ""
    try:
        parts = urlsplit(location)
        if parts.scheme == "s3":
            endpoint = parse_qs(parts.query).get("endpoint", [""])[0]
            if endpoint:
                e = urlsplit(endpoint)
                return f"{(e.hostname or '').rstrip('.').lower()}:{e.port or (443 if e.scheme == 'https' else 80)}"
            return f"aws:{parts.netloc.lower()}"
        return f"local:{parts.path or location}"
    except ValueError:
        return location


class UploadWatcher:
    """Polls targets concurrently and pins first-seen bytes into an EvidenceBook."""

    def __init__(self, book: EvidenceBook, stores: PeerStores, clock: BlockClock,
                 budget: WatchBudget = WatchBudget()) -> None:
        self.book = book
        self.stores = stores
        self.clock = clock
        self.budget = budget
        self._pool = ThreadPoolExecutor(max_workers=budget.workers, thread_name_prefix="watch")
        self._lock = threading.Lock()
        self._peers: dict[tuple[int, str], _PeerWindow] = {}
        self._futures: set[Future] = set()
        self._per_endpoint: Counter[str] = Counter()
        self._turn = 0
        self._suspects = 0  # requests in flight to stores that failed before
        self._suspect_slots = max(1, budget.workers // 2)

    def poll(self, window: int, targets: list[WatchTarget]) -> int:
        """Start a request for every target that is due; returns how many started (never blocks on peers)."""
        started = 0
        now = time.monotonic()
        pinned = self.book.hotkeys(window)
        self._turn += 1  # start each pass at another peer, so a full pool starves nobody for long
        k = self._turn % len(targets) if targets else 0
        for t in targets[k:] + targets[:k]:
            if t.hotkey in pinned:
                continue
            with self._lock:
                pw = self._peers.setdefault((window, t.hotkey), _PeerWindow())
                if pw.in_flight or now < pw.next_try:
                    continue
                if pw.failures and self._suspects >= self._suspect_slots:
                    continue  # failing stores share half the workers: healthy ones are never queued behind them
                if pw.spent_s >= self.budget.window_budget_s:
                    if pw.last is not PollResult.OVER_BUDGET:
                        pw.last = PollResult.OVER_BUDGET
                        pw.detail = f"store used its {self.budget.window_budget_s:g}s budget this window ({pw.detail})"
                        logger.info("uid {}: {}", t.uid, pw.detail)
                    continue
                ep = endpoint_key(t.location)
                if self._per_endpoint[ep] >= self.budget.per_endpoint:
                    continue  # one server's hotkeys share its slots, however many there are
                if len(self._futures) >= self.budget.workers:
                    break  # never queue: a request starts only when a worker is free for it
                self._per_endpoint[ep] += 1
                pw.endpoint = ep
                pw.in_flight = True
                pw.suspect = pw.failures > 0
                self._suspects += pw.suspect
                fut = self._pool.submit(self._attempt, window, t, pw)
                self._futures.add(fut)
            fut.add_done_callback(self._done)
            started += 1
        return started

    def _done(self, fut: Future) -> None:
        with self._lock:
            self._futures.discard(fut)

    def _attempt(self, window: int, t: WatchTarget, pw: _PeerWindow) -> None:
        t0m, t0 = time.monotonic(), time.time()
        result, detail, retry = PollResult.FAILED, "", True
        try:
            opened = self.stores.open(t.location)
            if isinstance(opened, StoreRefusal):
                result, detail, retry = PollResult.REFUSED, opened.reason, False
            else:
                obj = opened.fetch(t.key, t.max_bytes, timeout_s=self.budget.request_timeout_s)
                if obj is None:
                    result, detail = PollResult.ABSENT, "no artifact at the key"
                else:
                    block = self.clock.after(time.monotonic())
                    # Our clock only (a store's Last-Modified is the peer's word): in hand now, absent at the
                    # start of the last request it answered "absent" (copydetect.judge_copies).
                    sighting = Sighting(window=window, hotkey=t.hotkey, fragment=t.fragment, first_seen=time.time(),
                                        block=block, sha256=obj.sha256, nbytes=len(obj.data),
                                        seen_after=pw.absent_since)
                    self.book.record(sighting, obj.data)
                    result, detail = PollResult.PINNED, f"first seen at block {block}"
                    logger.debug("window {}: pinned uid {} artifact ({} bytes) at block {}", window, t.uid,
                                 len(obj.data), block)
        except PeerTooLarge as exc:
            result, detail, retry = PollResult.OVERSIZED, f"{type(exc).__name__}: {exc}"[:300], False
        except PeerRefused as exc:
            result, detail, retry = PollResult.REJECTED, f"{type(exc).__name__}: {exc}"[:300], False
        except Exception as exc:  # a peer's failure is its outcome, whatever the type
            result, detail = PollResult.FAILED, f"{type(exc).__name__}: {exc}"[:300]
            logger.debug("window {}: uid {} store: {}", window, t.uid, detail)
        finally:
            elapsed = time.monotonic() - t0m
            with self._lock:
                pw.in_flight = False
                self._suspects -= pw.suspect
                pw.suspect = False
                self._per_endpoint[pw.endpoint] -= 1
                pw.attempts += 1
                pw.spent_s += elapsed
                pw.last, pw.detail = result, detail
                if result is PollResult.ABSENT:
                    pw.absent_since = t0
                    pw.next_try = 0.0
                elif not retry:  # refused location (cached per string) or oversized: final this window
                    pw.next_try = float("inf")
                    pw.failures += 1
                else:  # failed: back off, doubling per failure
                    pw.failures += 1
                    pw.next_try = time.monotonic() + self.budget.retry_after_s * 2 ** min(pw.failures - 1, 4)

    def status(self, window: int, hotkey: str) -> tuple[PollResult | None, str, int]:
        """(last result, its detail, attempts) for a peer's window: what the scoring outcome reports."""
        with self._lock:
            pw = self._peers.get((window, hotkey))
            if pw is None:
                return None, "", 0
            if pw.last is None and pw.in_flight:  # the first request has not come back: a slow or dead store
                return PollResult.FAILED, "no answer yet (first request still in flight)", pw.attempts
            return pw.last, pw.detail, pw.attempts

    def spent(self, window: int, hotkey: str) -> float:
        """Store time (seconds of a worker) this peer has cost in `window`."""
        with self._lock:
            pw = self._peers.get((window, hotkey))
            return 0.0 if pw is None else pw.spent_s

    def forget(self, before_window: int) -> None:
        with self._lock:
            self._peers = {k: v for k, v in self._peers.items() if k[0] >= before_window}

    def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight (tests and shutdown); False on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if not self._futures:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class WatchThread:
    """Runs `tick()` every `interval` seconds on a daemon thread until stopped; a tick's error is logged."""

    tick: Callable[[], None]
    interval: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="upload-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # the chain read inside a tick can fail: try again next tick
                logger.warning("upload watcher tick failed: {}: {}", type(exc).__name__, exc)
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
