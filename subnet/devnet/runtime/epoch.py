"""Per-tempo epoch: run Yuma Consensus and credit emission as alpha stake.

Schedule is subtensor 14bc6f9's stateful one (`coinbase/run_coinbase.rs::
should_run_epoch`, `get_next_epoch_start_block`): an epoch runs once
`block - LastEpochBlock >= tempo` (or when `BlocksSinceLastStep` passes
MAX_TEMPO), and running it sets `LastEpochBlock = block` and bumps
`SubnetEpochIndex` (`drain_pending`). A new subnet starts at
`LastEpochBlock = now - netuid % tempo` (`init_new_network`); setting the
tempo resets it to the current block (`apply_tempo_with_cycle_reset`). The
devnet has no owner-triggered epochs (`PendingEpochAt` stays 0) and no
per-block epoch cap (`MaxEpochsPerBlock`). Emission follows
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

MAX_TEMPO = 50_400  # lib.rs: the BlocksSinceLastStep safety net fires past this


def is_due(block: int, last_epoch_block: int, tempo: int) -> bool:
    """`should_run_epoch`: tempo blocks since the last epoch (tempo 0 never runs)."""
    if tempo <= 0:
        return False
    since = max(0, int(block) - int(last_epoch_block))
    return since > MAX_TEMPO or since >= tempo


def due(rt: Runtime, rec: dict) -> bool:
    """Whether subnet `rec`'s epoch runs in the block being built."""
    return is_due(rt.block, int(rec["last_epoch_block"]), int(rec["hp"]["Tempo"]))


def next_epoch_start_block(rec: dict) -> int | None:
    """`get_next_epoch_start_block`: `LastEpochBlock + tempo`, None when tempo is 0."""
    tempo = int(rec["hp"]["Tempo"])
    return None if tempo <= 0 else int(rec["last_epoch_block"]) + tempo


def initial_last_epoch_block(block: int, netuid: int, tempo: int) -> int:
    """`init_new_network`'s per-netuid stagger: `now - netuid % max(tempo, 1)`, floored at 0."""
    return max(0, int(block) - int(netuid) % max(int(tempo), 1))


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
    if rec is None or not due(rt, rec):
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
        stake_threshold=float(rt.global_param("StakeThreshold")),
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
