"""Devnet runtime rules in-process: check order, rollback, commitments, schedule."""

from __future__ import annotations

import bittensor_core
import pytest

from subnet.devnet import extrinsic as xt
from subnet.devnet.config import GenesisConfig
from subnet.devnet.runtime import DispatchError, Runtime, dev_address
from subnet.devnet.runtime.commitments import normalize_fields
from subnet.devnet.runtime.epoch import is_due
from subnet.devnet.runtime.weights import max_upscale, set_weights
from subnet.devnet.state import Store


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime(Store(tmp_path / "s.sqlite"), GenesisConfig())
    runtime.init_genesis()
    runtime.block = 1
    alice = dev_address("//Alice")
    runtime.dispatch(alice, "SubtensorModule", "register_network", {"hotkey": dev_address("//Bob")})
    return runtime


def _err(fn, *args, **kw) -> str:
    with pytest.raises(DispatchError) as info:
        fn(*args, **kw)
    return info.value.name


def test_set_weights_checks_run_in_chain_order(rt):
    stranger = dev_address("//Dave")
    # Length mismatch (check 2) is reported before registration (check 5).
    assert _err(set_weights, rt, stranger, 1, [0, 1], [1], 0) == "WeightVecNotEqualSize"
    assert _err(set_weights, rt, stranger, 0, [0], [1], 0) == "CanNotSetRootNetworkWeights"
    assert _err(set_weights, rt, stranger, 9, [0], [1], 0) == "MechanismDoesNotExist"
    assert _err(set_weights, rt, stranger, 1, [0, 0], [1, 1], 0) == "UidsLengthExceedUidsInSubNet"
    assert _err(set_weights, rt, stranger, 1, [0], [1], 0) == "HotKeyNotRegisteredInSubNet"
    owner_hotkey = dev_address("//Bob")
    rt.subnet_mut(1)["hp"]["CommitRevealWeightsEnabled"] = False  # plaintext rate limit (check 8) applies
    rt.subnet_mut(1)["hp"]["WeightsVersionKey"] = 3
    assert _err(set_weights, rt, owner_hotkey, 1, [0], [1], 2) == "IncorrectWeightVersionKey"
    set_weights(rt, owner_hotkey, 1, [0], [7], 3)  # owner self-weight, version ok
    assert rt.store.get("w:1:0") == [[0, 65535]]
    rt.block += 1
    assert _err(set_weights, rt, owner_hotkey, 1, [0], [1], 3) == "SettingWeightsTooFast"


def test_failed_extrinsic_rolls_back_but_consumes_nonce(rt):
    bob = bittensor_core.Keypair.create_from_uri("//Bob")
    before = rt.account(bob.ss58_address)["free"]
    ext = xt.sign(module="Balances", function="transfer_keep_alive",
                  params={"dest": dev_address("//Eve"), "value": before * 2}, keypair=bob,
                  nonce=0, era_birth=0, era_period=0, genesis_hash="0x00")
    receipt = rt.apply(ext, 0)
    assert not receipt["success"] and receipt["error"]["name"] == "InsufficientBalance"
    assert rt.account(bob.ss58_address)["free"] == before
    assert rt.account(bob.ss58_address)["nonce"] == 1
    assert rt.account(dev_address("//Eve"))["free"] == 0


def test_signature_covers_every_field():
    kp = bittensor_core.Keypair.create_from_uri("//Alice")
    ext = xt.sign(module="Balances", function="transfer_keep_alive", params={"dest": "x", "value": 1},
                  keypair=kp, nonce=4, era_birth=10, era_period=64, genesis_hash="0xab")
    assert ext.verify_signature()
    for change in ({"nonce": 5}, {"params": {"dest": "x", "value": 2}}, {"genesis_hash": "0xac"},
                   {"era_birth": 11}, {"function": "transfer_allow_death"}):
        assert not xt.Extrinsic(**{**ext.__dict__, **change}).verify_signature()


def test_commitment_fields_validated():
    assert normalize_fields({"fields": [[{"Raw2": "hi"}]]}) == [{"Raw2": "0x6869"}]
    assert normalize_fields({"fields": [{"Raw5": b"hello"}]}) == [{"Raw5": "0x68656c6c6f"}]
    assert _err(normalize_fields, {"fields": [{"Raw1": "a"}] * 4}) == "TooManyFieldsInCommitmentInfo"
    assert _err(normalize_fields, {"fields": [{"Raw128": "x" * 129}]}) == "InvalidValue"
    assert _err(normalize_fields, {"fields": [{"Sha256": "0x00"}]}) == "InvalidValue"


def test_helpers():
    """Epoch schedule as subtensor's coinbase/run_coinbase.rs::should_run_epoch (LastEpochBlock + tempo)."""
    assert max_upscale([1, 2, 4]) == [16383, 32767, 65535]
    assert max_upscale([0, 0]) == [0, 0]
    # due once block - LastEpochBlock >= tempo; tempo 0 never runs
    assert [b for b in range(30) if is_due(b, 8, 9)] == list(range(17, 30))
    assert not is_due(16, 8, 9) and is_due(17, 8, 9)
    assert not any(is_due(b, 0, 0) for b in range(30))
