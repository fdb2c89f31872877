"""The web dashboard's JSON and pages, served by the real server over a recorded run's event logs.

The browser test (headless Chromium, screenshot) is test_dashboard_browser.py; this file is the fast part:
what the endpoints say against what the events say, the incremental reader's refusals (torn, garbage and
wrong-shaped lines, a truncated log), the read-only HTTP surface, and the wiring (`--dashboard.port` on the
validator, `tessera dashboard` as a process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from harness.dashboard_run import BEHAVIOURS, write_run
from harness.devnet import free_port

from subnet.config import parse_config
from subnet.errors import ConfigError
from subnet.node.config import ValidatorNeuronConfig
from subnet.telemetry.config import DashboardConfig
from subnet.telemetry.dashboard import DashboardFeed
from subnet.telemetry.dashboard_http import DashboardServer
from subnet.telemetry.events import EventLog, log_path
from subnet.telemetry.observe import start_observability

ROOT = Path(__file__).resolve().parents[1]


def get(url: str, *, method: str = "GET", host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str) -> dict:
    status, headers, body = get(url)
    assert status == 200 and headers["Content-Type"] == "application/json", (status, body[:200])
    return json.loads(body)


@pytest.fixture()
def served(tmp_path: Path):
    run = write_run(tmp_path / "events")
    server = DashboardServer(DashboardFeed(run.events_dir, min_poll_s=0.0), "127.0.0.1", 0, refresh_s=2.0)
    try:
        yield run, server
    finally:
        server.close()


def test_endpoints_say_what_the_events_say(served):
    run, server = served
    st = get_json(server.url + "api/state")
    s = st["summary"]
    assert (s["window"], s["version"], s["model_hash"]) == (run.last_window, run.version, run.model_hash)
    assert s["leader"] == run.leader and s["windows_scored"] == run.last_window - run.first_window + 1
    assert s["lead"]["hotkey"] == run.validator_hotkey and s["validator_hotkey"] == run.validator_hotkey
    assert (s["weights_ok"], s["weights_failed"], s["last_weights_error"]) == (4, 1, "SettingWeightsTooFast")
    # leaderboard: every uid, ranked by OpenSkill ordinal as the competition left it, with its weight
    board = st["leaderboard"]
    assert [r["uid"] for r in board] == sorted(run.ordinals, key=lambda u: -run.ordinals[u])
    assert board[0]["leader"] and board[0]["uid"] == run.leader
    for r in board:
        assert r["ordinal"] == pytest.approx(run.ordinals[r["uid"]])
        assert r["weight"] == pytest.approx(run.weights[r["uid"]])
        assert r["hotkey"] == run.hotkeys[r["uid"]] and r["behaviour"] == BEHAVIOURS[r["uid"]]
    by_uid = {r["uid"]: r for r in board}
    assert by_uid[5]["outcome"] == "copy" and by_uid[4]["outcome"] == "no_proof_of_work"
    assert by_uid[1]["uploads"] == len(run.fragments)
    # loss curve: the held-out loss of every window, in order
    assert [tuple(p) for p in st["loss"]["before"]] == [(w, pytest.approx(v)) for w, v in run.heldout]
    assert len(st["loss"]["after"]) == len(run.heldout)
    # timeline and fragment map: the real assignment's fragments, outcomes counted per window
    assert [w["window"] for w in st["windows"]] == sorted(run.fragments)
    for row in st["windows"]:
        assert {int(u): p["fragment"] for u, p in row["peers"].items()} == run.fragments[row["window"]]
        assert sum(row["counts"].values()) == len(BEHAVIOURS) and row["counts"]["scored"] == 3
        assert set(row["selected"]) == {1, 2, 3}
    late = [w for w in st["windows"] if w["peers"]["6"]["outcome"] == "late"]
    assert len(late) == st["health"]["late_uploads"] == 3
    assert st["fragments"]["window"] == run.last_window
    assert sorted(u for us in st["fragments"]["uids"].values() for u in us) == sorted(BEHAVIOURS)
    # weights and health
    assert {int(u): v for u, v in st["weights"]["current"].items()} == \
        pytest.approx({u: v for u, v in run.weights.items() if v})
    assert [c["outcome"] for c in st["weights"]["calls"]] == ["set", "set", "refused", "set", "set"]
    h = st["health"]
    assert h["chain_errors"] == {"TimeoutError": 1}
    assert h["store_errors"] == {"peer:TimeoutError": 7, "own:ClientError": 1}
    assert h["last_store_error"]["error"] == "put failed: 503 Slow Down"
    assert st["source"]["rejected"] == 0 and st["source"]["files"] == 1 + len(BEHAVIOURS)
    # each section is also served on its own, equal to its part of the whole
    for section in ("summary", "leaderboard", "loss", "windows", "weights"):
        assert get_json(server.url + "api/" + section) == st[section]


def test_pages_are_served_read_only_and_self_contained(served):
    _, server = served
    status, headers, body = get(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"] and headers["Cache-Control"] == "no-store"
    assert b'src="/static/dashboard.js"' in body and b"http" not in body.replace(b'charset="utf-8"', b"")
    for path, ctype in (("static/dashboard.js", "text/javascript"), ("static/dashboard.css", "text/css")):
        status, headers, body = get(server.url + path)
        assert status == 200 and headers["Content-Type"].startswith(ctype) and len(body) > 500
        own = body.replace(b"http://www.w3.org/2000/svg", b"")  # the SVG namespace is a name, not a fetch
        assert b"http://" not in own and b"https://" not in own
    assert get_json(server.url + "api/config")["refresh_s"] == 2.0
    assert get(server.url + "healthz")[0] == 200
    for path in ("api/nope", "static/../dashboard.py", "static/dashboard.py", "..%2f..%2fetc/passwd", "favicon.ico"):
        assert get(server.url + path)[0] == 404, path
    for method in ("POST", "PUT", "DELETE"):
        assert get(server.url + "api/state", method=method)[0] == 405
    status, headers, body = get(server.url + "api/state", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    # bound to loopback: a page that rebinds its own name to 127.0.0.1 gets nothing
    assert get(server.url + "api/state", host=f"evil.example:{server.port:d}")[0] == 403
    assert get(server.url + "api/state", host=f"localhost:{server.port:d}")[0] == 200


def test_reads_incrementally_and_survives_bad_lines(tmp_path: Path):
    events = tmp_path / "events"
    feed = DashboardFeed(events, min_poll_s=0.0)
    assert feed.snapshot()["summary"]["window"] is None  # no directory yet: an empty dashboard, no error
    log = EventLog(log_path(events, "validator", 0), component="validator", uid=0, hotkey="hk")
    log.emit("window_scored", window=1, version=1, heldout_loss=7.0,
             scores={"3": {"score": 0.01, "reason": "scored", "fragment": 0}}, ratings={}, leader=3, weights={"3": 1.0})
    assert feed.snapshot()["summary"]["window"] == 1
    path = log.path
    with path.open("ab") as fh:
        fh.write(b"this is not json\n")
        fh.write(b'{"event": "window_scored", "component": "validator", "ts": 2, "window": 2, "scores": "oops"}\n')
        fh.write(b'{"event": "window_scored", "component": "validator", "ts": 3, "window": 3, "scores": {"4": [1]},'
                 b' "ratings": 5}\n')
        fh.write(b'["a list, not a record"]\n')
        fh.write(b'{"event": "window_scored", "component": "validator", "ts": 4, "window": 4, "heldout_loss": 6.5')
    st = feed.snapshot()
    assert st["source"]["rejected"] == 2 and "AttributeError" in st["source"]["last_rejected"]
    assert st["summary"]["window"] == 3 and [p[0] for p in st["loss"]["before"]] == [1]  # torn line not read yet
    assert json.loads(json.dumps(st, allow_nan=False)) == st
    with path.open("ab") as fh:
        fh.write(b', "scores": {}}\n')
    st = feed.snapshot()
    assert st["summary"]["window"] == 4 and [p[0] for p in st["loss"]["before"]] == [1, 4]
    assert feed.poll(force=True) == 0  # nothing new: nothing folded twice
    # a log cut short (rotated or truncated): read again from the start, not stuck past its end
    log.close()
    path.write_bytes(b"")
    log = EventLog(path, component="validator", uid=0, hotkey="hk")
    log.emit("window_scored", window=9, version=2, heldout_loss=6.0, scores={}, ratings={}, weights={})
    st = feed.snapshot()
    assert st["summary"]["window"] == 9 and st["summary"]["windows_scored"] == 1 and st["source"]["rejected"] == 0
    log.close()


def test_dashboard_config_defaults_and_refusals():
    cfg = parse_config(ValidatorNeuronConfig, ["--netuid", "3"], env={})
    assert cfg.dashboard.port == 0 and not cfg.dashboard.enabled and cfg.dashboard.host == "127.0.0.1"
    cfg = parse_config(ValidatorNeuronConfig, ["--netuid", "3"], env={"TESSERA_DASHBOARD_PORT": "9510"})
    assert cfg.dashboard.enabled and cfg.dashboard.port == 9510
    for bad in (dict(port=70000), dict(host=""), dict(refresh_s=0), dict(history=0)):
        with pytest.raises(ConfigError):
            DashboardConfig(**bad)


def test_validator_dashboard_port_serves_its_event_log(tmp_path: Path):
    """`--dashboard.port` on the validator: the event log defaults to <state_dir>/events and the page reads it."""
    state = tmp_path / "state"
    port = free_port()
    cfg = parse_config(ValidatorNeuronConfig,
                       ["--netuid", "3", "--state_dir", str(state), "--dashboard.port", str(port)], env={})
    cfg, obs = start_observability(cfg, "validator")
    try:
        assert cfg.telemetry.dir == str(state / "events") and obs.dashboard.port == port
        with EventLog(log_path(cfg.telemetry.dir, "validator", 0), component="validator", uid=0) as log:
            log.emit("window_scored", window=5, version=2, heldout_loss=6.0, scores={}, ratings={}, weights={})
        time.sleep(1.1)  # the feed reads the log at most every min(1, refresh_s / 2) s
        st = get_json(f"http://127.0.0.1:{port}/api/state")
        assert st["summary"]["window"] == 5 and st["health"]["state_dir"]["model"]["present"] is False
        with pytest.raises(ConfigError, match="cannot serve the dashboard"):  # a busy port refuses the start
            start_observability(cfg, "validator")
    finally:
        obs.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_tessera_dashboard_command_serves_until_terminated(tmp_path: Path):
    run = write_run(tmp_path / "events", windows=3)
    port = free_port()
    env = {**os.environ, "TESSERA_DASHBOARD_PORT": str(port), "TESSERA_TELEMETRY_DIR": str(run.events_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "subnet.cli", "dashboard", "--dashboard.refresh_s", "1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                st = get_json(f"http://127.0.0.1:{port}/api/state")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        assert st["summary"]["window"] == run.last_window and st["summary"]["leader"] == run.leader
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0 and f"http://127.0.0.1:{port}/" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
