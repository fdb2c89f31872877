"""Commit-reveal weights on a real devnet process, through the SDK and the validator's WeightSetter.

Follows subtensor 14bc6f9: `pallets/subtensor/src/subnets/weights.rs`
(`internal_commit_timelocked_weights`: CommitRevealDisabled,
IncorrectCommitRevealVersion, HotKeyNotRegisteredInSubNet,
CommittingWeightsTooFast, LastUpdate at commit), `macros/dispatches.rs`
(`set_mechanism_weights` refused with CommitRevealEnabled),
`coinbase/reveal_commits.rs` (reveal in the commit's reveal epoch once its
drand round exists, dropped after) and `pallets/admin-utils/src/lib.rs`
(which setters the subnet owner may call).
"""

from __future__ import annotations

import time

import bittensor as bt
import pytest

from subnet.chain import make_subtensor
from subnet.node.chain import ChainView
from subnet.protocol.windows import WindowParams
from subnet.validator.state import ValidatorState
from subnet.validator.weights_loop import PendingCommit, WeightOutcome, WeightSetter
from validator_tests.harness.devnet import bootstrap, running_devnet

pytestmark = pytest.mark.slow  # a devnet process plus the SDK client

VERSION = 100


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("devnet-cr")
    with running_devnet(tmp, block_ms=0, allow_admin=True) as handle:
        result = bootstrap(handle, tmp / "wallets", miners=3, min_allowed_weights=None)  # = n: floor spread
        sub = make_subtensor(handle.network)
        yield handle, result, sub, tmp
        sub.close()


def _validator(result, tmp):
    return bt.Wallet(result.validator.wallet, "default", str(tmp / "wallets"))


def _setter(chain, result, tmp, wallet) -> WeightSetter:
    state = ValidatorState.load(tmp / "vstate", {"hotkey": result.validator.hotkey})
    return WeightSetter(chain, wallet, result.validator.hotkey, state, lambda: state.save(tmp / "vstate"), VERSION)


def _to_next_epoch(handle, sub, netuid) -> int:
    """Seal through the next epoch block, LastEpochBlock + tempo (coinbase/run_coinbase.rs::should_run_epoch)."""
    nxt = sub.query(bt.storage.SubtensorModule.LastEpochBlock, [netuid]) + sub.query(
        bt.storage.SubtensorModule.Tempo, [netuid])
    head = handle.head()["number"]
    handle.produce_blocks(max(1, nxt - head))
    return handle.head()["number"]


def _mine(sub, netuid, hotkey) -> list[dict]:
    return [c for cs in sub.weights.timelocked_weight_commits(netuid).values() for c in cs if c["hotkey"] == hotkey]


def test_bootstrap_uses_owner_calls_and_leaves_commit_reveal_on(net):
    handle, result, sub, tmp = net
    assert sub.subnets.commit_reveal_enabled(result.netuid)
    n = sub.query(bt.storage.SubtensorModule.SubnetworkN, [result.netuid])
    assert sub.hyperparameters.min_allowed_weights(result.netuid) == n
    mine = [c for c in result.changes if c.startswith("MinAllowedWeights 1 -> ")]  # init_new_network: 1
    assert mine and "owner call (btcli sudo set" in mine[0]
    assert all("DEVNET-only" in c for c in result.changes if c.startswith(("Tempo", "WeightsSetRateLimit")))


