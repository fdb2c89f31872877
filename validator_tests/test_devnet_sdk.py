"""The devnet as a separate process, driven through the unmodified bittensor SDK.

One instant-seal devnet (a block per submission, plus `devnet_produceBlocks`)
is bootstrapped once for the module, so block arithmetic is deterministic.
"""

from __future__ import annotations

import asyncio

import bittensor as bt
import bittensor_core
import pytest
from harness.devnet import bootstrap, running_devnet

from subnet.chain import commitment_call, make_subtensor
from subnet.devnet import extrinsic as xt
from subnet.devnet.substrate import DevnetSubstrate

MINERS = 3
pytestmark = pytest.mark.slow  # a devnet process plus the SDK client process


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("devnet-sdk")
    with running_devnet(tmp, block_ms=0, allow_admin=True) as handle:  # tests fast-forward
        # Plaintext weights: these tests check set_weights itself (commit-reveal: test_devnet_commit_reveal.py).
        result = bootstrap(handle, tmp / "wallets", miners=MINERS, commit_reveal=False)  # MinAllowedWeights 1
        sub = make_subtensor(handle.network)
        yield handle, result, sub, tmp / "wallets"
        sub.close()


def wallet(result, wallets, name):
    return bt.Wallet(name, "default", str(wallets))


def alice():
    return bittensor_core.Keypair.create_from_uri("//Alice")


def sudo(sub, method, *args, handle=None):
    """Root call; with `handle`, first seal blocks out of the admin freeze window (admin_limits.py)."""
    if handle is not None:
        open_admin_window(handle, sub, args[0])
    inner = sub.compose(getattr(bt.calls.AdminUtils, method)(*args))
    return sub.submit_call(bt.calls.Sudo.sudo(call=inner), alice())


def open_admin_window(handle, sub, netuid):
    """Seal blocks until the next one is outside AdminFreezeWindow (the epoch block at the latest)."""
    head = sub.block
    nxt = sub.query(bt.storage.SubtensorModule.LastEpochBlock, [netuid]) + sub.query(
        bt.storage.SubtensorModule.Tempo, [netuid])
    window = sub.query(bt.storage.SubtensorModule.AdminFreezeWindow)
    if nxt - (head + 1) < window and nxt - 1 > head:
        handle.produce_blocks(nxt - 1 - head)


def test_bootstrap_neurons_visible_in_metagraph(net):
    handle, result, sub, wallets = net
    graph = sub.subnets.metagraph(result.netuid)
    assert len(graph.neurons) == MINERS + 2
    assert graph.owner_coldkey == result.owner.coldkey
    v = graph.neuron(result.validator.uid)
    assert v.hotkey == result.validator.hotkey
    assert v.validator_permit
    assert v.total_stake.rao >= 1000 * 10**9
    assert [graph.neuron(m.uid).hotkey for m in result.miners] == [m.hotkey for m in result.miners]
    uid = sub.query(bt.storage.SubtensorModule.Uids, [result.netuid, result.miners[0].hotkey])
    assert uid == result.miners[0].uid


def test_set_weights_stored_and_rate_limited(net):
    """subnets/weights.rs::internal_set_weights (rate limit, u16 max-upscale)."""
    handle, result, sub, wallets = net
    v = wallet(result, wallets, result.validator.wallet)
    handle.produce_blocks(3)
    target = result.miners[0].uid
    res = sub.execute(bt.SetWeights(netuid=result.netuid, weights={target: 0.5}), v)
    assert res.success, res.message
    row = sub.query(bt.storage.SubtensorModule.Weights, [result.netuid, result.validator.uid])
    assert [tuple(p) for p in row] == [(target, 65535)]  # max-upscaled u16
    # The SDK's own preflight refuses inside the rate limit...
    with pytest.raises(bt.ChainError) as info:
        sub.execute(bt.SetWeights(netuid=result.netuid, weights={target: 1.0}), v)
    assert info.value.code.value == "rate_limited"
    # ...and so does the chain when the preflight is bypassed.
    raw = bt.calls.SubtensorModule.set_mechanism_weights(
        netuid=result.netuid, mecid=0, dests=[target], weights=[65535], version_key=0
    )
    res = sub.submit_call(raw, v, signer="hotkey")
    assert not res.success
    assert res.error.name == "SettingWeightsTooFast"


