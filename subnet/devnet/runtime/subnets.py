"""Subnet lifecycle and administration: register_network, start_call, sudo setters.

Ported from subtensor `subnets/subnet.rs` (do_register_network,
init_new_network's LastEpochBlock stagger, do_start_call) and
`pallets/admin-utils` (owner-or-root hyperparameter setters, with the owner
rate limits and freeze window of `admin_limits.py`; `sudo_set_tempo` resets
the epoch cycle as `apply_tempo_with_cycle_reset` does; the global
`sudo_set_stake_threshold`, `sudo_set_tx_rate_limit`,
`sudo_set_admin_freeze_window` and `sudo_set_owner_hparam_rate_limit` are
root-only). Simplified: the lock cost is a fixed genesis value (no cost
doubling / decay), there is no subnet limit or dissolution queue, and
start_call has no delay.
"""

from __future__ import annotations

from typing import Any

from subnet.devnet.config import GLOBAL_HYPERPARAMETERS, GLOBAL_SETTERS, OWNER_SETTABLE, SUDO_SETTERS
from subnet.devnet.runtime import admin_limits
from subnet.devnet.runtime.base import DispatchError, as_account, as_int, call
from subnet.devnet.runtime.chain import NEURON_FIELDS, Runtime
from subnet.devnet.runtime.epoch import initial_last_epoch_block

ROOT = "<root>"  # the origin Sudo.sudo dispatches with

# init_new_network sets these explicitly on every new subnet, over the runtime's initial values.
# (It also turns Yuma3 on; the devnet's Yuma is the original one, see contrib/DEVNET.md.)
NEW_NETWORK_VALUES = {
    "MaxAllowedUids": 256,
    "MaxAllowedValidators": 64,
    "MinAllowedWeights": 1,
    "ImmunityPeriod": 5000,
    "Burn": 1_000_000_000,  # DefaultNeuronBurnCost: 1 TAO
}


def new_subnet_record(rt: Runtime, netuid: int, owner: str, owner_hotkey: str) -> dict:
    hp = dict(rt.store.get("meta:hparams") or rt.genesis.hyperparameters)
    for name in GLOBAL_HYPERPARAMETERS:  # chain-wide StorageValues, not per-subnet maps
        hp.pop(name, None)
    hp.update(NEW_NETWORK_VALUES)
    rec: dict[str, Any] = {
        "netuid": netuid,
        "owner": owner,
        "owner_hotkey": owner_hotkey,
        "registered_at": rt.block,
        "first_emission_block": None,
        "last_epoch_block": initial_last_epoch_block(rt.block, netuid, int(hp["Tempo"])),
        "locked": rt.genesis.network_lock_cost,
        "name": f"devnet-{netuid}",
        "symbol": f"α{netuid}",
        "hp": hp,
        "regs_this_block": [rt.block, 0],
    }
    for name in NEURON_FIELDS:
        rec[name] = []
    return rec


@call("SubtensorModule", "register_network")
def register_network(rt: Runtime, origin: str, hotkey: Any, **_extra: Any) -> None:
    hotkey = as_account(hotkey, "hotkey")
    owner_of_hotkey = rt.hotkey_owner(hotkey)
    if owner_of_hotkey is not None and owner_of_hotkey != origin:
        raise DispatchError("NonAssociatedColdKey", "hotkey belongs to another coldkey")
    cost = rt.genesis.network_lock_cost
    rt.withdraw(origin, cost, "NotEnoughBalanceToStake")
    taken = set(rt.netuids())
    netuid = next(n for n in range(1, 65536) if n not in taken)
    rt.store.put(f"net:{netuid}", new_subnet_record(rt, netuid, origin, hotkey))
    rt.store.put("meta:netuids", sorted(taken | {netuid}))
    _bind_hotkey(rt, origin, hotkey)
    # The owner hotkey gets uid 0, as subtensor does for a new subnet.
    from subnet.devnet.runtime.registration import append_neuron

    append_neuron(rt, netuid, hotkey)
    rt.deposit_event("SubtensorModule", "NetworkAdded", {"netuid": netuid, "mechanism": 1})


@call("SubtensorModule", "register_network_with_identity")
def register_network_with_identity(rt: Runtime, origin: str, hotkey: Any, identity: Any = None) -> None:
    register_network(rt, origin, hotkey)


def _bind_hotkey(rt: Runtime, coldkey: str, hotkey: str) -> None:
    if rt.hotkey_owner(hotkey) is None:
        rt.store.put(f"hk:{hotkey}", coldkey)
        owned = rt.store.get_mut(f"ck:{coldkey}", list)
        if hotkey not in owned:
            owned.append(hotkey)


