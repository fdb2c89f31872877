"""Crash safety: kill -9 the devnet process, restart it, and find everything intact."""

from __future__ import annotations

import time

import bittensor as bt
import pytest
from harness.devnet import bootstrap, running_devnet

from subnet.chain import commitment_call, make_subtensor


@pytest.mark.slow
def test_kill9_restart_keeps_height_and_state(tmp_path):
    with running_devnet(tmp_path, block_ms=20) as handle:
        result = bootstrap(handle, tmp_path / "wallets", miners=1)
        sub = make_subtensor(handle.network)
        miner = bt.Wallet(result.miners[0].wallet, "default", str(tmp_path / "wallets"))
        assert sub.submit_call(commitment_call(result.netuid, "file:///tmp/m0"), miner, signer="hotkey").success
        before = sub.subnets.metagraph(result.netuid)
        height = handle.head()["number"]
        handle.kill()  # SIGKILL: no shutdown hook runs
        handle.start()
        after_head = handle.head()
        assert after_head["number"] >= height
        time.sleep(0.3)
        assert handle.head()["number"] > after_head["number"]  # producing again
        # The same client reconnects on its own.
        after = sub.subnets.metagraph(result.netuid)
        assert after.hotkeys == before.hotkeys
        assert [n.validator_permit for n in after.neurons] == [n.validator_permit for n in before.neurons]
        assert all(a.total_stake.rao >= b.total_stake.rao for a, b in zip(after.neurons, before.neurons))
        assert after.neuron(result.miners[0].uid).commitment.value == "file:///tmp/m0"
        # Nonces continue: the next extrinsic from an account used before the crash lands.
        validator = bt.Wallet(result.validator.wallet, "default", str(tmp_path / "wallets"))
        res = sub.execute(bt.SetWeights(netuid=result.netuid, weights={result.miners[0].uid: 1.0}), validator)
        assert res.success, res.message
        sub.close()
