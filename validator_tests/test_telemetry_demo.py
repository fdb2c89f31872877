"""Demo orchestrator pieces: process cleanup (no orphans), port choice, behaviour plan, bootstrap parsing,
and key hygiene (test wallets outside the run folder, deleted when the demo ends)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import subnet.demo as demo
from subnet.demo import DemoError, ProcessGroup, behaviours, key_material, parse_bootstrap, pick_port, port_free

# A child that ignores SIGTERM and has a grandchild in its process group.
STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(g.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_stop_all_terms_then_kills_child_and_grandchild(tmp_path: Path) -> None:
    group = ProcessGroup(logs_dir=tmp_path, env=dict(os.environ))
    polite = group.start("polite", [sys.executable, "-c", "import time; time.sleep(600)"])
    stubborn = group.start("stubborn", [sys.executable, "-c", STUBBORN])
    deadline = time.monotonic() + 20
    while not (tmp_path / "stubborn.log").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int((tmp_path / "stubborn.log").read_text().split()[0])
    assert _alive(grandchild)
    t0 = time.monotonic()
    group.stop_all(grace_s=1.0)
    assert time.monotonic() - t0 < 8
    assert polite.proc.returncode == -signal.SIGTERM
    assert stubborn.proc.returncode == -signal.SIGKILL
    assert _wait_dead(grandchild)
    group.stop_all(grace_s=0.1)  # idempotent


def test_children_die_when_the_demo_is_sigkilled(tmp_path: Path) -> None:
    code = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from subnet.demo import ProcessGroup\n"
        "g = ProcessGroup(logs_dir=Path(sys.argv[1]), env=dict(os.environ))\n"
        "c = g.start('sleeper', [sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(c.proc.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert _alive(child_pid)
    parent.kill()
    parent.wait()
    try:
        assert _wait_dead(child_pid), "orphan left behind after the demo was SIGKILLed"
    finally:
        if _alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_pick_port_prefers_the_default_and_avoids_a_taken_one() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert not port_free(taken)
        other = pick_port(taken)
        assert other != taken and port_free(other)
    free = pick_port(0)
    assert pick_port(free) == free


def test_behaviour_plan() -> None:
    assert behaviours(4) == ["honest", "honest", "noise", "copier"]
    assert behaviours(3) == ["honest", "noise", "copier"]
    assert behaviours(1) == ["honest"]
    with pytest.raises(DemoError):
        behaviours(0)


def test_parse_bootstrap(tmp_path: Path) -> None:
    # The shape `tessera devnet bootstrap --json` prints (BootstrapResult.to_dict()).
    raw = {"netuid": 2, "wallet_path": str(tmp_path),
           "owner": {"wallet": "owner", "hotkey": "5O", "coldkey": "5C", "uid": 0},
           "validator": {"wallet": "validator", "hotkey": "5V", "coldkey": "5C1", "uid": 1},
           "miners": [{"wallet": "miner-0", "hotkey": "5X", "coldkey": "5C2", "uid": 2}]}
    b = parse_bootstrap(raw, tmp_path / "elsewhere")
    assert b.netuid == 2 and b.validator.uid == 1 and b.wallet_path == tmp_path
    assert (b.miners[0].name, b.miners[0].hotkey, b.miners[0].ss58, b.miners[0].uid) == ("miner-0", "default", "5X", 2)
    with pytest.raises(DemoError, match="unexpected bootstrap output"):
        parse_bootstrap({"validator": {}}, tmp_path)


def test_key_material_finds_bittensor_keyfiles(tmp_path: Path) -> None:
    from subnet.devnet.bootstrap import ensure_wallet

    wallets = tmp_path / "wallets"
    ensure_wallet("miner-0", wallets)
    found = {p.relative_to(wallets).as_posix() for p in key_material(wallets)}
    assert {"miner-0/coldkey", "miner-0/coldkeypub.txt", "miner-0/hotkeys/default"} <= found
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.json").write_text('{"leader": 2, "hotkey": "5Fabc", "publicKey": "0x00"}')
    assert key_material(report) == []
    (report / "leak.json").write_text('{"secretPhrase": "word word"}')  # a copied keyfile, renamed
    assert key_material(report) == [report / "leak.json"]


class _QuietLogger:
    """Stands in for loguru in `demo.run`, which would otherwise drop the test session's handlers."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


@pytest.mark.parametrize("failure", [DemoError("boom"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_demo_deletes_its_wallets_however_it_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  failure: BaseException) -> None:
    made: list[Path] = []

    def make_wallet_dir() -> Path:
        path = tmp_path / f"wallets-{len(made)}"
        (path / "validator").mkdir(parents=True)
        (path / "validator" / "coldkey").write_text('{"secretPhrase": "test"}')
        made.append(path)
        return path

    def fail(*_args, **_kwargs):
        raise failure

    monkeypatch.setattr(demo, "make_wallet_dir", make_wallet_dir)
    monkeypatch.setattr(demo, "_start_data_prepare", fail)  # first step inside the try
    monkeypatch.setattr(demo, "_finish", lambda *args, **kwargs: None)
    monkeypatch.setattr(demo, "_install_signal_handlers", lambda: None)
    monkeypatch.setattr(demo, "logger", _QuietLogger())
    import argparse

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    run_dir = tmp_path / "run"
    status = demo.run(parser.parse_args(["--miners", "1", "--windows", "1", "--run-dir", str(run_dir)]))
    assert status == (130 if isinstance(failure, KeyboardInterrupt) else 1)
    assert made and not made[0].exists(), "test wallets left behind"
    assert not (run_dir / "wallets").exists()
    assert key_material(run_dir) == []


@pytest.mark.slow
def test_demo_end_to_end_writes_report_and_leaves_no_process(tmp_path: Path) -> None:
    """`tessera demo` as a user runs it: real devnet, validator and miners as processes."""
    import json

    from subnet.telemetry.events import read_events

    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "CI": "true"}
    proc = subprocess.run([sys.executable, "-m", "subnet.cli", "demo", "--miners", "3", "--windows", "2",
                           "--run-dir", str(run_dir), "--devnet.port", str(pick_port(0)), "--timeout", "480"],
                          capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout + proc.stderr
    events = read_events(run_dir / "events")
    pids = [e["pid"] for e in events if e["event"] == "devnet_started"]
    assert pids and all(_wait_dead(p, 5) for p in pids), "devnet left running"
    assert proc.returncode == 0, out[-4000:]
    report = run_dir / "report"
    assert f"report: {report}" in out
    summary = json.loads((report / "summary.json").read_text())
    assert summary["windows_scored"] >= 2
    assert (report / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    chain = json.loads((report / "chain.json").read_text())
    assert len(chain["neurons"]) == 5  # owner, validator, 3 miners
    board = (report / "leaderboard.csv").read_text()
    assert ",honest," in board and ",noise," in board and ",copier," in board
    assert any(e["event"] == "window_scored" for e in events)
    # No key material anywhere in the run folder, and the private wallet folder is gone.
    assert not (run_dir / "wallets").exists()
    assert key_material(run_dir) == [], "key material left in the run folder"
    line = next(ln for ln in out.splitlines() if ln.startswith("test wallets ("))
    wallets = Path(line.rsplit(": ", 1)[1].strip())
    assert run_dir not in wallets.parents and not wallets.exists(), "demo wallets not deleted"
    assert "UNENCRYPTED" in (run_dir / "logs" / "bootstrap.log").read_text()