def test_commit_pending_reveal_and_restart(net):
    handle, result, sub, tmp = net
    netuid, v = result.netuid, _validator(result, tmp)
    vuid, m0, m1 = result.validator.uid, result.miners[0].uid, result.miners[1].uid
    chain = ChainView(sub, netuid, WindowParams(window_blocks=10))
    handle.produce_blocks(3)

    # Plaintext weights are refused while commit-reveal is on (dispatches.rs).
    raw = bt.calls.SubtensorModule.set_mechanism_weights(netuid=netuid, mecid=0, dests=[m0], weights=[65535],
                                                         version_key=VERSION)
    res = sub.submit_call(raw, v, signer="hotkey")
    assert not res.success and res.error.name == "CommitRevealEnabled"

    reports = _setter(chain, result, tmp, v).step({m0: 0.7, m1: 0.3})
    assert [r.outcome for r in reports] == [WeightOutcome.COMMITTED_PENDING]
    pending = reports[0].pending
    assert _mine(sub, netuid, result.validator.hotkey)[0]["commit_block"] == pending.commit_block
    assert sub.query(bt.storage.SubtensorModule.LastUpdate, [netuid])[vuid] == pending.commit_block
    assert vuid not in sub.weights.weights(netuid)  # nothing applied before the reveal
    assert len(pending.uids) == sub.hyperparameters.min_allowed_weights(netuid)  # floor spread to all uids

    # A second commit inside the rate limit: the SDK preflight, then the chain (raw call) refuse it.
    with pytest.raises(bt.ChainError) as info:
        sub.execute(bt.SetWeights(netuid=netuid, weights={m0: 1.0}, version_key=VERSION), v)
    assert info.value.code.value == "rate_limited"
    commit = bt.calls.SubtensorModule.commit_timelocked_mechanism_weights(
        netuid=netuid, mecid=0, commit=b"\x00" * 64, reveal_round=1, commit_reveal_version=4)
    res = sub.submit_call(commit, v, signer="hotkey")
    assert not res.success and res.error.name == "CommittingWeightsTooFast"
    wrong = bt.calls.SubtensorModule.commit_timelocked_mechanism_weights(
        netuid=netuid, mecid=0, commit=b"\x00" * 64, reveal_round=1, commit_reveal_version=3)
    res = sub.submit_call(wrong, v, signer="hotkey")
    assert not res.success and res.error.name == "IncorrectCommitRevealVersion"  # checked before the rate limit

    # Restart: the persisted state knows the commit; no second commit, even past the rate limit.
    handle.produce_blocks(3)
    restarted = _setter(chain, result, tmp, v)
    assert restarted.pending == pending
    assert [r.outcome for r in restarted.step({m0: 1.0})] == [WeightOutcome.PENDING]
    assert len(_mine(sub, netuid, result.validator.hotkey)) == 1

    # The reveal: at the next epoch, once the drand round exists (retried every block of that epoch).
    boundary = _to_next_epoch(handle, sub, netuid)
    if _mine(sub, netuid, result.validator.hotkey):
        time.sleep(max(0.0, bt.timelock.reveal_time(pending.reveal_round).timestamp() - time.time()) + 1.1)
        handle.produce_blocks(1)
    assert not _mine(sub, netuid, result.validator.hotkey)
    row = sub.weights.weights(netuid)[vuid]
    assert max(row, key=row.get) == m0 and row[m0] > row[m1] > 0
    revealed_at = sub.query(bt.storage.SubtensorModule.LastUpdate, [netuid])[vuid]
    assert boundary <= revealed_at <= boundary + 1

    again = _setter(chain, result, tmp, v)
    reports = again.step({m0: 1.0})
    assert [r.outcome for r in reports] == [WeightOutcome.REVEALED, WeightOutcome.RATE_LIMITED]
    assert reports[0].block == revealed_at and again.pending is None  # LastUpdate moved: rate limit from the reveal