@call("SubtensorModule", "start_call")
def start_call(rt: Runtime, origin: str, netuid: Any) -> None:
    rec = rt.subnet(netuid)
    if rec["owner"] != origin:
        raise DispatchError("NotSubnetOwner")
    if rec["first_emission_block"] is not None:
        raise DispatchError("FirstEmissionBlockNumberAlreadySet")
    rec = rt.subnet_mut(netuid)
    rec["first_emission_block"] = rt.block + 1  # the epoch schedule is untouched (do_start_call)
    rt.deposit_event(
        "SubtensorModule",
        "FirstEmissionBlockNumberSet",
        {"netuid": rec["netuid"], "block": rt.block + 1},
    )


def _set_hyperparameter(rt: Runtime, origin: str, method: str, params: dict) -> None:
    storage, param = SUDO_SETTERS[method]
    if "netuid" not in params or param not in params:
        raise DispatchError("InvalidValue", f"{method} takes netuid and {param}")
    rec = rt.store.get(f"net:{as_int(params['netuid'], 'netuid')}")
    if rec is None:
        raise DispatchError("SubnetDoesNotExist")
    is_root = origin == ROOT  # only through Sudo.sudo; the sudo key signing directly is a plain account
    if not is_root and not (method in OWNER_SETTABLE and rec["owner"] == origin):
        raise DispatchError("BadOrigin", f"{method} needs the subnet owner or sudo")
    owner = None if is_root else origin
    admin_limits.check(rt, rec, method, owner)
    value = params[param]
    if storage == "SubnetEpochConsensus":
        mode = next(iter(value)) if isinstance(value, dict) else str(value)
        if mode not in ("Yuma", "Null"):
            raise DispatchError("InvalidValue", "mode must be Yuma or Null")
        value = mode
    elif isinstance(rec["hp"].get(storage), bool):
        value = bool(value)
    else:
        value = as_int(value, param)
        if value < 0:
            raise DispatchError("InvalidValue", f"{param} must be >= 0")
    if storage == "RevealPeriodEpochs" and not 1 <= value <= 100:  # set_reveal_period's bounds
        raise DispatchError("RevealPeriodTooSmall" if value < 1 else "RevealPeriodTooLarge")
    if storage == "MaxAllowedUids" and value < len(rec["hotkeys"]):
        raise DispatchError("MaxAllowedUIdsLessThanCurrentUIds")
    if storage == "BondsMovingAverage" and value > 975_000 and not is_root:
        raise DispatchError("BondsMovingAverageMaxReached")
    rec = rt.subnet_mut(rec["netuid"])
    rec["hp"][storage] = value
    if storage == "Tempo":
        rec["last_epoch_block"] = rt.block  # apply_tempo_with_cycle_reset
    admin_limits.record(rt, rec, method, owner)
    rt.deposit_event("AdminUtils", "HyperparameterSet", {"netuid": rec["netuid"], "name": storage, "value": value})


def _set_global(rt: Runtime, origin: str, method: str, params: dict) -> None:
    """A chain-wide AdminUtils StorageValue (root only): StakeThreshold, TxRateLimit, the admin limits."""
    storage, param = GLOBAL_SETTERS[method]
    if origin != ROOT:
        raise DispatchError("BadOrigin", f"{method} needs root (Sudo)")
    if param not in params:
        raise DispatchError("InvalidValue", f"{method} takes {param}")
    value = as_int(params[param], param)
    if value < 0:
        raise DispatchError("InvalidValue", f"{param} must be >= 0")
    rt.store.get_mut("meta:hparams", dict)[storage] = value
    rt.deposit_event("AdminUtils", "HyperparameterSet", {"netuid": None, "name": storage, "value": value})


def _make_global_setter(method: str):
    def handler(rt: Runtime, origin: str, **params: Any) -> None:
        _set_global(rt, origin, method, params)

    return handler


for _method in GLOBAL_SETTERS:
    call("AdminUtils", _method)(_make_global_setter(_method))


def _make_setter(method: str):
    def handler(rt: Runtime, origin: str, **params: Any) -> None:
        _set_hyperparameter(rt, origin, method, params)

    return handler


for _method in SUDO_SETTERS:
    call("AdminUtils", _method)(_make_setter(_method))


@call("Sudo", "sudo")
def sudo(rt: Runtime, origin: str, call: Any) -> None:
    """Dispatch `call` with root origin; the signer must be the sudo key (//Alice)."""
    if origin != rt.sudo_key:
        raise DispatchError("RequireSudo")
    if not isinstance(call, dict) or "module" not in call:
        raise DispatchError("InvalidValue", "Sudo.sudo needs a composed call")
    try:
        rt.dispatch("<root>", call["module"], call["function"], dict(call.get("params") or {}))
        result: Any = {"Ok": None}
    except DispatchError:
        raise  # devnet: surface the inner error directly instead of Sudid(Err)
    rt.deposit_event("Sudo", "Sudid", {"sudo_result": result})
