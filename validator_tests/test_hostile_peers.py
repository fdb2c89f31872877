"""Hostile peers against the validator's own intake code, in one process, with real servers and real signatures.

Each case drives the code the validator runs (subnet/validator/watch.py: the
upload watcher; evidence.py: pinned bytes; intake.py: the scoring stage's
first step; subnet/node/peerstores.py and subnet/storage/peer.py: reading
peers) against the listed peer behaviour, and checks that every *other* peer
of the window is still pinned and verified on time. Stores are real: local
directories, raw-socket HTTP servers that trickle, hang, lie or record
(harness/hostile_http.py). Artifacts are real signed files. The chain head is
the one thing played by the test (`Head`): it is the clock the deadline is
judged by, and moving it by hand is the injected fault.

The lead's side (unsigned / wrongly signed manifests and checkpoints, a
version-10**12 checkpoint, a validly signed `chunk == topk` artifact listed
in a manifest) is covered by validator_tests/test_sync_signed.py; a crashing
location and a trickling store on a live devnet by test_hostile_network.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from bittensor.sp_core import Keypair
from harness.hostile_http import HostileServer

from subnet.codec import ArtifactHeader, CodecConfig, Encoder, read_artifact, write_artifact
from subnet.codec.wire import expected_max_bytes
from subnet.node.peerstores import PeerStores
from subnet.storage import LocalDirStore
from subnet.storage.location import LocationPolicy
from subnet.storage.peer import PeerReadOptions
from subnet.validator.copydetect import Submission, find_copies
from subnet.validator.evidence import EvidenceBook
from subnet.validator.intake import IntakeRules, take_in
from subnet.validator.submission import Outcome
from subnet.validator.submission import Submission as Taken
from subnet.validator.watch import BlockClock, PollResult, UploadWatcher, WatchBudget, WatchTarget, WatchThread

torch.set_num_threads(1)

NETUID, WINDOW, FRAG = 7, 5, 0
DEADLINE = 40  # first block after window 5 (blocks 20..39)
SHAPES = {"w": (48, 64), "b": (64,)}
CODEC = CodecConfig(chunk=512, topk=32, value_bits=2)
MAX_BYTES = expected_max_bytes(SHAPES, CODEC)
BUDGET = WatchBudget(workers=8, request_timeout_s=1.0, window_budget_s=2.5, retry_after_s=0.2)
READS = PeerReadOptions(request_timeout_s=1.0, attempts=2, backoff_s=0.05, backoff_max_s=0.1)
SLACK_S = 1.5  # a loaded 2-core machine

CRASH_LOCATIONS = [
    "s3://bucket-ok?region=../../x",
    "s3://bucket-ok?endpoint=file:///etc/passwd",
    "s3://bucket-ok?endpoint=javascript:alert(1)",
    "s3://bucket-ok?endpoint=http://[::1",
    "s3://bucket-ok?endpoint=%00",
    "s3://bucket-ok?endpoint=http://b\u00fccher.example",
    "s3://bucket-ok?endpoint=http://a.example%0d%0aX-Injected:1",
    "s3://bucket-ok?region=us-east-1%0d%0a",
    "s3://bucket-ok?addressing=bogus",
    "s3://bucket-ok?endpoint=http://user:pass@s3.example.com",
    "s3://bucket-ok?endpoint=http://a.example&endpoint=http://b.example",
    "a:/../../../../etc",
    "C:/Windows/Temp",
    "",
]


class Head:
    """The chain head as the validator reads it (moved by the test)."""

    def __init__(self, block: int) -> None:
        self.block = block

    def __call__(self) -> int:
        return self.block


class Miner:
    """A registered hotkey with a real signed artifact for WINDOW."""

    def __init__(self, uid: int, store_root: Path | None = None, seed: int | None = None) -> None:
        self.uid = uid
        self.kp = Keypair.create_from_uri(f"//HostileTest{uid}")
        self.hotkey = self.kp.ss58_address
        self.key = f"{NETUID}/{WINDOW}/{self.hotkey}.{FRAG}.safetensors"
        g = torch.Generator().manual_seed(uid if seed is None else seed)
        self.encoded = Encoder(SHAPES, CODEC).encode({n: torch.randn(s, generator=g) for n, s in SHAPES.items()})
        self.data = self.sign(self.encoded)
        self.store = LocalDirStore(store_root) if store_root is not None else None

    def sign(self, encoded) -> bytes:  # noqa: ANN001 - EncodedUpdate
        header = ArtifactHeader(netuid=NETUID, window=WINDOW, uid=self.uid, hotkey=self.hotkey, fragment=FRAG,
                                base_version=0)
        return write_artifact(encoded, header, self.kp)

    def upload(self, data: bytes | None = None) -> None:
        assert self.store is not None
        self.store.put(self.key, self.data if data is None else data)

    def target(self, location: str | None = None) -> WatchTarget:
        if location is None:
            assert self.store is not None
            location = self.store.location
        return WatchTarget(uid=self.uid, hotkey=self.hotkey, location=location, fragment=FRAG, key=self.key,
                           max_bytes=MAX_BYTES)


def _watcher(tmp_path: Path, head: Head, policy: LocationPolicy = LocationPolicy.devnet(),
             budget: WatchBudget = BUDGET) -> UploadWatcher:
    return UploadWatcher(EvidenceBook(tmp_path / "evidence"), PeerStores(policy, READS), BlockClock(head), budget)


def _poll_until(w: UploadWatcher, targets: list[WatchTarget], done: Callable[[], bool], timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        w.poll(WINDOW, targets)
        if done():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"not done within {timeout}s: {[w.status(WINDOW, t.hotkey) for t in targets]}")


def _pinned(w: UploadWatcher, *miners: Miner) -> Callable[[], bool]:
    return lambda: all(w.book.sighting(WINDOW, m.hotkey) is not None for m in miners)


def _settled(w: UploadWatcher, targets: list[WatchTarget]) -> Callable[[], bool]:
    """Every target has a final word this window: pinned, refused or out of budget."""
    final = (PollResult.PINNED, PollResult.REFUSED, PollResult.OVER_BUDGET, PollResult.OVERSIZED, PollResult.REJECTED)
    return lambda: all(w.book.sighting(WINDOW, t.hotkey) is not None or w.status(WINDOW, t.hotkey)[0] in final
                       for t in targets)


def _take(w: UploadWatcher, m: Miner, *, recheck: Callable[[], bytes | None] | None = None,
          version: int = 0) -> Taken:
    def verify(data: bytes):  # noqa: ANN202
        return read_artifact(data, expected_hotkey=m.hotkey, max_bytes=MAX_BYTES, shapes=SHAPES, netuid=NETUID,
                             window=WINDOW, fragment=FRAG, uid=m.uid, codec=CODEC)

    return take_in(window=WINDOW, uid=m.uid, hotkey=m.hotkey, fragment=FRAG, pinned=w.book.pinned(WINDOW, m.hotkey),
                   status=w.status(WINDOW, m.hotkey), verify=verify, recheck=recheck,
                   rules=IntakeRules(deadline_block=DEADLINE, model_version=version, max_staleness=1))


def _store_recheck(m: Miner) -> Callable[[], bytes | None]:
    return lambda: m.store.get(m.key, MAX_BYTES)


def _honest(tmp_path: Path, n: int = 2, first_uid: int = 1) -> list[Miner]:
    out = [Miner(first_uid + i, tmp_path / f"store-{first_uid + i}") for i in range(n)]
    for m in out:
        m.upload()
    return out


# --------------------------------------------------------------------------------------------- locations


def test_every_crash_location_is_that_peers_outcome_and_the_others_are_scored(tmp_path):
    head = Head(25)
    w = _watcher(tmp_path, head)
    honest = _honest(tmp_path)
    attackers = [Miner(100 + i) for i in range(len(CRASH_LOCATIONS))]
    targets = [m.target() for m in honest] + [a.target(loc) for a, loc in zip(attackers, CRASH_LOCATIONS)]
    _poll_until(w, targets, _settled(w, targets), timeout=10)
    assert w.drain(5)
    for a, loc in zip(attackers, CRASH_LOCATIONS):
        result, detail, _ = w.status(WINDOW, a.hotkey)
        assert result is PollResult.REFUSED, (loc, result, detail)
        r = _take(w, a)
        assert r.score is None and r.artifact is None
        assert r.outcome is Outcome.NO_STORE, (loc, r.reason)
        assert r.reason.startswith(("unusable store location", "no store committed")), (loc, r.reason)
    for m in honest:
        r = _take(w, m)
        assert r.artifact is not None and r.outcome is Outcome.VERIFIED, r.reason
        assert r.detail["first_seen_block"] == 25
    assert not Path("C:").exists() and not Path("a:").exists(), "a peer's path made us create a directory"


def test_ssrf_locations_are_refused_on_real_networks_and_never_contacted(tmp_path):
    head = Head(25)
    w = _watcher(tmp_path, head, policy=LocationPolicy.network())
    with HostileServer("record") as inside:
        port = inside.port
        locations = [f"s3://bkt?endpoint=http://127.0.0.1:{port}", f"s3://bkt?endpoint=https://127.0.0.1:{port}",
                     "s3://bkt?endpoint=https://169.254.169.254", "s3://bkt?endpoint=https://10.0.0.1",
                     f"s3://bkt?endpoint=https://[::1]:{port}", "s3://bkt?endpoint=ftp://example.com",
                     f"file://{tmp_path}", str(tmp_path)]
        attackers = [Miner(200 + i) for i in range(len(locations))]
        targets = [a.target(loc) for a, loc in zip(attackers, locations)]
        _poll_until(w, targets, _settled(w, targets), timeout=10)
        assert w.drain(5)
        for a, loc in zip(attackers, locations):
            assert w.status(WINDOW, a.hotkey)[0] is PollResult.REFUSED, (loc, w.status(WINDOW, a.hotkey))
        assert inside.connections == 0, "a refused location was contacted"


def test_no_validator_credential_reaches_a_peer_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAVALIDATORSECRET1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "validator-secret-key")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "validator-session-token")
    head = Head(25)
    w = _watcher(tmp_path, head)
    with HostileServer("record") as spy:
        m = Miner(300)
        w.poll(WINDOW, [m.target(f"s3://bkt/pre?endpoint={spy.url}")])
        assert w.drain(5)
        assert spy.requests, "the watcher never asked the peer"
        for req in spy.requests:
            names = {k.lower() for k in req.headers}
            assert not names & {"authorization", "x-amz-security-token", "x-amz-date", "cookie"}, req.headers
            for secret in (b"AKIAVALIDATORSECRET1", b"validator-secret-key", b"validator-session-token"):
                assert secret not in req.raw


# --------------------------------------------------------------------------------------------- deadline binds bytes


def test_placeholder_then_real_work_after_the_deadline_is_late(tmp_path):
    head = Head(21)
    w = _watcher(tmp_path, head)
    honest = _honest(tmp_path, n=1)
    cheat = Miner(50, tmp_path / "store-cheat")
    cheat.upload(b"placeholder")  # 11 junk bytes at block 21
    targets = [honest[0].target(), cheat.target()]
    _poll_until(w, targets, _pinned(w, honest[0], cheat), timeout=5)
    head.block = 45
    cheat.upload()  # its real work, after the deadline (40)
    w.poll(WINDOW, targets)  # the watcher must not re-pin
    assert w.drain(5)
    r = _take(w, cheat, recheck=_store_recheck(cheat))
    assert r.artifact is None and r.score is None and r.outcome is Outcome.LATE, r.reason
    assert r.reason.startswith("late (replaced"), r.reason
    ok = _take(w, honest[0], recheck=_store_recheck(honest[0]))
    assert ok.artifact is not None
    # without a replacement, the same junk is an ordinary refusal (score 0), not "late"
    cheat2 = Miner(51, tmp_path / "store-cheat2")
    cheat2.upload(b"placeholder")
    head.block = 30
    _poll_until(w, [cheat2.target()], _pinned(w, cheat2), timeout=5)
    r2 = _take(w, cheat2, recheck=_store_recheck(cheat2))
    assert r2.score == 0.0 and r2.outcome is Outcome.REJECTED and r2.reason.startswith("rejected:"), r2.reason


def test_upload_first_seen_after_the_deadline_is_late_however_slow_scoring_is(tmp_path):
    head = Head(38)
    w = _watcher(tmp_path, head)
    slowpoke = Miner(60, tmp_path / "store-60")
    targets = [slowpoke.target()]
    _poll_until(w, targets, lambda: w.status(WINDOW, slowpoke.hotkey)[0] is PollResult.ABSENT, timeout=5)
    head.block = 41  # scoring of the previous window took long; the upload lands after the deadline
    slowpoke.upload()
    _poll_until(w, targets, _pinned(w, slowpoke), timeout=5)
    assert w.book.sighting(WINDOW, slowpoke.hotkey).block == 41  # the block read after the bytes arrived
    r = _take(w, slowpoke)
    assert r.artifact is None and r.reason.startswith("late (first seen at block 41"), r.reason


def test_post_deadline_swap_cannot_frame_an_honest_miner_as_a_copier(tmp_path):
    head = Head(21)
    w = _watcher(tmp_path, head)
    attacker = Miner(70, tmp_path / "store-attacker")
    victim = Miner(71, tmp_path / "store-victim")
    attacker.upload(b"placeholder")
    _poll_until(w, [attacker.target()], _pinned(w, attacker), timeout=5)
    head.block = 30
    victim.upload()
    _poll_until(w, [attacker.target(), victim.target()], _pinned(w, victim), timeout=5)
    head.block = 45  # after the deadline: the attacker re-signs the victim's update as its own
    attacker.upload(attacker.sign(victim.encoded))
    w.poll(WINDOW, [attacker.target(), victim.target()])
    assert w.drain(5)
    results = [_take(w, m, recheck=_store_recheck(m)) for m in (attacker, victim)]
    subs = [Submission(uid=r.uid, hotkey=r.hotkey, fragment=r.fragment, first_seen=r.first_seen, commit_block=0,
                       update=r.artifact.encoded) for r in results if r.artifact is not None]
    assert [s.uid for s in subs] == [victim.uid], [r.reason for r in results]
    assert victim.uid not in find_copies(subs, 0.5)
    assert results[0].reason.startswith("late (replaced"), results[0].reason


def test_pinned_bytes_survive_a_restart_and_a_tampered_pin_is_dropped(tmp_path):
    head = Head(25)
    w = _watcher(tmp_path, head)
    m = _honest(tmp_path, n=1)[0]
    _poll_until(w, [m.target()], _pinned(w, m), timeout=5)
    again = EvidenceBook(tmp_path / "evidence")  # a new process on the same state dir
    sighting, data = again.pinned(WINDOW, m.hotkey)
    assert data == m.data and sighting.block == 25
    blob = next((tmp_path / "evidence" / str(WINDOW)).glob("*.bin"))
    blob.write_bytes(b"tampered on disk")
    assert EvidenceBook(tmp_path / "evidence").pinned(WINDOW, m.hotkey) is None


# --------------------------------------------------------------------------------------------- slow and broken stores


@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body", "blackhole", "huge"])
def test_a_slow_or_lying_store_is_absent_within_its_budget_and_delays_nobody(tmp_path, mode):
    head = Head(25)
    w = _watcher(tmp_path, head)
    honest = _honest(tmp_path, n=3)
    with HostileServer(mode, interval_s=0.5, size=MAX_BYTES // 2) as bad:
        slow = Miner(80)
        targets = [slow.target(f"s3://bkt/pre?endpoint={bad.url}")] + [m.target() for m in honest]
        t0 = time.monotonic()
        took = _poll_until(w, targets, _pinned(w, *honest), timeout=5)
        assert took < 1.0 + SLACK_S, f"honest uploads waited {took:.1f}s behind a {mode} store"
        _poll_until(w, targets, _settled(w, targets), timeout=BUDGET.window_budget_s + 3 * BUDGET.request_timeout_s
                    + SLACK_S + 5)
        assert w.drain(BUDGET.request_timeout_s * 3 + SLACK_S)
        spent = time.monotonic() - t0
    result, detail, attempts = w.status(WINDOW, slow.hotkey)
    if mode == "huge":  # refused on its Content-Length, never read: final for the window
        assert result is PollResult.OVERSIZED and "PeerTooLarge" in detail, (result, detail)
        assert attempts == 1
    else:
        assert result is PollResult.OVER_BUDGET, (result, detail)
    # worst case per peer per window: the window budget plus one request (with its retry) started just before
    assert spent <= BUDGET.window_budget_s + 2 * BUDGET.request_timeout_s + 2 * SLACK_S + 1, spent
    r = _take(w, slow)
    assert r.artifact is None and r.outcome is Outcome.STORE_FAILING, r.reason
    assert r.reason.startswith("absent (store failing"), r.reason
    for m in honest:
        assert _take(w, m).artifact is not None


def test_fifo_and_symlink_loop_in_a_local_store_are_refused_without_hanging(tmp_path):
    head = Head(25)
    w = _watcher(tmp_path, head)
    honest = _honest(tmp_path, n=1)
    fifo_miner = Miner(90, tmp_path / "store-fifo")
    loop_miner = Miner(91, tmp_path / "store-loop")
    fifo_path = fifo_miner.store.root / fifo_miner.key
    fifo_path.parent.mkdir(parents=True)
    os.mkfifo(fifo_path)
    loop_path = loop_miner.store.root / loop_miner.key
    loop_path.parent.mkdir(parents=True)
    os.symlink(loop_path, loop_path)  # a link to itself
    targets = [fifo_miner.target(), loop_miner.target(), honest[0].target()]
    t0 = time.monotonic()
    _poll_until(w, targets, lambda: all(w.status(WINDOW, t.hotkey)[0] is not None for t in targets), timeout=5)
    assert w.drain(5) and time.monotonic() - t0 < 2 + SLACK_S
    for m in (fifo_miner, loop_miner):
        result, detail, _ = w.status(WINDOW, m.hotkey)
        assert result is PollResult.REJECTED and "PeerRefused" in detail, (result, detail)
        assert w.status(WINDOW, m.hotkey)[2] == 1  # final: not retried this window
    assert _take(w, honest[0]).artifact is not None


# --------------------------------------------------------------------------------------------- a silent lead


def test_polling_goes_on_while_the_validator_waits_for_a_silent_lead(tmp_path):
    """The watcher thread keeps its cadence while the main thread is blocked (here: waiting for a manifest)."""
    head = Head(22)
    w = _watcher(tmp_path, head)
    late_comer = Miner(95, tmp_path / "store-95")
    targets = [late_comer.target()]
    thread = WatchThread(lambda: w.poll(WINDOW, targets), interval=0.1)
    thread.start()
    try:
        lead_store = LocalDirStore(tmp_path / "silent-lead")  # never publishes
        blocked = threading.Event()

        def follow_wait() -> None:  # what the non-lead does: wait for the lead's manifest
            end = time.monotonic() + 3
            while time.monotonic() < end and not lead_store.list(f"{NETUID}/manifests/"):
                time.sleep(0.1)
            blocked.set()

        waiter = threading.Thread(target=follow_wait)
        waiter.start()
        time.sleep(0.5)
        head.block = 33
        late_comer.upload()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and w.book.sighting(WINDOW, late_comer.hotkey) is None:
            time.sleep(0.05)
        assert not blocked.is_set(), "the wait ended before the check: the test proves nothing"
        sighting = w.book.sighting(WINDOW, late_comer.hotkey)
        assert sighting is not None, "no poll while the validator waited for the lead"
        assert sighting.block == 33  # the block at observation, not the window's first block
        waiter.join()
    finally:
        thread.stop()
        w.close()
    assert _take(w, late_comer).artifact is not None


def test_block_clock_never_stamps_a_block_read_before_the_bytes_arrived():
    reads = []
    head = Head(10)

    def read() -> int:
        reads.append(time.monotonic())
        return head()

    clock = BlockClock(read)
    t = time.monotonic()
    assert clock.after(t) == 10
    head.block = 11
    assert clock.after(t) == 10  # that read started after t: shared
    assert clock.after(time.monotonic()) == 11  # a later arrival needs a fresh read
    assert len(reads) == 2


def test_many_hanging_stores_never_queue_a_healthy_one(tmp_path):
    """More blackholed stores than workers: once they have failed once, healthy stores still get a worker at once."""
    head = Head(25)
    budget = WatchBudget(workers=4, request_timeout_s=3.0, window_budget_s=60, retry_after_s=0.0)
    w = _watcher(tmp_path, head, budget=budget)
    dead = [HostileServer("blackhole") for _ in range(8)]  # eight servers: the per-endpoint rule does not apply
    try:
        hung = [Miner(400 + i).target(f"s3://bkt/p{i}?endpoint={d.url}") for i, d in enumerate(dead)]
        _poll_until(w, hung, lambda: all(w.status(WINDOW, t.hotkey)[2] >= 1 for t in hung), timeout=20)
        for t in hung:  # keep them busy: every one of them is retried at once, forever
            w.poll(WINDOW, [t])
        late = _honest(tmp_path, n=3, first_uid=500)
        took = _poll_until(w, hung + [m.target() for m in late], _pinned(w, *late), timeout=5)
        assert took < 0.5 + SLACK_S, f"healthy uploads waited {took:.2f}s behind hanging stores"
        w.close()
    finally:
        for d in dead:
            d.close()


def test_sybils_behind_one_server_share_its_slots(tmp_path):
    """Sixteen fresh hotkeys whose stores all hang on one server cannot take the workers from an honest store."""
    head = Head(25)
    budget = WatchBudget(workers=4, request_timeout_s=3.0, window_budget_s=60, retry_after_s=0.0, per_endpoint=2)
    w = _watcher(tmp_path, head, budget=budget)
    with HostileServer("trickle_body", interval_s=0.5, size=MAX_BYTES // 2) as sybil_server:
        sybils = [Miner(600 + i).target(f"s3://bkt/s{i}?endpoint={sybil_server.url}") for i in range(16)]
        w.poll(WINDOW, sybils)  # all sixteen are due at once, none has failed yet
        honest = _honest(tmp_path, n=2, first_uid=700)
        took = _poll_until(w, sybils + [m.target() for m in honest], _pinned(w, *honest), timeout=5)
        assert took < 0.5 + SLACK_S, f"honest uploads waited {took:.2f}s behind sixteen sybils"
        assert sybil_server.connections <= 2
        w.close()