def test_commit_whose_round_never_comes_is_dropped_and_reported(net):
    handle, result, sub, tmp = net
    netuid, v = result.netuid, _validator(result, tmp)
    vuid = result.validator.uid
    chain = ChainView(sub, netuid, WindowParams(window_blocks=10))
    limit = sub.hyperparameters.weights_rate_limit(netuid)
    handle.produce_blocks(limit + 1)
    state = ValidatorState.load(tmp / "vstate", {"hotkey": result.validator.hotkey})
    state.pending_commit = None
    state.save(tmp / "vstate")
    before = sub.weights.weights(netuid).get(vuid)
    far = bt.timelock.current_round() + 100_000  # drand publishes it in ~3.5 days
    commit = bt.calls.SubtensorModule.commit_timelocked_mechanism_weights(
        netuid=netuid, mecid=0, commit=b"\x01" * 64, reveal_round=far, commit_reveal_version=4)
    res = sub.submit_call(commit, v, signer="hotkey")
    assert res.success, res.message
    commit_block = sub.query(bt.storage.SubtensorModule.LastUpdate, [netuid])[vuid]
    state.pending_commit = PendingCommit(commit_block=commit_block, reveal_round=far, uids=(1,), values=(65535,),
                                         deadline_block=commit_block + 10_000).to_dict()
    state.save(tmp / "vstate")

    _to_next_epoch(handle, sub, netuid)  # the reveal epoch: round not published, kept for retry
    assert _mine(sub, netuid, result.validator.hotkey)
    _to_next_epoch(handle, sub, netuid)  # past it: expired and dropped, silently, as on chain
    assert not _mine(sub, netuid, result.validator.hotkey)
    assert sub.weights.weights(netuid).get(vuid) == before

    reports = _setter(chain, result, tmp, v).step({result.miners[0].uid: 1.0})
    assert reports[0].outcome is WeightOutcome.REVEAL_FAILED and not reports[0].success
    assert reports[1].outcome is WeightOutcome.COMMITTED_PENDING  # retried at once: the rate limit allows it


# -- the same rules in-process (no devnet process) ------------------------------------------------------------


@pytest.fixture
def rt(tmp_path):
    from subnet.devnet.config import GenesisConfig
    from subnet.devnet.runtime import Runtime, dev_address
    from subnet.devnet.runtime.registration import append_neuron
    from subnet.devnet.state import Store

    runtime = Runtime(Store(tmp_path / "s.sqlite"), GenesisConfig())
    runtime.init_genesis()
    runtime.block = 1
    runtime.dispatch(dev_address("//Alice"), "SubtensorModule", "register_network", {"hotkey": dev_address("//Bob")})
    append_neuron(runtime, 1, dev_address("//Dave"))
    runtime.subnet_mut(1)["validator_permit"] = [True, True]
    runtime.subnet_mut(1)["hp"].update(Tempo=10, WeightsSetRateLimit=3, MinAllowedWeights=1)
    return runtime


def _dispatch_err(rt, who, fn, **params) -> str | None:
    from subnet.devnet.runtime import DispatchError

    try:
        rt.dispatch(who, "SubtensorModule", fn, params)
    except DispatchError as exc:
        return exc.name
    return None


def _commit(version=4, **extra):
    return dict(netuid=1, mecid=0, commit=b"\x02" * 32, reveal_round=1, commit_reveal_version=version, **extra)


def test_commit_checks_in_subtensor_order_and_lookahead_epoch(rt):
    """subnets/weights.rs::internal_commit_timelocked_weights and current_epoch_with_lookahead."""
    from subnet.devnet.runtime import dev_address
    from subnet.devnet.runtime.commit_reveal import current_epoch

    dave, eve = dev_address("//Dave"), dev_address("//Eve")
    assert _dispatch_err(rt, dave, "commit_timelocked_mechanism_weights", **{**_commit(), "mecid": 1}) \
        == "MechanismDoesNotExist"
    rt.subnet_mut(1)["hp"]["CommitRevealWeightsEnabled"] = False
    assert _dispatch_err(rt, eve, "commit_timelocked_mechanism_weights", **_commit(3)) == "CommitRevealDisabled"
    rt.subnet_mut(1)["hp"]["CommitRevealWeightsEnabled"] = True
    assert _dispatch_err(rt, eve, "commit_timelocked_mechanism_weights", **_commit(3)) \
        == "IncorrectCommitRevealVersion"  # before registration
    assert _dispatch_err(rt, eve, "commit_timelocked_mechanism_weights", **_commit()) == "HotKeyNotRegisteredInSubNet"
    assert _dispatch_err(rt, dave, "set_mechanism_weights", netuid=1, mecid=0, dests=[0], weights=[1],
                         version_key=0) == "CommitRevealEnabled"
    rt.block = 5  # LastEpochBlock 0, tempo 10: epoch 0 until block 10
    assert current_epoch(rt, rt.store.get("net:1")) == 0
    assert _dispatch_err(rt, dave, "commit_timelocked_mechanism_weights", **_commit()) is None
    assert rt.store.get("tlc:1:0")[0][:2] == [dave, 5] and rt.store.get("net:1")["last_update"][1] == 5
    rt.block = 7
    assert _dispatch_err(rt, dave, "commit_crv3_mechanism_weights", netuid=1, mecid=0, commit=b"\x03" * 32,
                         reveal_round=1) == "CommittingWeightsTooFast"
    rt.subnet_mut(1)["hp"]["WeightsSetRateLimit"] = 0
    for _ in range(9):  # ten unrevealed commits in epoch 0 at most
        assert _dispatch_err(rt, dave, "commit_timelocked_mechanism_weights", **_commit()) is None
    assert _dispatch_err(rt, dave, "commit_timelocked_mechanism_weights", **_commit()) == "TooManyUnrevealedCommits"
    rt.block = 10  # block - LastEpochBlock >= tempo: an epoch is due and not run yet -> the next one
    assert current_epoch(rt, rt.store.get("net:1")) == 1
    assert _dispatch_err(rt, dave, "commit_timelocked_mechanism_weights", **_commit()) is None
    assert rt.store.get("tlc:1:1")[0][:2] == [dave, 10] and rt.store.get("net:1")["last_update"][1] == 10


