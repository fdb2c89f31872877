"""Devnet reads through the unmodified bittensor SDK: stake, epochs, chain, prices, pinned reads, finality.

An instant-seal devnet (admin on) is bootstrapped once for the module so the
block arithmetic is deterministic; the finality-lag tests start their own.
"""

from __future__ import annotations

import re

import bittensor as bt
import bittensor_core
import pytest
from harness.devnet import bootstrap, running_devnet

from subnet.chain import make_subtensor

pytestmark = pytest.mark.slow  # devnet processes plus the SDK client


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("devnet-reads")
    with running_devnet(tmp, block_ms=0, allow_admin=True) as handle:
        result = bootstrap(handle, tmp / "wallets", miners=2, commit_reveal=False)
        sub = make_subtensor(handle.network)
        yield handle, result, sub, tmp / "wallets"
        sub.close()


def test_stake_reads_and_remove_stake_all(net):
    """StakeInfoRuntimeApi as subtensor's rpc_info/stake_info.rs; RemoveStake("all") resolves through it."""
    handle, result, sub, wallets = net
    coldkey, hotkey, netuid = result.validator.coldkey, result.validator.hotkey, result.netuid
    # A second coldkey stakes on the validator so "all" has a position of known size.
    bob = bittensor_core.Keypair.create_from_uri("//Bob")
    assert sub.execute(bt.AddStake(hotkey_ss58=hotkey, netuid=netuid, amount_tao=3), bob).success
    assert sub.staking.stake(bob.ss58_address, hotkey, netuid).rao == 3 * 10**9
    own = sub.staking.stake(coldkey, hotkey, netuid).rao
    assert own >= 1000 * 10**9  # bootstrap's 1000 TAO, plus any emission since
    positions = sub.staking.stake_for_coldkey(bob.ss58_address)
    assert [(p.hotkey, p.netuid, p.stake.rao, p.is_registered) for p in positions] == [
        (hotkey, netuid, 3 * 10**9, True)]
    avail = sub.staking.stake_availability(bob.ss58_address, netuid)
    assert avail["total"].rao == avail["available"].rao == 3 * 10**9 and avail["locked"].rao == 0
    before = sub.balances.balance(bob.ss58_address).rao
    res = sub.execute(bt.RemoveStake(hotkey_ss58=hotkey, netuid=netuid, amount_alpha="all"), bob)
    assert res.success, res.message
    assert sub.staking.stake(bob.ss58_address, hotkey, netuid).rao == 0
    assert sub.balances.balance(bob.ss58_address).rao == before + 3 * 10**9  # 1:1, no fee
    assert sub.staking.stake_for_coldkey(bob.ss58_address) == []


def test_epoch_reads_follow_last_epoch_block_plus_tempo(net):
    """next_epoch_start_block / epoch_status as coinbase/run_coinbase.rs::get_next_epoch_start_block."""
    handle, result, sub, wallets = net
    netuid = result.netuid
    last = sub.query(bt.storage.SubtensorModule.LastEpochBlock, [netuid])
    tempo = sub.query(bt.storage.SubtensorModule.Tempo, [netuid])
    assert sub.epochs.next_epoch_start_block(netuid) == last + tempo
    head = sub.block
    assert sub.epochs.blocks_until_next_epoch(netuid) == last + tempo - head
    index = sub.query(bt.storage.SubtensorModule.SubnetEpochIndex, [netuid])
    assert index >= 1  # bootstrap waited for one epoch
    handle.produce_blocks(last + tempo - head)  # through the epoch block
    status = sub.epochs.epoch_status(netuid)
    assert status["epoch_index"] == index + 1
    assert status["last_epoch_block"] == last + tempo
    assert status["next_epoch_start_block"] == last + 2 * tempo
    assert status["blocks_remaining"] == tempo and status["blocks_since_last_step"] == 0


def test_chain_and_price_reads(net):
    """TxRateLimit (lib.rs StorageValue, runtime default 1000) and SwapRuntimeApi quotes at 1:1."""
    handle, result, sub, wallets = net
    assert sub.chain.tx_rate_limit() == 1000
    quote = sub.prices.quote_stake(result.netuid, 2.5)
    assert quote.alpha.rao == quote.tao.rao == 2_500_000_000
    assert quote.tao_fee.rao == quote.alpha_slippage.rao == 0
    back = sub.prices.quote_unstake(result.netuid, 1.0)
    assert back.tao.rao == 10**9 and back.tao_slippage.rao == 0