def test_wrong_version_key_refused(net):
    """subnets/weights.rs::internal_set_weights check 7; the setter waits out admin-utils' freeze window."""
    handle, result, sub, wallets = net
    v = wallet(result, wallets, result.validator.wallet)
    assert sudo(sub, "sudo_set_weights_version_key", result.netuid, 7, handle=handle).success
    try:
        handle.produce_blocks(3)
        res = sub.execute(
            bt.SetWeights(netuid=result.netuid, weights={result.miners[1].uid: 1.0}, version_key=6), v
        )
        assert not res.success
        assert res.error.name == "IncorrectWeightVersionKey"
        handle.produce_blocks(3)
        res = sub.execute(
            bt.SetWeights(netuid=result.netuid, weights={result.miners[0].uid: 1.0}, version_key=7), v
        )
        assert res.success, res.message
    finally:
        assert sudo(sub, "sudo_set_weights_version_key", result.netuid, 0, handle=handle).success


def test_permitless_miner_cannot_weight_others(net):
    handle, result, sub, wallets = net
    m = wallet(result, wallets, result.miners[2].wallet)
    raw = bt.calls.SubtensorModule.set_mechanism_weights(
        netuid=result.netuid, mecid=0, dests=[result.miners[0].uid], weights=[1], version_key=0
    )
    res = sub.submit_call(raw, m, signer="hotkey")
    assert not res.success and res.error.name == "NeuronNoValidatorPermit"


def test_commitments_and_axon_visible(net):
    handle, result, sub, wallets = net
    m = wallet(result, wallets, result.miners[1].wallet)
    res = sub.submit_call(commitment_call(result.netuid, "s3://bucket/m1?endpoint=x"), m, signer="hotkey")
    assert res.success, res.message
    res = sub.execute(bt.ServeAxon(netuid=result.netuid, ip="127.0.0.1", port=8123), m)
    assert res.success, res.message
    graph = sub.subnets.metagraph(result.netuid)
    neuron = graph.neuron(result.miners[1].uid)
    assert neuron.commitment.value == "s3://bucket/m1?endpoint=x"
    assert neuron.axon == "127.0.0.1:8123"
    # Serving again inside ServingRateLimit is refused with the chain's error.
    res = sub.execute(bt.ServeAxon(netuid=result.netuid, ip="127.0.0.1", port=8124), m)
    assert not res.success and res.error.name == "ServingRateLimitExceeded"
    # An unregistered hotkey may not commit.
    stranger = bt.Wallet("stranger", "default", str(wallets))
    stranger.create_new_coldkey(use_password=False, suppress=True)
    stranger.create_new_hotkey(use_password=False, suppress=True)
    res = sub.submit_call(commitment_call(result.netuid, "x"), stranger, signer="hotkey")
    assert not res.success and res.error.name == "AccountNotAllowedCommit"


def test_stake_transfer_and_balances(net):
    handle, result, sub, wallets = net
    v = wallet(result, wallets, result.validator.wallet)
    bob = bittensor_core.Keypair.create_from_uri("//Bob").ss58_address
    before = sub.balances.balance(coldkey_ss58=bob).rao
    assert sub.execute(bt.Transfer(dest_ss58=bob, amount_tao=1.5), alice()).success
    assert sub.balances.balance(coldkey_ss58=bob).rao == before + 1_500_000_000
    stake_before = sub.subnets.metagraph(result.netuid).neuron(result.validator.uid).total_stake.rao
    res = sub.execute(bt.AddStake(hotkey_ss58=result.validator.hotkey, netuid=result.netuid, amount_tao=2), v)
    assert res.success, res.message
    after = sub.subnets.metagraph(result.netuid).neuron(result.validator.uid).total_stake.rao
    assert after - stake_before >= 2_000_000_000  # 1:1, plus any emission credited meanwhile
    raw = bt.calls.SubtensorModule.remove_stake(
        hotkey=result.validator.hotkey, netuid=result.netuid, amount_unstaked=10**15
    )
    res = sub.submit_call(raw, v)
    assert not res.success and res.error.name == "NotEnoughStakeToWithdraw"


def test_duplicate_registration_refused(net):
    handle, result, sub, wallets = net
    m = wallet(result, wallets, result.miners[0].wallet)
    res = sub.submit_call(
        bt.calls.SubtensorModule.burned_register(netuid=result.netuid, hotkey=result.miners[0].hotkey), m
    )
    assert not res.success and res.error.name == "HotKeyAlreadyRegisteredInSubNet"


def _sign(kp, call, info, **over):
    fields = dict(module=call[0], function=call[1], params=call[2], keypair=kp,
                  nonce=info["nonce"], era_birth=info["block"], era_period=64,
                  genesis_hash=info["genesis_hash"])
    fields.update(over)
    return xt.sign(**fields)


