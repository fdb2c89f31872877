"""Neuron registration: burned_register, UID assignment, immunity and pruning.

Ported from subtensor 14bc6f9 `subnets/registration.rs` (do_register with
its checks in order, get_neuron_to_prune, get_immune_owner_tuples) and
`subnets/uids.rs` (append_neuron / replace_neuron). The burn price moves as
`burn.py` ports it (x1.26 per registration, halving every BurnHalfLife
blocks); `MaxRegistrationsPerBlock` is stored but, as at the ported commit,
not enforced. Simplified: the burned TAO is destroyed rather than swapped
into the subnet pool.
"""

from __future__ import annotations

from typing import Any

from subnet.devnet.runtime import burn as burn_price
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


def immune_owner_hotkeys(rt: Runtime, rec: dict) -> list[str]:
    """`get_immune_owner_tuples`: the owner coldkey's registered hotkeys, oldest first, capped at
    ImmuneOwnerUidsLimit, with the subnet owner hotkey put first (and the cap applied again)."""
    limit = int(rec["hp"].get("ImmuneOwnerUidsLimit", 1))
    hotkeys = rec["hotkeys"]
    owned = [hk for hk in rt.store.get(f"ck:{rec['owner']}") or [] if hk in hotkeys]
    triples = sorted((int(rec["block_at_registration"][hotkeys.index(hk)]), hotkeys.index(hk), hk) for hk in owned)
    immune = [hk for _, _, hk in triples[:limit]]
    owner_hk = rec["owner_hotkey"]
    if owner_hk in hotkeys and owner_hk not in immune:
        immune = [owner_hk, *immune][:limit]
    return immune


def neuron_to_prune(rt: Runtime, rec: dict) -> int | None:
    """`get_neuron_to_prune`: the lowest-emission uid (ties: older registration, lower uid).

    The owner's immune hotkeys are never pruned. A non-immune uid is taken
    only while more than MinNonImmuneUids non-immune uids remain; otherwise
    the best immune one is.
    """
    immunity = int(rec["hp"]["ImmunityPeriod"])
    immortal = set(immune_owner_hotkeys(rt, rec))
    candidates = []
    immune = []
    for uid, hotkey in enumerate(rec["hotkeys"]):
        if hotkey in immortal:
            continue
        key = (int(rec["emission"][uid]), int(rec["block_at_registration"][uid]), uid)
        if max(0, rt.block - int(rec["block_at_registration"][uid])) < immunity:
            immune.append(key)
        else:
            candidates.append(key)
    if not candidates and not immune:
        return None
    if candidates and len(candidates) > int(rec["hp"]["MinNonImmuneUids"]):
        return min(candidates)[2]
    return min(immune)[2] if immune else None


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
    if hotkey in rec["hotkeys"]:
        raise DispatchError("HotKeyAlreadyRegisteredInSubNet")
    burn = int(hp["Burn"])  # already decayed for this block; bumped by earlier registrations in it
    if rt.account(origin)["free"] < burn:
        raise DispatchError("NotEnoughBalanceToStake", f"registration burns {burn} rao")
    owner = rt.hotkey_owner(hotkey)
    if owner is not None and owner != origin:
        raise DispatchError("NonAssociatedColdKey", "the hotkey belongs to another coldkey")
    if int(hp["MaxAllowedUids"]) == 0:
        raise DispatchError("NoNeuronIdAvailable")
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
    burn_price.bump_after_registration(rt, netuid)
    block, count = rec.get("regs_this_block") or [rt.block, 0]
    rt.subnet_mut(netuid)["regs_this_block"] = [rt.block, (count + 1) if block == rt.block else 1]
    rt.deposit_event(
        "SubtensorModule", "NeuronRegistered", {"netuid": netuid, "uid": uid, "hotkey": hotkey}
    )
