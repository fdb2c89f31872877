"""btcli and the SDK's own transport (RpcSubstrate) against a devnet process's Substrate face.

One devnet process, bootstrapped through the JSON face (writes are not
served on the Substrate face yet), with weights and a commitment set the
same way; then every read below goes over `ws://127.0.0.1:<substrate port>`
through the pinned SDK's real transport, and each answer is checked against
what the devnet holds (read back through the JSON face).
"""

from __future__ import annotations

import json
import os

import bittensor as bt
import bittensor_core
import pytest
from harness.btcli import run_btcli as btcli_json
from harness.devnet import bootstrap, env_set, free_port, running_devnet

from subnet.chain import commitment_call, make_subtensor
from subnet.devnet.config import SUBSTRATE_PORT_ENV

pytestmark = pytest.mark.slow  # a devnet process, a bootstrap and btcli subprocesses
COMMITMENT = "s3://bucket/model?endpoint=devnet"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("devnet-substrate")
    port = free_port()
    with env_set(SUBSTRATE_PORT_ENV, str(port)):  # the devnet process reads it at start
        with running_devnet(tmp, block_ms=0, allow_admin=True) as handle:
            result = bootstrap(handle, tmp / "wallets", miners=2, commit_reveal=False)
            json_face = make_subtensor(handle.network)
            validator = bt.Wallet(result.validator.wallet, "default", str(tmp / "wallets"))
            handle.produce_blocks(3)
            res = json_face.execute(bt.SetWeights(netuid=result.netuid, weights={result.miners[0].uid: 1.0}),
                                    validator)
            assert res.success, res.message
            miner = bt.Wallet(result.miners[1].wallet, "default", str(tmp / "wallets"))
            res = json_face.submit_call(commitment_call(result.netuid, COMMITMENT), miner, signer="hotkey")
            assert res.success, res.message
            yield handle, result, json_face, f"ws://127.0.0.1:{port}", tmp
            json_face.close()


def btcli(net, *args: str) -> object:
    """Run the pinned SDK's btcli non-interactively; its --json output, parsed."""
    _, _, _, url, tmp = net
    return btcli_json(url, tmp, *args)


def test_sdk_transport_reads_block_metagraph_commitments_and_weights(net):
    handle, result, json_face, url, tmp = net
    os.environ.setdefault("HOME", str(tmp))
    sub = bt.Subtensor(network=url)
    try:
        assert sub.block == json_face.block
        graph = sub.subnets.metagraph(result.netuid)
        expected = json_face.subnets.metagraph(result.netuid)
        assert [n.hotkey for n in graph.neurons] == [n.hotkey for n in expected.neurons]
        assert [n.coldkey for n in graph.neurons] == [n.coldkey for n in expected.neurons]
        assert [n.total_stake for n in graph.neurons] == [n.total_stake for n in expected.neurons]
        commitment = graph.commitments[result.miners[1].uid]
        assert commitment.value == COMMITMENT == expected.commitments[result.miners[1].uid].value
        assert commitment.block == expected.commitments[result.miners[1].uid].block
        row = sub.query(bt.storage.SubtensorModule.Weights, [result.netuid, result.validator.uid])
        assert [tuple(p) for p in row] == [(result.miners[0].uid, 65535)]
        assert sub.query(bt.storage.SubtensorModule.Tempo, [result.netuid]) == json_face.query(
            bt.storage.SubtensorModule.Tempo, [result.netuid])
    finally:
        sub.close()


def test_btcli_subnets_list_and_metagraph(net):
    handle, result, json_face, url, tmp = net
    rows = btcli(net, "subnets", "list")
    row = next(r for r in rows if r["netuid"] == result.netuid)
    info = json_face.subnets.subnet(result.netuid)
    assert (row["tempo"], row["neurons"]) == (info.tempo, info.neuron_count)
    graph = btcli(net, "subnets", "metagraph", str(result.netuid))
    assert graph["hotkeys"] == [n.hotkey for n in json_face.subnets.metagraph(result.netuid).neurons]
    assert graph["owner_coldkey"] == result.owner.coldkey


