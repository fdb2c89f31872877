"""`tessera devnet status|stop --devnet.dir DIR` against a real devnet process.

The devnet is found through the pidfile in DIR (its port included), so
status and stop need nothing but the directory; a pidfile naming a process
that is not a devnet is never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness.devnet import free_port

from subnet.devnet.cli import Liveness, read_pidfile, stop_devnet

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def tessera(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "subnet.cli", "devnet", *args], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=timeout)


def _gone(pid: int, within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_status_and_stop_find_the_devnet_by_its_dir(tmp_path: Path) -> None:
    d = tmp_path / "dn"
    res = tessera("status", "--devnet.dir", str(d))
    assert res.returncode == 3 and res.stdout.strip() == f"devnet not running from {d}" and not res.stderr
    port = free_port()
    cfg = tmp_path / "devnet.yaml"  # the devnet commands read --config too
    cfg.write_text(f"devnet:\n  dir: {d}\n  port: {port}\n  block_ms: 100\n  substrate_port: 0\n")
    res = tessera("start", "--config", str(cfg), "--detach", "--log_level", "WARNING")
    assert res.returncode == 0, res.stderr
    rec = read_pidfile(d)
    assert rec.liveness is Liveness.RUNNING and rec.port == port
    try:
        res = tessera("status", "--devnet.dir", str(d))  # no --devnet.port: the pidfile has it
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"devnet running: pid {rec.pid}, ws://127.0.0.1:{port}" in res.stdout
        first = json.loads(tessera("status", "--devnet.dir", str(d), "--json").stdout)
        time.sleep(0.5)
        second = json.loads(tessera("status", "--devnet.dir", str(d), "--json").stdout)
        assert first["running"] and first["reachable"] and first["pid"] == rec.pid
        assert first["endpoint"] == f"ws://127.0.0.1:{port}" and second["block"] > first["block"] >= 0
        res = tessera("start", "--devnet.dir", str(d), "--devnet.port", str(free_port()), "--detach")
        assert res.returncode == 1 and "already runs" in res.stderr
        res = tessera("stop", "--devnet.dir", str(d))
        assert res.returncode == 0 and res.stdout.strip() == f"devnet (pid {rec.pid}) stopped"
        assert _gone(rec.pid) and not (d / "devnet.pid").exists()  # a clean shutdown removes its pidfile
        res = tessera("status", "--devnet.dir", str(d), "--json")
        assert res.returncode == 3 and json.loads(res.stdout)["running"] is False
        assert tessera("stop", "--devnet.dir", str(d)).stdout.strip() == f"no devnet running from {d}"
    finally:
        try:
            os.kill(rec.pid, signal.SIGKILL)  # only if a failed assertion left it running
        except ProcessLookupError:
            pass


def test_a_stale_pidfile_is_never_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "devnet.pid").write_text(f"{other.pid} 9946\n")  # pid reused by something else
        assert read_pidfile(tmp_path).liveness is Liveness.STALE
        assert stop_devnet(tmp_path, grace_s=0.5) == ("stale", other.pid)
        assert other.poll() is None  # untouched
        res = tessera("status", "--devnet.dir", str(tmp_path))
        assert res.returncode == 3 and "stale pidfile" in res.stdout
    finally:
        other.kill()
        other.wait()
    (tmp_path / "devnet.pid").write_text("garbage\n")
    assert read_pidfile(tmp_path).liveness is Liveness.STOPPED


def test_stop_kills_a_devnet_that_ignores_sigterm(tmp_path: Path) -> None:
    # An injected fault: a process named like the devnet that ignores SIGTERM (a wedged server).
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
           "time.sleep(60)  # subnet.devnet stand-in"
    wedged = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert wedged.stdout is not None and wedged.stdout.readline().strip() == "ready"
        (tmp_path / "devnet.pid").write_text(f"{wedged.pid} 1\n")
        t0 = time.monotonic()
        assert stop_devnet(tmp_path, grace_s=0.5) == ("killed", wedged.pid)
        assert 0.5 <= time.monotonic() - t0 < 10
        assert wedged.wait(5) == -signal.SIGKILL
    finally:
        if wedged.poll() is None:
            wedged.kill()
            wedged.wait()


def test_bad_devnet_flags_exit_2(tmp_path: Path) -> None:
    res = tessera("start", "--devnet.dir", str(tmp_path), "--devnet.port", "70000")
    assert res.returncode == 2 and "--devnet.port must be 1..65535" in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("devnet: {prot: 1}\n")
    res = tessera("status", "--config", str(bad))
    assert res.returncode == 2 and "devnet.prot (did you mean devnet.port?)" in res.stderr
