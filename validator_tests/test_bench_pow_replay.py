"""bench/validator_pow_replay.py on a recorded file it can be checked against by hand.

Two miners over 6 windows: an honest one whose assigned pages improve clearly
more than the control pages (t far above drift + bar), and a free-rider whose
assigned and control pages improve alike (t about 0). The replay's tables must
pay the first every window, the second never, also as a newcomer joining late.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import validator_pow_replay as replay  # noqa: E402


def _pages(rng: random.Random, mean: float, n: int) -> list[float]:
    return [mean + rng.gauss(0.0, 1e-4) for _ in range(n)]


def _record(tmp_path: Path, windows: int = 6) -> Path:
    rng = random.Random(7)
    recs = []
    for w in range(windows):
        for kind, own in (("honest", 2e-3), ("wrong_pages", 0.0)):
            recs.append({"window": w, "kind": kind, "miner": 0,
                         "pages16": {"own_pages": _pages(rng, own, 16), "held_pages": _pages(rng, 0.0, 16),
                                     "rand_pages": _pages(rng, 0.0, 8)}})
    path = tmp_path / "pow.json"
    path.write_text(json.dumps({"windows": windows, "records": recs}))
    return path


def test_the_totals_and_the_newcomer_table_pay_honest_work_and_never_the_free_rider(tmp_path: Path) -> None:
    path = str(_record(tmp_path))
    totals = "\n".join(replay.totals([path]))
    default = "| A8 H8 R0 (NETWORK_SCORE) | 1.5 / 3 / 4.5 / 2 (default) |"
    row = next(line for line in totals.splitlines() if line.startswith(default))
    assert "| 6/6 (6) |" in row and "| 0/6 (0) |" in row and row.endswith("| none |"), row
    assert "| A8 H8 R0 (NETWORK_SCORE) | 1.5 / 3 / 6 / 1 (previous default) |" in totals
    joined = replay.joiners([path], first=1)[-1]
    assert joined.endswith("| 4/4 (4) | 0/0 (0) | 0/4 (0) |"), joined  # k = 1..4: 4 joins each


def test_a_weak_first_window_is_paid_late_when_the_second_reaches_the_bar(tmp_path: Path) -> None:
    path = _record(tmp_path)
    raw = json.loads(path.read_text())
    first = raw["records"][0]["pages16"]
    first["own_pages"] = [x - 2e-3 + 0.8e-4 for x in first["own_pages"]]  # t of 2-4 at window 0: below 4.5
    path.write_text(json.dumps(raw))
    recs, sweep, _ = replay._load(str(path))
    ts = {id(r): replay._t(r[sweep], 8, 8, 0) for r in recs}
    assert replay.ScoreConfig().pow_drift < ts[id(recs[0])] < 4.5
    paid = replay.replay(recs, ts, replay.ScoreConfig(pow_sequential=True))
    assert paid["honest"] == (5, 6, 6)  # 5 by the account, the held first window paid late
    assert paid["wrong_pages"] == (0, 0, 6)


def test_two_held_windows_are_both_paid_late_with_two_credits_and_one_with_one(tmp_path: Path) -> None:
    recs, sweep, _ = replay._load(str(_record(tmp_path)))
    ts = {id(r): replay._t(r[sweep], 8, 8, 0) for r in recs}
    honest = [r for r in recs if r["kind"] == "honest"]
    ts[id(honest[0])], ts[id(honest[1])] = 3.0, 2.5  # accounts 1.5 and 2.5: both below the bar, both held
    assert ts[id(honest[2])] > 4.5  # the third reaches the bar and releases what is held
    new = replay.replay(recs, ts, replay._cfg(replay.DEFAULT))
    old = replay.replay(recs, ts, replay._cfg(replay.PREVIOUS))
    assert new["honest"] == (4, 6, 6) and old["honest"] == (4, 5, 6), (new, old)
    ts[id(honest[2])] = 0.0  # a third held window instead: the oldest credit drops past the limit of 2
    ts[id(honest[3])] = 8.0
    assert replay.replay(recs, ts, replay._cfg(replay.DEFAULT))["honest"] == (3, 5, 6)
    misses = replay._misses(recs, ts, replay._cfg(replay.DEFAULT), 0)
    assert misses == ["run 0 miner 0 window 1 (t 3.0)"], misses