def test_btcli_balance_overview_hyperparameters_and_weights(net):
    handle, result, json_face, url, tmp = net
    balance = btcli(net, "wallet", "balance", "-w", result.validator.wallet)
    assert balance["coldkey"] == result.validator.coldkey
    assert round(balance["free_tao"] * 1e9) == json_face.balances.get(result.validator.coldkey).rao
    overview = btcli(net, "wallet", "overview", "-w", result.validator.wallet)
    stakes = [s for w in overview for s in w["stakes"]]
    staked = json_face.query(bt.storage.SubtensorModule.TotalHotkeyAlpha, [result.validator.hotkey, result.netuid])
    assert [(s["hotkey"], round(s["stake_amount"] * 1e9)) for s in stakes] == [(result.validator.hotkey, staked)]
    params = btcli(net, "subnets", "hyperparameters", str(result.netuid))
    assert params["tempo"] == json_face.query(bt.storage.SubtensorModule.Tempo, [result.netuid])
    assert params["immunity_period"] == 100  # bootstrap's owner call
    weights = btcli(net, "query", "weights", "--netuid", str(result.netuid))
    assert json.dumps(weights)  # shape printed on failure
    assert weights[str(result.validator.uid)] == {str(result.miners[0].uid): 1.0}


def test_head_subscription_and_block_pinned_reads(net):
    """chain_subscribeNewHeads notifies each sealed block; reads pinned to an old hash see old state."""
    from websockets.sync.client import connect

    handle, result, json_face, url, tmp = net
    with connect(url) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads", "params": []}))
        sub_id = json.loads(ws.recv(timeout=30))["result"]
        before = json_face.block
        handle.produce_blocks(2)
        numbers = []
        while len(numbers) < 2:
            note = json.loads(ws.recv(timeout=30))
            assert note["method"] == "chain_newHead" and note["params"]["subscription"] == sub_id
            numbers.append(int(note["params"]["result"]["number"], 16))
        assert numbers == [before + 1, before + 2]
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "chain_unsubscribeNewHeads", "params": [sub_id]}))
        assert json.loads(ws.recv(timeout=30)) == {"jsonrpc": "2.0", "id": 2, "result": True}
    sub = bt.Subtensor(network=url)
    try:
        # The validator's LastUpdate is the fixture's SetWeights block; one block earlier it was 0.
        last_update = bt.storage.SubtensorModule.LastUpdate
        weights_block = sub.query(last_update, [result.netuid])[result.validator.uid]
        assert weights_block > 0
        old = sub.at(weights_block - 1).query(last_update, [result.netuid])
        assert old[result.validator.uid] == 0
        assert old == json_face.at(weights_block - 1).query(last_update, [result.netuid])
    finally:
        sub.close()


# -- writes: signed extrinsics over the Substrate face (after the reads above, which compare live state) --


def test_sdk_transport_writes_transfer_weights_and_commitment(net):
    handle, result, json_face, url, tmp = net
    wallets = tmp / "wallets"
    sub = bt.Subtensor(network=url)
    try:
        alice = bittensor_core.Keypair.create_from_uri("//Alice")
        bob = bittensor_core.Keypair.create_from_uri("//Bob").ss58_address
        before = json_face.balances.get(bob).rao
        res = sub.submit_call(bt.calls.Balances.transfer_keep_alive(dest=bob, value=10**9), alice)
        assert res.success, res.message
        assert json_face.balances.get(bob).rao == before + 10**9
        res = sub.submit_call(bt.calls.Balances.transfer_keep_alive(dest=bob, value=10**30), alice)
        assert not res.success and res.error.name == "InsufficientBalance"  # module error, named by the SDK
        handle.produce_blocks(3)  # past WeightsSetRateLimit (2) since the fixture's weights
        validator = bt.Wallet(result.validator.wallet, "default", str(wallets))
        target = result.miners[1].uid
        res = sub.execute(bt.SetWeights(netuid=result.netuid, weights={target: 1.0}), validator)
        assert res.success, res.message
        row = json_face.query(bt.storage.SubtensorModule.Weights, [result.netuid, result.validator.uid])
        assert [tuple(p) for p in row] == [(target, 65535)]
        miner = bt.Wallet(result.miners[0].wallet, "default", str(wallets))
        res = sub.submit_call(commitment_call(result.netuid, "over-scale"), miner, signer="hotkey")
        assert res.success, res.message
        assert json_face.subnets.metagraph(result.netuid).commitments[result.miners[0].uid].value == "over-scale"
    finally:
        sub.close()


