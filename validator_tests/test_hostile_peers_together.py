"""Three hostile stores in one window at once (1 byte/s, a 10 GB claim, never answers) beside honest ones.

test_hostile_peers.py runs each mode alone; here they share one watcher and
one window: each is scored absent within its own budget, and the honest
uploads are pinned (and verified) on time, as if the hostile ones were not there.
"""

from __future__ import annotations

import time

from harness.hostile_http import HostileServer
from test_hostile_peers import (  # the same helpers and budget, not redefined
    BUDGET,
    MAX_BYTES,
    SLACK_S,
    WINDOW,
    Head,
    Miner,
    _honest,
    _pinned,
    _poll_until,
    _settled,
    _take,
    _watcher,
)

from subnet.validator.watch import PollResult


def test_trickle_huge_and_silent_stores_together_are_absent_and_delay_nobody(tmp_path):
    head = Head(25)
    w = _watcher(tmp_path, head)
    honest = _honest(tmp_path, n=3)
    servers = {"trickle_body": HostileServer("trickle_body", interval_s=1.0, size=MAX_BYTES // 2),
               "huge": HostileServer("huge", interval_s=1.0),
               "blackhole": HostileServer("blackhole")}
    try:
        bad = {mode: Miner(80 + i) for i, mode in enumerate(servers)}
        targets = [bad[mode].target(f"s3://bkt/pre{i}?endpoint={srv.url}")
                   for i, (mode, srv) in enumerate(servers.items())] + [m.target() for m in honest]
        t0 = time.monotonic()
        took = _poll_until(w, targets, _pinned(w, *honest), timeout=5)
        assert took < 1.0 + SLACK_S, f"honest uploads waited {took:.1f}s behind three hostile stores"
        _poll_until(w, targets, _settled(w, targets),
                    timeout=BUDGET.window_budget_s + 3 * BUDGET.request_timeout_s + SLACK_S + 5)
        assert w.drain(BUDGET.request_timeout_s * 3 + SLACK_S)
        spent = time.monotonic() - t0
    finally:
        for srv in servers.values():
            srv.close()
    # all three at once still fit one peer's worst case: the window budget plus one request (with its retry)
    assert spent <= BUDGET.window_budget_s + 2 * BUDGET.request_timeout_s + 2 * SLACK_S + 1, spent
    for mode, m in bad.items():
        result, detail, _ = w.status(WINDOW, m.hotkey)
        expected = PollResult.OVERSIZED if mode == "huge" else PollResult.OVER_BUDGET
        assert result is expected, (mode, result, detail)
        r = _take(w, m)
        assert r.artifact is None and r.reason.startswith("absent (store failing"), (mode, r.reason)
    for m in honest:
        assert _take(w, m).artifact is not None