def test_pinned_reads_answer_at_the_pinned_block(net):
    """State pinned by block hash, as a Substrate node's state_* RPCs at a block (within its pruning window)."""
    handle, result, sub, wallets = net
    charlie = bittensor_core.Keypair.create_from_uri("//Charlie").ss58_address
    netuid = result.netuid
    before_block = sub.block
    before = sub.balances.balance(charlie).rao
    uid = result.miners[0].uid
    assert sub.execute(bt.Transfer(dest_ss58=charlie, amount_tao=7), bt_alice()).success
    handle.produce_blocks(2)
    assert sub.balances.balance(charlie).rao == before + 7 * 10**9
    pinned = sub.at(before_block)
    assert pinned.balances.balance(charlie).rao == before
    assert sub.balances.balance(charlie, block=before_block).rao == before
    # Runtime APIs and whole maps pin too.
    graph_then = pinned.subnets.metagraph(netuid)
    assert graph_then.block == before_block
    assert pinned.query(bt.storage.System.Number) == before_block
    keys_then = dict(pinned.query_map(bt.storage.SubtensorModule.Uids, [netuid]))
    assert keys_then[result.miners[0].hotkey] == uid


def test_pinned_read_past_the_pruning_window_is_refused(tmp_path):
    """A pruned node (Substrate --state-pruning 256) refuses state older than its window."""
    with running_devnet(tmp_path, block_ms=0, allow_admin=True) as handle:
        sub = make_subtensor(handle.network)
        try:
            alice = bittensor_core.Keypair.create_from_uri("//Alice").ss58_address
            early = sub.block
            handle.produce_blocks(300)
            with pytest.raises(bt.ChainError) as info:
                sub.balances.balance(alice, block=early)
            # the node's "State already discarded for ..." (JSON face: as sent; the SDK's own transport
            # recognises it and raises its StateDiscardedError, "State discarded for ... archive node")
            assert re.search(r"State (already )?discarded for block \d+", str(info.value)), str(info.value)
            head = sub.block
            assert sub.balances.balance(alice, block=head - 200).rao == sub.balances.balance(alice).rao
        finally:
            sub.close()


def test_finalized_head_trails_by_the_finality_lag(tmp_path):
    """Finality lag: finalized_block_number trails the head (GRANDPA's role on subtensor); instant seal + admin."""
    with running_devnet(tmp_path, block_ms=0, allow_admin=True, finality_lag=2) as handle:
        sub = make_subtensor(handle.network)
        try:
            handle.produce_blocks(5)
            head = sub.block
            assert sub.finalized_block == head - 2
            info = sub.block_info(sub.finalized_block)
            assert info.number == head - 2 and info.hash == handle.head()["finalized"]["hash"]
            handle.produce_blocks(1)
            assert sub.finalized_block == head - 1
        finally:
            sub.close()


def test_wait_for_finalization_waits_for_the_lag(tmp_path):
    """execute(..., wait_for_finalization=True) returns once its block is finalized, with timer blocks."""
    with running_devnet(tmp_path, block_ms=100, finality_lag=2) as handle:
        sub = make_subtensor(handle.network)
        try:
            charlie = bittensor_core.Keypair.create_from_uri("//Charlie").ss58_address
            res = sub.execute(bt.Transfer(dest_ss58=charlie, amount_tao=1), bt_alice())
            assert res.success, res.message
            included = int(res.extrinsic_id.split("-")[0])
            assert sub.finalized_block >= included
            assert sub.block >= included + 2
        finally:
            sub.close()


def bt_alice():
    return bittensor_core.Keypair.create_from_uri("//Alice")


def test_state_journal_survives_a_restart_and_prunes(tmp_path):
    """Pinned state from the per-block journal, persisted with each block like a node's state DB."""
    from subnet.devnet.state import BlockRecord, StateDiscarded, Store

    def commit(store, n):
        store.commit_block(BlockRecord(number=n, hash=f"0x{n:064x}", parent="0x", timestamp=n,
                                       extrinsics=[], events=[]))

    store = Store(tmp_path / "s.sqlite", state_pruning=4)
    store.put("a", 1)
    commit(store, 0)
    store.put("a", 2)
    store.put("b:x", "new")
    commit(store, 1)
    store.delete("a")
    commit(store, 2)
    store.close()
    store = Store(tmp_path / "s.sqlite", state_pruning=4)
    assert [store.at(n, 2).get("a") for n in (0, 1, 2)] == [1, 2, None]
    assert list(store.at(0, 2).keys("b:")) == [] and list(store.at(1, 2).keys("b:")) == ["b:x"]
    for n in range(3, 8):
        commit(store, n)
    with pytest.raises(StateDiscarded):
        store.at(1, 7)
    assert store.at(4, 7).get("b:x") == "new"
    store.close()