def _out_of_admin_freeze(handle, json_face, netuid: int) -> None:
    """Seal blocks until the next one is outside AdminFreezeWindow (owner calls are refused inside it)."""
    st = bt.storage.SubtensorModule
    head = json_face.block
    nxt = json_face.query(st.LastEpochBlock, [netuid]) + json_face.query(st.Tempo, [netuid])
    if nxt - (head + 1) < json_face.query(st.AdminFreezeWindow) and nxt - 1 > head:
        handle.produce_blocks(nxt - 1 - head)


def test_btcli_writes_transfer_stake_and_owner_hyperparameter(net):
    from subnet.devnet.bootstrap import ensure_wallet

    handle, result, json_face, url, tmp = net
    st = bt.storage.SubtensorModule
    newbie = ensure_wallet("newbie", tmp / "wallets")
    out = btcli(net, "wallet", "transfer", "--dest", newbie.coldkey.ss58_address, "--amount-tao", "5",
                "-w", result.owner.wallet, "-y")
    assert out["success"], out
    assert json_face.balances.get(newbie.coldkey.ss58_address).rao == 5 * 10**9
    staked = json_face.query(st.TotalHotkeyAlpha, [result.validator.hotkey, result.netuid])
    btcli(net, "stake", "add", "--netuid", str(result.netuid), "--amount-tao", "5", "-w", result.validator.wallet,
          "--hotkey", result.validator.hotkey, "-y", "--no-mev-shield")
    assert json_face.query(st.TotalHotkeyAlpha, [result.validator.hotkey, result.netuid]) == staked + 5 * 10**9
    _out_of_admin_freeze(handle, json_face, result.netuid)
    # (immunity_period would be TxRateLimitExceeded: bootstrap set it, OwnerHyperparamRateLimit is 2 tempos)
    btcli(net, "hparams", "set", "--netuid", str(result.netuid), "--name", "serving_rate_limit", "--value", "60",
          "-w", result.owner.wallet, "-y")
    assert json_face.query(st.ServingRateLimit, [result.netuid]) == 60


def test_btcli_creates_and_regenerates_wallets_that_the_devnet_then_funds(net):
    """`wallet create` / `regen-coldkey` / `regen-hotkey` as an operator runs them (no prompts), then on-chain use."""
    import bittensor_core

    _, result, json_face, _, tmp = net
    created = btcli(net, "wallet", "create", "-w", "fresh", "-H", "hk", "--no-password", "--n-words", "12")
    fresh = bt.Wallet("fresh", "hk", str(tmp / "wallets"))
    assert fresh.coldkeypub.ss58_address and fresh.hotkey.ss58_address
    assert fresh.coldkeypub.ss58_address in json.dumps(created)  # btcli reports the key it wrote
    seed = "0x" + "17" * 32
    btcli(net, "wallet", "regen-coldkey", "-w", "regen", "--seed", seed, "--no-password")
    btcli(net, "wallet", "regen-hotkey", "-w", "regen", "-H", "hk", "--seed", "0x" + "29" * 32)
    regen = bt.Wallet("regen", "hk", str(tmp / "wallets"))
    expected = bittensor_core.Keypair.create_from_seed(bytes.fromhex(seed[2:])).ss58_address
    assert regen.coldkeypub.ss58_address == expected
    assert regen.hotkey.ss58_address == bittensor_core.Keypair.create_from_seed(bytes([0x29] * 32)).ss58_address
    out = btcli(net, "wallet", "transfer", "--dest", regen.coldkeypub.ss58_address, "--amount-tao", "3",
                "-w", result.owner.wallet, "-y")
    assert out["success"], out
    assert json_face.balances.get(regen.coldkeypub.ss58_address).rao == 3 * 10**9
    shown = btcli(net, "wallet", "balance", "-w", "regen")
    assert "3" in json.dumps(shown) and regen.coldkeypub.ss58_address in json.dumps(shown)
