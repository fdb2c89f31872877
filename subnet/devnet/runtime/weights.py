"""set_weights / set_mechanism_weights with subtensor's checks, in its order.

Ported from subtensor `subnets/weights.rs::internal_set_weights`. Each check
fails with the chain's error name. The dispatchables refuse plaintext weights
with `CommitRevealEnabled` while the subnet has commit-reveal on
(`macros/dispatches.rs`); the timelocked commit path and its reveal live in
`commit_reveal.py`, and the reveal applies weights through `set_weights` here.
The legacy hash commit/reveal calls are not supported (the SDK does not use
them) and fail with `CallFiltered`.
"""

from __future__ import annotations

from typing import Any

from subnet.devnet.config import U16_MAX
from subnet.devnet.runtime.base import DispatchError, as_int, call
from subnet.devnet.runtime.chain import Runtime


def max_upscale(values: list[int]) -> list[int]:
    """Scale so the largest weight is u16::MAX (the pallet's stored form)."""
    top = max(values) if values else 0
    if top == 0:
        return [0 for _ in values]
    return [int(v * U16_MAX // top) for v in values]


def check_weights_min_stake(rt: Runtime, rec: dict, hotkey: str) -> bool:
    """`check_weights_min_stake` (lib.rs): the owner hotkey is exempt, else stake >= the global StakeThreshold."""
    if hotkey == rec["owner_hotkey"]:
        return True
    return rt.stake_of(int(rec["netuid"]), hotkey) >= rt.global_param("StakeThreshold")


def set_weights(
    rt: Runtime, hotkey: str, netuid: Any, uids: Any, values: Any, version_key: Any, mecid: int = 0
) -> None:
    netuid = as_int(netuid, "netuid")
    # 1. not the root netuid
    if netuid == 0:
        raise DispatchError("CanNotSetRootNetworkWeights")
    uids = [as_int(u, "dests") for u in (uids or [])]
    values = [as_int(v, "weights") for v in (values or [])]
    # 2. equal lengths
    if len(uids) != len(values):
        raise DispatchError("WeightVecNotEqualSize")
    # 3. the mechanism exists
    rec = rt.store.get(f"net:{netuid}")
    if rec is None or int(mecid) != 0:
        raise DispatchError("MechanismDoesNotExist")
    hp = rec["hp"]
    n = len(rec["hotkeys"])
    # 4. no more uids than the subnet has
    if len(uids) > n:
        raise DispatchError("UidsLengthExceedUidsInSubNet")
    # 5. registered
    try:
        uid = rec["hotkeys"].index(hotkey)
    except ValueError:
        raise DispatchError("HotKeyNotRegisteredInSubNet") from None
    # 6. minimum stake (the subnet owner's hotkey is exempt: check_weights_min_stake)
    if not check_weights_min_stake(rt, rec, hotkey):
        raise DispatchError("NotEnoughStakeToSetWeights")
    # 7. version key
    required = int(hp["WeightsVersionKey"])
    if not (required == 0 or as_int(version_key, "version_key") >= required):
        raise DispatchError(
            "IncorrectWeightVersionKey", f"got {version_key}, the subnet requires >= {required}"
        )
    # 8. rate limit (commit-reveal off)
    last = int(rec["last_update"][uid])
    limit = int(hp["WeightsSetRateLimit"])
    if not hp["CommitRevealWeightsEnabled"] and not (last == 0 or rt.block - last >= limit):
        raise DispatchError(
            "SettingWeightsTooFast", f"last set at block {last}, rate limit {limit} blocks"
        )
    is_self = uids == [uid]
    is_owner = hotkey == rec["owner_hotkey"]
    # 9. validator permit
    if not (is_self or is_owner) and not rec["validator_permit"][uid]:
        raise DispatchError("NeuronNoValidatorPermit")
    # 10. duplicates
    if len(set(uids)) != len(uids):
        raise DispatchError("DuplicateUids")
    # 11. every uid exists
    if any(u < 0 or u >= n for u in uids):
        raise DispatchError("UidVecContainInvalidOne")
    if any(v < 0 or v > U16_MAX for v in values):
        raise DispatchError("InvalidValue", "weights must be u16")
    # 12. enough weights
    if not is_self and len(uids) < min(int(hp["MinAllowedWeights"]), n):
        raise DispatchError("WeightVecLengthIsLow")
    # 13. max weight limit, after max-upscaling
    scaled = max_upscale(values)
    total = sum(scaled)
    if not is_self and total and max(scaled) * U16_MAX > int(hp["MaxWeightsLimit"]) * total:
        raise DispatchError("MaxWeightExceeded")
    rt.store.put(f"w:{netuid}:{uid}", [[u, v] for u, v in zip(uids, scaled) if v > 0])
    rec = rt.subnet_mut(netuid)
    rec["last_update"][uid] = rt.block
    rt.deposit_event("SubtensorModule", "WeightsSet", {"netuid": netuid, "uid": uid})


def _refuse_plaintext_under_commit_reveal(rt: Runtime, netuid: Any) -> None:
    rec = rt.store.get(f"net:{as_int(netuid, 'netuid')}")
    if rec is not None and rec["hp"]["CommitRevealWeightsEnabled"]:
        raise DispatchError("CommitRevealEnabled", "commit-reveal is on: commit timelocked weights instead")


@call("SubtensorModule", "set_weights")
def set_weights_call(
    rt: Runtime, origin: str, netuid: Any, dests: Any, weights: Any, version_key: Any = 0
) -> None:
    _refuse_plaintext_under_commit_reveal(rt, netuid)
    set_weights(rt, origin, netuid, dests, weights, version_key)


@call("SubtensorModule", "set_mechanism_weights")
def set_mechanism_weights_call(
    rt: Runtime, origin: str, netuid: Any, mecid: Any, dests: Any, weights: Any, version_key: Any = 0
) -> None:
    _refuse_plaintext_under_commit_reveal(rt, netuid)
    set_weights(rt, origin, netuid, dests, weights, version_key, mecid=as_int(mecid, "mecid"))


def _hash_commit_refused(rt: Runtime, origin: str, **params: Any) -> None:
    raise DispatchError(
        "CallFiltered",
        "legacy hash commit-reveal is not supported by the devnet; SetWeights commits timelocked weights "
        "(see contrib/DEVNET.md)",
    )


for _fn in ("commit_weights", "commit_mechanism_weights", "reveal_weights", "reveal_mechanism_weights"):
    call("SubtensorModule", _fn)(_hash_commit_refused)
