"""Devnet chain rules in-process: epoch schedule, registration burn, pruning floor, admin limits, min stake."""

from __future__ import annotations

import pytest

from subnet.devnet.config import GenesisConfig
from subnet.devnet.runtime import DispatchError, Runtime, dev_address
from subnet.devnet.runtime.burn import decay_factor_q32, mul_by_q32
from subnet.devnet.runtime.registration import neuron_to_prune
from subnet.devnet.runtime.weights import set_weights
from subnet.devnet.state import Store

ALICE, BOB = dev_address("//Alice"), dev_address("//Bob")
ROOT = "<root>"


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime(Store(tmp_path / "s.sqlite"), GenesisConfig())
    runtime.init_genesis()
    runtime.block = 1
    runtime.dispatch(ALICE, "SubtensorModule", "register_network", {"hotkey": BOB})  # owner coldkey Alice
    return runtime


def _err(fn, *args, **kw) -> str | None:
    try:
        fn(*args, **kw)
    except DispatchError as exc:
        return exc.name
    return None


def _admin(rt, origin, method, **params):
    return _err(rt.dispatch, origin, "AdminUtils", method, {"netuid": 1, **params})


def _register(rt, coldkey, uri):
    rt.dispatch(coldkey, "SubtensorModule", "burned_register", {"netuid": 1, "hotkey": dev_address(uri)})
    return dev_address(uri)


def test_new_subnet_epoch_schedule_and_tempo_reset(rt):
    """subnets/subnet.rs::init_new_network stagger; coinbase/run_coinbase.rs::should_run_epoch / drain_pending;
    utils/misc.rs::apply_tempo_with_cycle_reset."""
    rec = rt.store.get("net:1")
    assert rec["last_epoch_block"] == 0  # block 1 - netuid 1 % tempo 360
    assert rec["hp"]["MinAllowedWeights"] == 1 and rec["hp"]["ImmunityPeriod"] == 5000  # init_new_network
    rt.block = 5
    assert _admin(rt, ROOT, "sudo_set_tempo", tempo=10) is None
    assert rt.store.get("net:1")["last_epoch_block"] == 5  # the cycle restarts at the call
    ran = []
    for rt.block in range(6, 27):
        rt.on_initialize()
        if rt.store.get("net:1")["last_epoch_block"] == rt.block:
            ran.append(rt.block)
    assert ran == [15, 25]  # LastEpochBlock + tempo, each run re-anchoring the next
    assert rt.store.get("net:1")["epoch_index"] == 2


def test_registration_burn_bumps_and_decays(rt):
    """subnets/registration.rs::bump_registration_price_after_registration and
    update_registration_prices_for_networks; utils/misc.rs::decay_factor_q32 / mul_by_q32."""
    assert rt.store.get("net:1")["hp"]["Burn"] == 10**9  # DefaultNeuronBurnCost on a new subnet
    rt.block = 2
    _register(rt, ALICE, "//m1")
    _register(rt, ALICE, "//m2")  # same block: the second pays the bumped price
    assert rt.store.get("net:1")["hp"]["Burn"] == (((10**9 * int(1.26 * 2**64)) >> 64) * int(1.26 * 2**64)) >> 64
    burn = rt.store.get("net:1")["hp"]["Burn"]
    rt.block = 3
    rt.on_initialize()
    factor = decay_factor_q32(360)
    assert rt.store.get("net:1")["hp"]["Burn"] == mul_by_q32(burn, factor)
    assert abs(pow(factor / 2**32, 360) - 0.5) < 1e-6  # halves every BurnHalfLife blocks
    for rt.block in range(4, 6000):  # ~17 half-lives
        rt.on_initialize()
    assert rt.store.get("net:1")["hp"]["Burn"] == rt.store.get("net:1")["hp"]["MinBurn"]  # clamped


def test_max_registrations_per_block_is_not_enforced(rt):
    """subnets/registration.rs::do_register at 14bc6f9 has no per-block registration cap."""
    rt.block = 2
    for i in range(5):
        _register(rt, ALICE, f"//r{i}")
    assert len(rt.store.get("net:1")["hotkeys"]) == 6


