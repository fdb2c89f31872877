"""Neuron registration: burned_register, UID assignment, immunity and pruning.

Ported from subtensor `subnets/registration.rs` (do_burned_registration) and
`subnets/uids.rs` (append_neuron / replace_neuron / get_neuron_to_prune).
Simplified: the burn is a fixed per-subnet value (no adjustment interval), and
the burned TAO is destroyed rather than recycled into the subnet pool.
"""

from __future__ import annotations

from typing import Any

from subnet.devnet.runtime.base import DispatchError, as_account, call
from subnet.devnet.runtime.chain import NEURON_FIELDS, Runtime

_ZERO = {"hotkeys": None, "active": True, "validator_permit": False}


def append_neuron(rt: Runtime, netuid: int, hotkey: str) -> int:
    rec = rt.subnet_mut(netuid)
    uid = len(rec["hotkeys"])
    for name in NEURON_FIELDS:
        rec[name].append(_initial(name, hotkey, rt.block))
    _index_hotkey(rt, netuid, hotkey, uid)
    return uid


def replace_neuron(rt: Runtime, netuid: int, uid: int, hotkey: str) -> None:
    rec = rt.subnet_mut(netuid)
    old = rec["hotkeys"][uid]
    for name in NEURON_FIELDS:
        rec[name][uid] = _initial(name, hotkey, rt.block)
    rt.store.delete(f"w:{netuid}:{uid}")
    rt.store.delete(f"b:{netuid}:{uid}")
    rt.store.delete(f"axon:{netuid}:{old}")
    # Drop bonds held *in* the replaced uid by every validator.
    for key in list(rt.store.keys(f"b:{netuid}:")):
        row = rt.store.get(key)
        if any(int(d) == uid for d, _ in row):
            rt.store.put(key, [[d, v] for d, v in row if int(d) != uid])
    nets = rt.store.get_mut(f"member:{old}", list)
    if netuid in nets:
        nets.remove(netuid)
    _index_hotkey(rt, netuid, hotkey, uid)
    rt.deposit_event("SubtensorModule", "NeuronDeregistered", {"netuid": netuid, "uid": uid, "hotkey": old})


def _index_hotkey(rt: Runtime, netuid: int, hotkey: str, uid: int) -> None:
    nets = rt.store.get_mut(f"member:{hotkey}", list)
    if netuid not in nets:
        nets.append(netuid)


def _initial(name: str, hotkey: str, block: int) -> Any:
    if name == "hotkeys":
        return hotkey
    if name == "block_at_registration":
        return block
    if name == "active":
        return True
    if name == "validator_permit":
        return False
    return 0


def neuron_to_prune(rt: Runtime, rec: dict) -> int | None:
    """Lowest-emission non-immune uid (ties: older registration, then lower uid).

    The owner hotkey is immortal. When every candidate is immune, the lowest
    immune one is taken, as subtensor does once non-immune uids run out.
    """
    immunity = int(rec["hp"]["ImmunityPeriod"])
    candidates = []
    immune = []
    for uid, hotkey in enumerate(rec["hotkeys"]):
        if hotkey == rec["owner_hotkey"]:
            continue
        key = (int(rec["emission"][uid]), int(rec["block_at_registration"][uid]), uid)
        if rt.block - int(rec["block_at_registration"][uid]) < immunity:
            immune.append(key)
        else:
            candidates.append(key)
    pool = candidates or immune
    return min(pool)[2] if pool else None


@call("SubtensorModule", "burned_register")
def burned_register(rt: Runtime, origin: str, netuid: Any, hotkey: Any) -> None:
    hotkey = as_account(hotkey, "hotkey")
    if int(netuid) == 0:
        raise DispatchError("RegistrationNotPermittedOnRootSubnet")
    rec = rt.subnet(netuid)
    netuid = rec["netuid"]
    hp = rec["hp"]
    if not hp["NetworkRegistrationAllowed"]:
        raise DispatchError("SubNetRegistrationDisabled")
    block, count = rec.get("regs_this_block") or [rt.block, 0]
    if block == rt.block and count >= int(hp["MaxRegistrationsPerBlock"]):
        raise DispatchError("TooManyRegistrationsThisBlock")
    if hotkey in rec["hotkeys"]:
        raise DispatchError("HotKeyAlreadyRegisteredInSubNet")
    owner = rt.hotkey_owner(hotkey)
    if owner is not None and owner != origin:
        raise DispatchError("NonAssociatedColdKey", "the hotkey belongs to another coldkey")
    burn = int(hp["Burn"])
    if rt.account(origin)["free"] < burn:
        raise DispatchError("NotEnoughBalanceToStake", f"registration burns {burn} rao")
    if len(rec["hotkeys"]) >= int(hp["MaxAllowedUids"]):
        uid = neuron_to_prune(rt, rec)
        if uid is None:
            raise DispatchError("NoNeuronIdAvailable")
    else:
        uid = None
    # Checks done: now write.
    rt.withdraw(origin, burn, "NotEnoughBalanceToStake")
    if owner is None:
        rt.store.put(f"hk:{hotkey}", origin)
        owned = rt.store.get_mut(f"ck:{origin}", list)
        owned.append(hotkey)
    if uid is None:
        uid = append_neuron(rt, netuid, hotkey)
    else:
        replace_neuron(rt, netuid, uid, hotkey)
    rec = rt.subnet_mut(netuid)
    rec["regs_this_block"] = [rt.block, (count + 1) if block == rt.block else 1]
    rt.deposit_event(
        "SubtensorModule", "NeuronRegistered", {"netuid": netuid, "uid": uid, "hotkey": hotkey}
    )
