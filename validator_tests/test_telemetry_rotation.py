"""Event-log rotation: bounded disk over a weeks-long run, and readers that neither lose nor repeat events."""

from __future__ import annotations

import pytest

from subnet.errors import ConfigError
from subnet.node.config import TelemetryConfig
from subnet.telemetry.dashboard import DashboardFeed
from subnet.telemetry.events import EventLog, EventTail, TelemetryError, log_path, read_events


def _emit(log: EventLog, start: int, n: int) -> None:
    for i in range(start, start + n):
        log.emit("window_trained", window=i, pad="x" * 200)


def test_rotation_bounds_the_files_and_keeps_the_newest_history(tmp_path):
    path = log_path(tmp_path, "miner", 7)
    with EventLog(path, component="miner", uid=7, max_bytes=4096, keep=3) as log:
        _emit(log, 0, 200)
        segments = log.segments()
    assert len(segments) == 3, segments  # older ones deleted
    assert all(s.stat().st_size >= 4096 for s in segments)
    assert path.stat().st_size < 4096 + 400
    windows = [e["window"] for e in read_events(tmp_path)]
    assert windows == sorted(windows) and windows[-1] == 199
    assert len(windows) == len(set(windows))  # no event twice
    # what is kept is a contiguous tail of the run
    assert windows == list(range(windows[0], 200))
    assert windows[0] > 0  # and the oldest really went


def test_tail_follows_a_rotation_without_losing_or_repeating(tmp_path):
    path = log_path(tmp_path, "validator", 1)
    tail = EventTail(tmp_path)
    got: list[int] = []
    with EventLog(path, component="validator", uid=1, max_bytes=2048, keep=50) as log:
        for chunk in range(10):
            _emit(log, chunk * 7, 7)
            got.extend(e["window"] for e in tail.poll())
    assert got == list(range(70))
    assert len(EventLog(path, component="validator", max_bytes=2048, keep=50).segments()) >= 5


def test_dashboard_does_not_restart_on_a_rotation(tmp_path):
    path = log_path(tmp_path, "validator", 1)
    feed = DashboardFeed(tmp_path, min_poll_s=0.0)
    with EventLog(path, component="validator", uid=1, max_bytes=2048, keep=50) as log:
        folded = 0
        for chunk in range(6):
            _emit(log, chunk * 5, 5)
            folded += feed.poll(force=True)
    assert folded == 30  # each record folded exactly once: a reset would fold them again


def test_truncation_in_place_is_read_again(tmp_path):
    path = log_path(tmp_path, "miner", 2)
    tail = EventTail(tmp_path)
    with EventLog(path, component="miner", uid=2) as log:
        _emit(log, 0, 5)
        assert len(tail.poll()) == 5
    path.write_bytes(b"")
    with EventLog(path, component="miner", uid=2) as log:
        _emit(log, 100, 2)
    assert [e["window"] for e in tail.poll()] == [100, 101]


def test_bad_rotation_settings_are_refused():
    with pytest.raises(TelemetryError):
        EventLog("/tmp/never-opened.jsonl", component="miner", max_bytes=-1)
    with pytest.raises(ConfigError):
        TelemetryConfig(keep_files=0)
    assert TelemetryConfig(max_mb=1, keep_files=2).rotation == {"max_bytes": 2**20, "keep": 2}


def _scored(log: EventLog, window: int, uid: int, score: float) -> None:
    log.emit("window_scored", window=window, version=window, heldout_loss=7.0 - window * 0.1,
             scores={str(uid): {"score": score, "reason": "scored", "fragment": 0}}, ratings={}, leader=uid,
             weights={str(uid): 1.0})


@pytest.mark.parametrize("chosen", ["", "4", "5Val4"])
def test_dashboard_shows_one_validator_when_several_log_into_one_directory(tmp_path, chosen):
    v1 = EventLog(log_path(tmp_path, "validator", 1), component="validator", uid=1, hotkey="5Val1")
    v4 = EventLog(log_path(tmp_path, "validator", 4), component="validator", uid=4, hotkey="5Val4")
    for w in range(3):
        _scored(v1, w, uid=10, score=0.5)
        _scored(v4, w, uid=20, score=0.9)
    v1.close()
    v4.close()
    st = DashboardFeed(tmp_path, min_poll_s=0.0, validator=chosen).snapshot()
    shown = {"": (1, 10, "4/5Val4"), "4": (4, 20, "1/5Val1"), "5Val4": (4, 20, "1/5Val1")}[chosen]
    assert st["source"]["validator_shown"]["uid"] == shown[0]
    assert [row["uid"] for row in st["leaderboard"]] == [shown[1]]  # the other's miner is not mixed in
    assert st["summary"]["windows_scored"] == 3
    assert st["source"]["other_validators"] == {shown[2]: 3}