def test_forged_tampered_and_replayed_extrinsics_refused(net):
    handle, result, sub, wallets = net
    bob = bittensor_core.Keypair.create_from_uri("//Bob")
    charlie = bittensor_core.Keypair.create_from_uri("//Charlie")
    transfer = bt.calls.Balances.transfer_keep_alive(dest=charlie.ss58_address, value=10**9)

    async def scenario():
        substrate = DevnetSubstrate(handle.url)
        await substrate.connect()
        try:
            info = await substrate._call("devnet_signingInfo", bob.ss58_address)
            good = _sign(bob, transfer, info)
            # Forged: Charlie signs a body that claims Bob as the signer.
            forged = xt.Extrinsic(**{**good.__dict__, "signature": _sign(charlie, transfer, info).signature})
            forged = xt.Extrinsic(**{**forged.__dict__, "signer": bob.ss58_address})
            # Tampered: Bob's valid signature, amount changed afterwards.
            tampered = xt.Extrinsic(**{**good.__dict__, "params": {**good.params, "value": 10**15}})
            r_forged = await substrate.submit_extrinsic(forged)
            r_tampered = await substrate.submit_extrinsic(tampered)
            r_good = await substrate.submit_extrinsic(good)
            r_replay = await substrate.submit_extrinsic(good)
            return r_forged, r_tampered, r_good, r_replay
        finally:
            await substrate.close()

    balance_before = sub.balances.balance(coldkey_ss58=charlie.ss58_address).rao
    r_forged, r_tampered, r_good, r_replay = asyncio.run(scenario())
    assert not r_forged.success and r_forged.error.name == "BadProof"
    assert not r_tampered.success and r_tampered.error.name == "BadProof"
    assert r_good.success, r_good.message
    assert not r_replay.success and r_replay.error.name == "Stale"
    # Exactly one transfer landed.
    assert sub.balances.balance(coldkey_ss58=charlie.ss58_address).rao == balance_before + 10**9


def test_incentive_and_dividends_after_one_tempo(net):
    """coinbase/run_coinbase.rs epoch every tempo; epoch/run_epoch.rs incentive and dividends."""
    handle, result, sub, wallets = net
    v = wallet(result, wallets, result.validator.wallet)
    target = result.miners[0].uid
    handle.produce_blocks(3)
    res = sub.execute(bt.SetWeights(netuid=result.netuid, weights={target: 1.0}), v)
    assert res.success, res.message
    last_epoch = sub.query(bt.storage.SubtensorModule.LastEpochBlock, [result.netuid])
    tempo = sub.query(bt.storage.SubtensorModule.Tempo, [result.netuid])
    handle.produce_blocks(tempo + 1)  # at least one epoch boundary
    assert sub.query(bt.storage.SubtensorModule.LastEpochBlock, [result.netuid]) > last_epoch
    graph = sub.subnets.metagraph(result.netuid)
    miner = graph.neuron(target)
    validator = graph.neuron(result.validator.uid)
    assert miner.incentive > 0.99  # the only weighted miner takes all incentive
    assert validator.dividends > 0
    assert miner.emission.rao > 0 and validator.emission.rao > 0
    others = [graph.neuron(m.uid).incentive for m in result.miners if m.uid != target]
    assert all(x == 0 for x in others)


def test_pruning_replaces_lowest_emission_non_immune(net, tmp_path):
    """subnets/registration.rs::get_neuron_to_prune (MinNonImmuneUids lowered to 0 here; owner hotkey immune)."""
    handle, result, sub, wallets = net
    bob = bittensor_core.Keypair.create_from_uri("//Bob")
    res = sub.execute(bt.RegisterSubnet(hotkey_ss58=bob.ss58_address), bob)
    assert res.success, res.message
    netuid = int(res.data["netuid"])
    assert sudo(sub, "sudo_set_max_allowed_uids", netuid, 3, handle=handle).success
    assert sudo(sub, "sudo_set_immunity_period", netuid, 0, handle=handle).success
    assert sudo(sub, "sudo_set_min_non_immune_uids", netuid, 0).success  # MinNonImmuneUids floor 10 -> 0
    keys = [bittensor_core.Keypair.create_from_uri(f"//prune{i}") for i in range(3)]
    for kp in keys:
        call = bt.calls.SubtensorModule.burned_register(netuid=netuid, hotkey=kp.ss58_address)
        assert sub.submit_call(call, bob).success
    uids = {h: u for h, u in sub.query_map(bt.storage.SubtensorModule.Uids, [netuid])}
    # Full at 3: the third miner replaced the oldest zero-emission non-immune uid (1);
    # the owner hotkey (uid 0) is immortal.
    assert uids == {bob.ss58_address: 0, keys[2].ss58_address: 1, keys[1].ss58_address: 2}