def test_pruning_floor_and_owner_immune_hotkeys(rt):
    """subnets/registration.rs::get_neuron_to_prune and get_immune_owner_tuples (MinNonImmuneUids,
    ImmuneOwnerUidsLimit)."""
    rt.subnet_mut(1)["hp"].update(ImmunityPeriod=10, MaxAllowedUids=5)
    rt.block = 2
    owner_extra = _register(rt, ALICE, "//owner-extra")  # another hotkey of the owner coldkey, uid 1
    charlie = dev_address("//Charlie")
    rt.account_mut(charlie)["free"] += 10**12
    _register(rt, charlie, "//c1")  # uid 2
    rt.block = 20
    _register(rt, charlie, "//c2")  # uid 3, immune until block 30
    rec = rt.store.get("net:1")
    rt.block = 25
    # Non-immune and not owner-immortal: uids 1 and 2 (ImmuneOwnerUidsLimit 1 keeps only the owner hotkey).
    # Two free uids are not more than MinNonImmuneUids (10), so the immune uid 3 goes.
    assert neuron_to_prune(rt, rec) == 3
    rt.subnet_mut(1)["hp"]["MinNonImmuneUids"] = 1
    assert neuron_to_prune(rt, rt.store.get("net:1")) == 1  # lowest emission, oldest registration
    rt.subnet_mut(1)["hp"]["ImmuneOwnerUidsLimit"] = 2  # the owner's oldest other hotkey is kept too...
    assert neuron_to_prune(rt, rt.store.get("net:1")) == 3  # ...leaving one free uid, not more than 1
    rt.subnet_mut(1)["hp"]["MinNonImmuneUids"] = 0
    assert neuron_to_prune(rt, rt.store.get("net:1")) == 2
    assert owner_extra in rt.store.get("net:1")["hotkeys"]


def test_owner_hyperparameter_rate_limit_and_freeze_window(rt):
    """admin-utils/src/lib.rs setters with utils/rate_limiting.rs (OwnerHyperparamUpdate) and
    utils/misc.rs::is_in_admin_freeze_window / ensure_admin_window_open."""
    rt.block = 2
    assert _admin(rt, ROOT, "sudo_set_tempo", tempo=100) is None  # next epoch at 102
    rt.block = 3
    assert _admin(rt, ALICE, "sudo_set_immunity_period", immunity_period=50) is None
    # The same hyperparameter again within 2 tempos: refused; another one is not.
    assert _admin(rt, ALICE, "sudo_set_immunity_period", immunity_period=60) == "TxRateLimitExceeded"
    assert _admin(rt, ALICE, "sudo_set_min_allowed_weights", min_allowed_weights=2) is None
    assert _admin(rt, ROOT, "sudo_set_immunity_period", immunity_period=70) is None  # root: no rate limit
    assert _admin(rt, BOB, "sudo_set_rho", rho=3) == "BadOrigin"
    # The last AdminFreezeWindow (10) blocks before the epoch are closed, to root as well.
    rt.block = 93  # 9 blocks before the epoch at 102
    assert _admin(rt, ALICE, "sudo_set_rho", rho=3) == "AdminActionProhibitedDuringWeightsWindow"
    assert _admin(rt, ROOT, "sudo_set_rho", rho=3) == "AdminActionProhibitedDuringWeightsWindow"
    assert _admin(rt, ROOT, "sudo_set_kappa", kappa=1) is None  # root-only kappa has no window
    rt.block = 92  # 10 blocks left: still open
    assert _admin(rt, ALICE, "sudo_set_rho", rho=3) is None
    for rt.block in (102, 202):  # the epochs run
        rt.on_initialize()
    rt.block = 203
    assert _admin(rt, ALICE, "sudo_set_immunity_period", immunity_period=60) is None  # 200 blocks later
    assert _err(rt.dispatch, ROOT, "AdminUtils", "sudo_set_owner_hparam_rate_limit", {"epochs": 0}) is None
    assert _admin(rt, ALICE, "sudo_set_immunity_period", immunity_period=61) is None


def test_stake_threshold_refuses_low_stake_weights(rt):
    """subnets/weights.rs::internal_set_weights check 6 via lib.rs::check_weights_min_stake; admin-utils
    sudo_set_stake_threshold (root, chain-wide)."""
    rt.block = 2
    dave = _register(rt, ALICE, "//dave")
    rt.subnet_mut(1)["hp"]["CommitRevealWeightsEnabled"] = False
    assert _err(rt.dispatch, ALICE, "AdminUtils", "sudo_set_stake_threshold", {"min_stake": 5}) == "BadOrigin"
    assert _err(rt.dispatch, ROOT, "AdminUtils", "sudo_set_stake_threshold", {"min_stake": 5 * 10**9}) is None
    assert _err(set_weights, rt, dave, 1, [1], [1], 0) == "NotEnoughStakeToSetWeights"  # before the self-weight rules
    assert _err(set_weights, rt, BOB, 1, [1], [1], 0) is None  # the owner hotkey is exempt
    rt.dispatch(ALICE, "SubtensorModule", "add_stake", {"hotkey": dave, "netuid": 1, "amount_staked": 5 * 10**9})
    assert _err(set_weights, rt, dave, 1, [1], [1], 0) is None
    assert _err(rt.dispatch, dave, "SubtensorModule", "commit_timelocked_mechanism_weights",
                {"netuid": 1, "mecid": 0, "commit": b"\x01" * 8, "reveal_round": 1,
                 "commit_reveal_version": 4}) == "CommitRevealDisabled"