def test_reveal_applies_escrow_in_its_epoch_and_drops_it_after(rt):
    """coinbase/reveal_commits.rs::reveal_crv3_commits_for_subnet, run before the epoch (block_step.rs)."""
    from bittensor.timelock import current_round

    from subnet.devnet.runtime import dev_address

    dave = dev_address("//Dave")
    escrow = {"hotkey": dave, "uids": [0, 1], "values": [65535, 3], "version_key": 0}
    rt.timestamp_ms = int(time.time() * 1000)
    now_round = current_round()
    assert _dispatch_err(rt, dave, "commit_timelocked_mechanism_weights",
                         **{**_commit(), "reveal_round": now_round, "devnet_reveal": escrow}) is None
    late = {**_commit(), "commit": b"\x04" * 32, "reveal_round": now_round + 10**6, "devnet_reveal": escrow}
    rt.subnet_mut(1)["hp"]["WeightsSetRateLimit"] = 0
    assert _dispatch_err(rt, dave, "commit_timelocked_mechanism_weights", **late) is None
    for rt.block in range(2, 10):  # commit epoch 0 (epochs at LastEpochBlock + tempo: 10, 20, ...)
        rt.on_initialize()
    assert rt.store.get("w:1:1") is None
    rt.block = 10  # epoch 1 due: reveal epoch 0 first, then run the epoch
    rt.on_initialize()
    assert rt.store.get("w:1:1") == [[0, 65535], [1, 3]]
    assert rt.store.get("net:1")["last_update"][1] == 10
    rt.block = 11
    rt.on_initialize()
    assert [e[3] for e in rt.store.get("tlc:1:0")] == [now_round + 10**6]  # retried within epoch 1
    rt.block = 20
    rt.on_initialize()  # epoch 2: epoch 0 is expired and dropped, with its escrow
    assert not list(rt.store.keys("tlc:1:")) and not list(rt.store.keys("tle:1:"))


def test_owner_sets_weights_without_stake(rt):
    """lib.rs::check_weights_min_stake: the owner hotkey is exempt from the global StakeThreshold."""
    from subnet.devnet.runtime import dev_address
    from subnet.devnet.runtime.weights import set_weights

    rt.store.get_mut("meta:hparams")["StakeThreshold"] = 10**12  # a chain-wide StorageValue
    rt.subnet_mut(1)["hp"].update(CommitRevealWeightsEnabled=False)
    set_weights(rt, dev_address("//Bob"), 1, [1], [5], 0)  # owner hotkey: exempt (check_weights_min_stake)
    assert rt.store.get("w:1:0") == [[1, 65535]]
    with pytest.raises(Exception) as info:
        set_weights(rt, dev_address("//Dave"), 1, [0], [5], 0)
    assert getattr(info.value, "name", "") == "NotEnoughStakeToSetWeights"
