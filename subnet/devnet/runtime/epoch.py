"""Per-tempo epoch: run Yuma Consensus and credit emission as alpha stake.

Schedule is subtensor's pre-dynamic-tempo rule, `(block + netuid + 1) %
(tempo + 1) == 0` (`blocks_until_next_epoch`). Emission follows
`coinbase/run_coinbase.rs` in spirit: `alpha_per_block` accrues for every
block since the last epoch once the subnet is started; the owner cut
(SubnetOwnerCut, 18%) goes to the owner hotkey, the rest is split by Yuma
between miners (incentive) and validators (dividends), credited as alpha stake
on each hotkey (owned by the hotkey's coldkey). No root, childkeys or take.
"""

from __future__ import annotations

import numpy as np
from loguru import logger

from subnet.devnet import yuma
from subnet.devnet.config import U16_MAX
from subnet.devnet.runtime.chain import Runtime


def is_due(block: int, netuid: int, tempo: int) -> bool:
    return tempo > 0 and (block + netuid + 1) % (tempo + 1) == 0


def _matrix(rt: Runtime, prefix: str, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        for dest, value in rt.store.get(f"{prefix}{i}") or []:
            if int(dest) < n:
                m[i, int(dest)] = float(value)
    return m


def pending_emission(rt: Runtime, rec: dict) -> int:
    """Alpha accrued since the last epoch (rao), zero before start_call."""
    first = rec.get("first_emission_block")
    if first is None or rt.block < first:
        return 0
    since = max(int(rec["last_epoch_block"]) + 1, int(first))
    return max(0, rt.block - since + 1) * int(rt.genesis.alpha_per_block)


def maybe_run(rt: Runtime, netuid: int) -> None:
    rec = rt.store.get(f"net:{netuid}")
    if rec is None or not is_due(rt.block, netuid, int(rec["hp"]["Tempo"])):
        return
    run_epoch(rt, netuid)


def run_epoch(rt: Runtime, netuid: int) -> yuma.YumaOutputs | None:
    rec = rt.store.get(f"net:{netuid}")
    hp = rec["hp"]
    n = len(rec["hotkeys"])
    pending = pending_emission(rt, rec)
    if n == 0:
        rec = rt.subnet_mut(netuid)
        rec["last_epoch_block"] = rt.block
        rec["epoch_index"] = int(rec.get("epoch_index", 0)) + 1
        return None
    hotkeys = rec["hotkeys"]
    try:
        owner_uid = hotkeys.index(rec["owner_hotkey"])
    except ValueError:
        owner_uid = None
    inputs = yuma.YumaInputs(
        weights=_matrix(rt, f"w:{netuid}:", n),
        stake=np.array([rt.stake_of(netuid, hk) for hk in hotkeys], dtype=np.float64),
        last_update=np.array(rec["last_update"], dtype=np.int64),
        block_at_registration=np.array(rec["block_at_registration"], dtype=np.int64),
        validator_permit=np.array(rec["validator_permit"], dtype=bool),
        bonds=_matrix(rt, f"b:{netuid}:", n),
        current_block=int(rt.block),
        activity_cutoff=int(hp["ActivityCutoff"]),
        kappa=int(hp["Kappa"]) / U16_MAX,
        bonds_moving_average=float(hp["BondsMovingAverage"]),
        bonds_penalty=int(hp["BondsPenalty"]) / U16_MAX,
        max_allowed_validators=int(hp["MaxAllowedValidators"]),
        last_epoch_block=int(rec["last_epoch_block"]),
        owner_uid=owner_uid,
        stake_threshold=float(hp["StakeThreshold"]),
    )
    out = yuma.yuma_epoch(inputs)
    owner_cut, rest = yuma.split_emission(int(pending), int(hp["SubnetOwnerCut"]) / U16_MAX)
    emission = yuma.epoch_emission(out, int(rest))

    # Credit alpha: miners' incentive + validators' dividends, then the owner cut.
    for uid, amount in enumerate(emission.tolist()):
        if amount > 0:
            hotkey = hotkeys[uid]
            rt.credit_stake(netuid, hotkey, rt.hotkey_owner(hotkey) or rec["owner"], int(amount))
    if owner_cut > 0:
        rt.credit_stake(netuid, rec["owner_hotkey"], rec["owner"], int(owner_cut))

    stored = out.as_storage()
    rec = rt.subnet_mut(netuid)
    rec["active"] = [bool(x) for x in stored["Active"]]
    rec["validator_permit"] = [bool(x) for x in stored["ValidatorPermit"]]
    rec["consensus"] = stored["Consensus"]
    rec["validator_trust"] = stored["ValidatorTrust"]
    rec["rank"] = stored["Rank"]
    rec["trust"] = stored["Consensus"]  # HEAD no longer computes Trust; mirror consensus
    rec["incentive"] = stored["Incentive"]
    rec["dividends"] = stored["Dividends"]
    rec["emission"] = [int(x) for x in emission.tolist()]
    total = float(emission.sum())
    rec["pruning_score"] = [int(round(U16_MAX * x / total)) if total else 0 for x in emission.tolist()]
    rec["last_epoch_block"] = rt.block
    rec["epoch_index"] = int(rec.get("epoch_index", 0)) + 1  # SubnetEpochIndex
    for i in range(n):
        row = [[j, int(v)] for j, v in enumerate(out.bonds[i].tolist()) if v > 0]
        if row:
            rt.store.put(f"b:{netuid}:{i}", row)
        else:
            rt.store.delete(f"b:{netuid}:{i}")
    logger.debug("devnet epoch netuid={} block={} emitted={} rao", netuid, rt.block, pending)
    return out
