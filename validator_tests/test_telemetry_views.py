"""Scoreboard and report from a synthetic run directory written with the real EventLog."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest

from subnet.telemetry.events import EventLog, log_path, read_events
from subnet.telemetry.report import leaderboard, write_report
from subnet.telemetry.scoreboard import Scoreboard, render_plain, render_to_string, sparkline
from subnet.telemetry.scoreboard import rows as board_rows
from subnet.telemetry.state import fold

BEHAVIOUR = {2: "honest", 3: "honest", 4: "noise", 5: "copier"}
# Per-window score of each behaviour; uid 3 is the better honest miner.
SCORE = {2: 0.04, 3: 0.06, 4: -0.01, 5: 0.0}
WINDOWS = 6


def write_run(events_dir: Path, windows: int = WINDOWS) -> None:
    """A run as the neurons would log it: uploads, window_scored, manifest, weights_set."""
    val = EventLog(log_path(events_dir, "validator", 1), component="validator", uid=1, hotkey="5Validator")
    miners = {u: EventLog(log_path(events_dir, "miner", u), component="miner", uid=u, hotkey=f"5Miner{u}")
              for u in BEHAVIOUR}
    ts, loss, mu = 1000.0, 5.0, {u: 25.0 for u in BEHAVIOUR}
    for w in range(windows):
        for u, m in miners.items():
            m.emit("uploaded", ts=ts + u, window=w, fragment=u % 2, bytes=1000, base_version=w,
                   loss_first=loss, loss_last=loss - 0.05, behaviour=BEHAVIOUR[u])
        for u in BEHAVIOUR:
            mu[u] += SCORE[u] * 10
        scores = {u: {"score": SCORE[u], "norm_score": max(SCORE[u], 0) / 0.06, "heldout_improvement": SCORE[u],
                      "proof_of_work": BEHAVIOUR[u] != "noise", "reason": None, "fragment": u % 2} for u in BEHAVIOUR}
        ratings = {u: {"mu": mu[u], "sigma": 5.0, "ordinal": mu[u] - 15.0} for u in BEHAVIOUR}
        weights = {3: 0.6, 2: 0.4, 4: 0.0, 5: 0.0}
        val.emit("window_scored", ts=ts + 10, window=w, version=w, heldout_loss=loss, scores=scores,
                 ratings=ratings, leader=3, weights=weights)
        val.emit("manifest_published", ts=ts + 11, window=w, new_version=w + 1, model_hash=f"hash{w}",
                 heldout_loss_after=loss - 0.1, selected=[{"uid": 3, "fragment": 1, "coef": 1.0}])
        val.emit("weights_set", ts=ts + 12, block=100 + 10 * w, weights=weights, success=True, error=None)
        loss -= 0.1
        ts += 20


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    write_run(tmp_path / "events")
    return tmp_path


def test_state_folds_the_run(run_dir: Path) -> None:
    st = fold(read_events(run_dir / "events"))
    assert st.windows_scored == WINDOWS and st.window == WINDOWS - 1 and st.version == WINDOWS
    assert st.block == 100 + 10 * (WINDOWS - 1)
    assert st.leader == 3 and st.validator_uid == 1
    assert [w for w, _ in st.loss_series] == list(range(WINDOWS))
    assert st.heldout_loss == pytest.approx(5.0 - 0.1 * (WINDOWS - 1))
    assert st.miners[4].behaviour == "noise" and st.miners[4].uploads == WINDOWS
    assert st.miners[3].weight == pytest.approx(0.6) and st.miners[3].selected == WINDOWS
    assert st.miners[2].mean_score == pytest.approx(0.04)
    assert 1 not in st.miners  # the validator is not a miner row


def test_scoreboard_renders_rich_and_plain(run_dir: Path) -> None:
    board = Scoreboard(run_dir / "events", title="T")
    st = board.refresh()
    text = render_to_string(st, width=160)
    assert f"window {WINDOWS - 1}" in text and "block 150" in text and f"version {WINDOWS}" in text
    assert "held-out loss 4.5000" in text
    rows = [line for line in text.splitlines() if "honest" in line or "noise" in line or "copier" in line]
    assert len(rows) == 4
    assert "★3" in rows[0]  # leader first
    assert "noise" in text and "FAIL" in text and "copier" in text
    plain = render_plain(st, "T")
    assert plain.splitlines()[0].startswith("T  window 5")
    assert "★3" in plain.splitlines()[3]
    # Incremental: a new window shows up on the next refresh, nothing is double counted.
    EventLog(log_path(run_dir / "events", "validator", 1), component="validator", uid=1).emit(
        "window_scored", ts=9999.0, window=WINDOWS, version=WINDOWS, heldout_loss=4.0, scores={}, ratings={},
        leader=2, weights={2: 1.0})
    st = board.refresh()
    assert st.windows_scored == WINDOWS + 1 and st.leader == 2 and st.miners[3].weight == 0.0
    assert st.miners[2].uploads == WINDOWS


def test_scoreboard_run_plain_stops_when_told(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls = []
    st = Scoreboard(run_dir / "events").run(lambda s: calls.append(s.windows_scored) or len(calls) >= 2,
                                            poll_s=0.01, live=False)
    assert st.windows_scored == WINDOWS
    out = capsys.readouterr().out
    assert "held-out loss" in out and "★3" in out


def test_sparkline_shape() -> None:
    assert sparkline([]) == ""
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁"
    assert len(sparkline(list(range(100)), width=10)) == 10


def test_report_files(run_dir: Path) -> None:
    chain = {"netuid": 1, "block": 200, "neurons": [
        {"uid": 0, "hotkey": "5Owner", "validator_permit": False, "incentive": 0.0, "emission": 0.0},
        {"uid": 1, "hotkey": "5Validator", "validator_permit": True, "incentive": 0.0, "emission": 9.0},
        {"uid": 3, "hotkey": "5Miner3", "validator_permit": False, "incentive": 0.6, "emission": 5.0},
    ], "weights": {"1": {"3": 0.6, "2": 0.4}}}
    paths = write_report(run_dir / "events", run_dir / "report", chain=chain, title="T")
    png = paths.loss_curve.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 600 and height >= 500 and len(png) > 20_000
    with paths.leaderboard_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["uid"] for r in rows][:4] == ["3", "2", "5", "4"]  # weight, then ordinal
    assert rows[0]["behaviour"] == "honest" and rows[0]["incentive"] == "0.6" and rows[0]["rounds"] == str(WINDOWS)
    assert {r["uid"] for r in rows} == {"0", "1", "2", "3", "4", "5"}
    assert next(r for r in rows if r["uid"] == "1")["behaviour"] == "validator"
    md = paths.leaderboard_md.read_text()
    assert md.index("| 1 | 3 |") < md.index("| 2 | 2 |")
    assert json.loads(paths.chain_json.read_text())["block"] == 200
    summary = json.loads(paths.summary_json.read_text())
    assert summary["windows_scored"] == WINDOWS and summary["heldout_loss_first"] == 5.0
    assert summary["heldout_loss_last"] == pytest.approx(4.5)


def test_leaderboard_orders_by_weight_then_rating(run_dir: Path) -> None:
    st = fold(read_events(run_dir / "events"))
    st.miners[4].weight = 0.9  # an injected standing: the paid uid must top the board
    rows = leaderboard(st)
    assert [r.uid for r in rows] == [4, 3, 2, 5]
    assert [r.rank for r in rows] == [1, 2, 3, 4]


def test_report_on_empty_run(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    paths = write_report(tmp_path / "events", tmp_path / "report")
    assert paths.loss_curve.read_bytes()[:4] == b"\x89PNG"
    assert paths.chain_json is None
    assert paths.leaderboard_csv.read_text().startswith("rank,uid,")


def test_scoreboard_live_mode_renders_through_rich_live(run_dir: Path) -> None:
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=160, record=True)
    polls = []
    st = Scoreboard(run_dir / "events").run(lambda s: polls.append(1) or len(polls) >= 3, poll_s=0.01,
                                            live=True, console=console)
    assert st.windows_scored == WINDOWS
    text = console.export_text()
    assert "★3" in text and "held-out loss" in text


def test_interactive_is_false_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from subnet.telemetry.scoreboard import interactive

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("CI", "true")
    assert interactive(Tty()) is False
    monkeypatch.delenv("CI")
    assert interactive(Tty()) is True
    assert interactive(io_stream := open(__file__)) is False
    io_stream.close()


def test_demo_roles_label_owner_and_validator(run_dir: Path) -> None:
    demo = EventLog(log_path(run_dir / "events", "demo", "demo"), component="demo")
    demo.emit("demo_role", ts=1.0, uid=0, hotkey="5Owner", role="owner")
    demo.emit("demo_role", ts=1.0, uid=1, hotkey="5Validator", role="validator")
    st = fold(read_events(run_dir / "events"))
    assert st.miners[0].behaviour == "owner" and st.validator_uid == 1 and 1 not in st.miners
    assert any(r[1] == "owner" for r in board_rows(st))
