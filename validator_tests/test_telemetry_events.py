"""Event log: concurrent writers in separate processes, torn lines, incremental tail."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from subnet.telemetry.events import (
    EventLog,
    EventTail,
    TelemetryError,
    log_path,
    open_event_log,
    read_events,
    uid_map,
)

N_PER_WRITER = 2000


def _writer(path: str, uid: int, n: int, start: mp.Event) -> None:  # type: ignore[valid-type]
    log = EventLog(path, component="miner", uid=uid, hotkey=f"hk{uid}")
    start.wait()
    pad = "x" * (uid * 700)  # different line lengths make interleaving visible
    for i in range(n):
        log.emit("uploaded", window=i, seq=i, pad=pad)
    log.close()


def test_two_processes_append_to_one_file_without_interleaving(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(path), uid, N_PER_WRITER, start)) for uid in (1, 2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    parsed = [json.loads(line) for line in lines[:-1]]  # every line is whole JSON
    assert len(parsed) == 2 * N_PER_WRITER
    for uid in (1, 2):
        seqs = [e["seq"] for e in parsed if e["uid"] == uid]
        assert seqs == list(range(N_PER_WRITER))  # per-writer order kept, nothing lost
        assert all(len(e["pad"]) == uid * 700 for e in parsed if e["uid"] == uid)
    assert read_events(path) == sorted(parsed, key=lambda e: e["ts"])


def test_torn_final_line_is_skipped_and_picked_up_once_complete(tmp_path: Path) -> None:
    path = tmp_path / "validator-1.jsonl"
    log = EventLog(path, component="validator", uid=1)
    log.emit("window_scored", window=0, heldout_loss=5.0)
    log.emit("window_scored", window=1, heldout_loss=4.9)
    full = json.dumps({"ts": time.time(), "component": "validator", "uid": 1, "hotkey": None,
                       "event": "window_scored", "window": 2, "heldout_loss": 4.8}) + "\n"
    with open(path, "ab") as fh:  # simulate a writer killed mid-line
        fh.write(full[: len(full) // 2].encode())
    tail = EventTail(tmp_path)
    assert [e["window"] for e in read_events(tmp_path)] == [0, 1]
    assert [e["window"] for e in tail.poll()] == [0, 1]
    assert tail.poll() == []
    with open(path, "ab") as fh:
        fh.write(full[len(full) // 2 :].encode())
    assert [e["window"] for e in tail.poll()] == [2]
    assert [e["window"] for e in read_events(path)] == [0, 1, 2]


def test_sigkilled_writer_leaves_only_complete_lines(tmp_path: Path) -> None:
    code = (
        "import sys; from subnet.telemetry.events import EventLog\n"
        "log = EventLog(sys.argv[1], component='miner', uid=7)\n"
        "i = 0\n"
        "while True:\n"
        "    log.emit('uploaded', seq=i, blob='y' * 5000); i += 1\n"
    )
    path = tmp_path / "miner-7.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.monotonic() + 30
    while (not path.exists() or path.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    events = read_events(path)
    assert len(events) > 10
    assert [e["seq"] for e in events] == list(range(len(events)))


def test_malformed_middle_line_skipped_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"ts":1,"component":"demo","uid":null,"hotkey":null,"event":"a"}\n'
                    "garbage{\n"
                    '{"ts":2,"component":"demo","uid":null,"hotkey":null,"event":"b"}\n')
    assert [e["event"] for e in read_events(path)] == ["a", "b"]


def test_numpy_values_and_nonfinite_are_written_as_strict_json(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "v.jsonl", component="validator")
    rec = log.emit("window_scored", window=np.int64(3), heldout_loss=np.float32(2.5),
                   scores={4: {"score": float("nan")}}, weights=np.array([0.25, 0.75]))
    assert rec["event"] == "window_scored"
    line = (tmp_path / "v.jsonl").read_text().strip()
    back = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert back["window"] == 3 and math.isclose(back["heldout_loss"], 2.5)
    assert back["scores"] == {"4": {"score": None}}
    assert uid_map(back["scores"]) == {4: {"score": None}}
    assert back["weights"] == [0.25, 0.75]


def test_bad_events_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(TelemetryError):
        EventLog(tmp_path / "a.jsonl", component="oracle")
    log = EventLog(tmp_path / "b.jsonl")
    with pytest.raises(TelemetryError, match="component"):
        log.emit("x")
    with pytest.raises(TelemetryError, match="serialisable"):
        log.emit("x", component="demo", thing=object())
    log.close()
    with pytest.raises(TelemetryError, match="closed"):
        log.emit("x", component="demo")
    assert (tmp_path / "b.jsonl").read_text() == ""


def test_open_event_log_naming_and_disabled(tmp_path: Path) -> None:
    assert open_event_log(None, "miner", name=3) is None
    log = open_event_log(tmp_path / "ev", "miner", name="5F/abc", uid=3, hotkey="5F")
    assert log is not None and log.path == log_path(tmp_path / "ev", "miner", "5F/abc")
    assert log.path.name == "miner-5F_abc.jsonl"
    log.emit("synced", version=1, model_hash="h")
    (ev,) = read_events(tmp_path / "ev")
    assert (ev["component"], ev["uid"], ev["hotkey"], ev["version"]) == ("miner", 3, "5F", 1)
