"""Hostile peers on a live network: a crashing store location and a trickling store cannot stop a validator.

Real processes: the devnet, one validator and two honest miners (the real
`neurons/*.py`). Two more registered hotkeys are the attackers, played by this
test through the real chain: one commits `s3://bucket-ok?region=../../x`
(which once crashed every validator for good: botocore raised in the S3
client's constructor), the other commits an endpoint on a loopback server
that answers one byte per second. The validator must never exit, must score
every window in sequence, report each attacker with its own outcome, and pay
the honest miners as in a clean run (weights on chain, incentive after an
epoch), the attackers nothing.
"""

from __future__ import annotations

import bittensor as bt
import pytest
import torch
from harness.devnet import running_devnet
from harness.hostile_http import HostileServer
from harness.network import start_network, wait_for_weights_in_effect

from subnet.chain import make_subtensor
from subnet.node.chain import ChainView
from subnet.protocol.windows import WindowParams

pytestmark = pytest.mark.slow

CRASHER = "s3://bucket-ok?region=../../x"
WINDOWS = 5


def _commit(devnet, boot, info, location: str) -> None:
    wallet = bt.Wallet(name=info.wallet, hotkey="default", path=str(boot.wallet_path))
    ChainView(make_subtensor(devnet.network), boot.netuid, WindowParams(window_blocks=16)).commit_location(
        wallet, location)


def test_crashing_location_and_trickling_store_do_not_stop_the_validator(tmp_path):
    torch.set_num_threads(1)
    with running_devnet(tmp_path, block_ms=500) as devnet, HostileServer("trickle_headers") as slow:
        net = start_network(devnet, tmp_path / "net", miners=4)
        crasher, trickler = net.boot.miners[2], net.boot.miners[3]
        _commit(devnet, net.boot, crasher, CRASHER)
        _commit(devnet, net.boot, trickler, f"s3://slow-bucket?endpoint={slow.url}")
        try:
            net.start_validator()
            net.start_miner(0)
            net.start_miner(1)
            # wait_for raises at once if any process (the validator included) exits
            net.wait_for(f"{WINDOWS} scored windows",
                         lambda: len(net.events("validator", "window_scored")) >= WINDOWS, timeout=420)
            net.wait_for("weights on chain", lambda: any(e["success"] for e in net.events("validator", "weights_set")),
                         timeout=120)
            wait_for_weights_in_effect(net, tempo_blocks=20, block_s=0.5)  # revealed, then one Yuma epoch
            mg = make_subtensor(devnet.network).subnets.metagraph(net.boot.netuid)
            assert not net.procs.dead(), [c.name for c in net.procs.dead()]
            assert slow.connections > 0, "the trickling store was never contacted: the attack did not run"
        finally:
            net.procs.stop_all()

    scored = net.events("validator", "window_scored")
    windows = [e["window"] for e in scored]
    assert windows == list(range(windows[0], windows[0] + len(windows))), windows
    reasons = {u: [e["scores"].get(str(u), {}).get("reason", "") for e in scored]
               for u in (crasher.uid, trickler.uid)}
    # the first scored window may predate the watcher's first pass ("absent"); every later one names the cause
    assert all(r == "absent" or r.startswith("unusable store location") for r in reasons[crasher.uid]), reasons
    assert sum(r.startswith("unusable store location") for r in reasons[crasher.uid]) >= WINDOWS - 1, reasons
    assert all(r.startswith("absent") for r in reasons[trickler.uid]), reasons
    assert any("store failing" in r for r in reasons[trickler.uid]), reasons

    honest = [m.uid for m in net.boot.miners[:2]]
    ok = [e for e in scored if any((e["scores"].get(str(h)) or {}).get("score") for h in honest)]
    assert len(ok) >= WINDOWS - 2, [{h: e["scores"].get(str(h)) for h in honest} for e in scored]
    final = scored[-1]["weights"]
    assert float(final.get(str(crasher.uid), 0)) == 0 and float(final.get(str(trickler.uid), 0)) == 0
    assert sum(float(final.get(str(h), 0)) for h in honest) > 0, final
    incentive = {n.uid: n.incentive for n in mg.neurons}
    assert sum(incentive[h] for h in honest) > 0, incentive
    assert incentive[crasher.uid] == 0 and incentive[trickler.uid] == 0, incentive
