"""chain.json against a real devnet process: weights set with the SDK show up as incentive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from subnet.demo import ProcessGroup, pick_port, wait_for_port
from subnet.telemetry.chainsnap import snapshot_chain
from subnet.telemetry.report import write_report

pytestmark = pytest.mark.slow


@pytest.fixture()
def devnet(tmp_path: Path) -> Iterator[tuple[str, dict]]:
    """A devnet process on a free port, bootstrapped with 1 validator + 2 miners."""
    port = pick_port(0)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    group = ProcessGroup(logs_dir=tmp_path, env=env)
    dn_args = ["--devnet.dir", str(tmp_path / "devnet"), "--devnet.port", str(port)]
    try:
        proc = group.start("devnet", [sys.executable, "-m", "subnet.cli", "devnet", "start", *dn_args,
                                      "--devnet.block_ms", "150"])
        wait_for_port(port, proc, timeout_s=60)
        out = subprocess.run([sys.executable, "-m", "subnet.cli", "devnet", "bootstrap", *dn_args, "--miners", "2",
                              "--wallet.path", str(tmp_path / "wallets"), "--json"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        yield f"devnet+ws://127.0.0.1:{port}", json.loads(out.stdout)
    finally:
        group.stop_all(grace_s=5)


def test_chain_snapshot_reports_weights_incentive_and_emission(devnet: tuple[str, dict], tmp_path: Path) -> None:
    import bittensor as bt

    from subnet.chain import make_subtensor

    network, boot = devnet
    netuid = boot["netuid"]
    m0, m1 = (m["uid"] for m in boot["miners"])
    sub = make_subtensor(network)
    wallet = bt.Wallet(boot["validator"]["wallet"], "default", boot["wallet_path"])
    result = sub.execute(bt.SetWeights(netuid=netuid, weights={m0: 0.75, m1: 0.25}), wallet)
    assert result.success, result.message
    start = sub.block
    deadline = time.monotonic() + 60
    while sub.block < start + 2 * 21 and time.monotonic() < deadline:  # two tempos (bootstrap tempo 20)
        time.sleep(0.3)

    snap = snapshot_chain(network, netuid)
    assert snap["netuid"] == netuid and snap["network"] == network and snap["block"] >= start
    by_uid = {n["uid"]: n for n in snap["neurons"]}
    vuid = boot["validator"]["uid"]
    assert by_uid[vuid]["hotkey"] == boot["validator"]["hotkey"] and by_uid[vuid]["validator_permit"]
    assert snap["weights"][str(vuid)][str(m0)] == pytest.approx(0.75, abs=1e-3)
    assert by_uid[m0]["incentive"] == pytest.approx(0.75, abs=1e-3)
    assert by_uid[m1]["incentive"] == pytest.approx(0.25, abs=1e-3)
    assert by_uid[m0]["emission"] > by_uid[m1]["emission"] > 0
    assert by_uid[vuid]["dividends"] > 0 and by_uid[vuid]["stake"] > 0

    (tmp_path / "events").mkdir()
    paths = write_report(tmp_path / "events", tmp_path / "report", chain=snap)
    assert json.loads(paths.chain_json.read_text())["weights"] == snap["weights"]
    rows = paths.leaderboard_csv.read_text().splitlines()
    assert rows[1].split(",")[1] == str(m0)  # no telemetry: paid incentive is all the board has after weight
