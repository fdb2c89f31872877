"""Timelocked commit-reveal weights (CRv3/v4) with subtensor's checks, in its order.

Ported from subtensor 14bc6f9: `subnets/weights.rs::internal_commit_timelocked_weights`
(the commit), `coinbase/reveal_commits.rs::reveal_crv3_commits_for_subnet`
(the reveal, run in `block_step` before the epoch), `subnets/weights.rs::
current_epoch_with_lookahead` / `is_commit_expired` (epoch keys) and
`macros/dispatches.rs` (`commit_timelocked_(mechanism_)weights`,
`commit_crv3_mechanism_weights`).

What the devnet cannot do is decrypt: the commit is the SDK's real drand
quicknet timelock ciphertext, and opening it needs the round's BLS signature,
which only the drand network produces. The most faithful local stand-in is
an escrow: `DevnetSubstrate` records the plaintext the SDK handed to
`bittensor_core.get_encrypted_commit_v2` (hotkey, uids, u16 values, version
key) and sends it, signed, beside the ciphertext (`devnet_reveal`; over the
Substrate face the hook posts it first and the face attaches it the same way,
substrate_rpc/escrow.py). The chain
stores the ciphertext exactly as subtensor does and keeps the escrow aside;
at the reveal it applies the escrow only when the chain would have decrypted:
in the commit's reveal epoch, once the drand round exists. Round existence is
emulated from the block timestamp (round r is published at quicknet genesis
+ 3 s * (r - 1), which is what pallet_drand's pulses follow), so a commit
whose round comes too late for its reveal epoch is dropped, silently, as on
chain. A commit without escrow (not sent through the SDK) never reveals, as a
ciphertext the chain cannot decrypt.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

from bittensor.timelock import QUICKNET_GENESIS, QUICKNET_PERIOD
from loguru import logger

from subnet.devnet.runtime.base import DispatchError, as_int, call
from subnet.devnet.runtime.chain import Runtime
from subnet.devnet.runtime.epoch import due
from subnet.devnet.runtime.weights import check_weights_min_stake, set_weights

COMMIT_REVEAL_VERSION = 4  # subtensor's DefaultCommitRevealWeightsVersion
MAX_COMMIT_BYTES = 5000  # MAX_CRV3_COMMIT_SIZE_BYTES
MAX_UNREVEALED = 10


def commit_key(netuid: int, epoch: int) -> str:
    return f"tlc:{netuid}:{epoch}"


def escrow_key(netuid: int, commit: bytes) -> str:
    return f"tle:{netuid}:{blake2b(commit, digest_size=32).hexdigest()}"


def current_epoch(rt: Runtime, rec: dict) -> int:
    """`current_epoch_with_lookahead`: the epoch counter, plus one when an epoch is due this block and not yet run."""
    base = int(rec.get("epoch_index", 0))
    return base + 1 if due(rt, rec) else base


def round_published(rt: Runtime, reveal_round: int) -> bool:
    """Whether drand round `reveal_round` exists by this block's timestamp (pallet_drand's Pulses)."""
    return QUICKNET_GENESIS + (int(reveal_round) - 1) * QUICKNET_PERIOD <= rt.timestamp_ms // 1000


def commit_timelocked(rt: Runtime, who: str, netuid: Any, mecid: Any, commit: Any, reveal_round: Any,
                      commit_reveal_version: Any, devnet_reveal: Any = None) -> None:
    netuid = as_int(netuid, "netuid")
    rec = rt.store.get(f"net:{netuid}")
    # ensure_mechanism_exists
    if rec is None or as_int(mecid, "mecid") != 0:
        raise DispatchError("MechanismDoesNotExist")
    # The weights transaction extension (guards/check_weights.rs::check_min_stake) refuses low-stake
    # committers before dispatch; the devnet reports it as the dispatch error it maps from.
    if not check_weights_min_stake(rt, rec, who):
        raise DispatchError("NotEnoughStakeToSetWeights")
    if not isinstance(commit, (bytes, bytearray)) or len(commit) > MAX_COMMIT_BYTES:
        raise DispatchError("InvalidValue", f"commit must be at most {MAX_COMMIT_BYTES} bytes")
    hp = rec["hp"]
    # 2. commit-reveal enabled
    if not hp["CommitRevealWeightsEnabled"]:
        raise DispatchError("CommitRevealDisabled")
    # 3. client version
    if as_int(commit_reveal_version, "commit_reveal_version") != COMMIT_REVEAL_VERSION:
        raise DispatchError("IncorrectCommitRevealVersion",
                            f"got {commit_reveal_version}, the runtime wants {COMMIT_REVEAL_VERSION}")
    # 4. registered
    try:
        uid = rec["hotkeys"].index(who)
    except ValueError:
        raise DispatchError("HotKeyNotRegisteredInSubNet") from None
    # 5. rate limit (check_rate_limit, against LastUpdate)
    last = int(rec["last_update"][uid])
    limit = int(hp["WeightsSetRateLimit"])
    if not (last == 0 or rt.block - last >= limit):
        raise DispatchError("CommittingWeightsTooFast", f"last update at block {last}, rate limit {limit} blocks")
    # 6-7. this epoch's queue, at most 10 unrevealed per hotkey
    epoch = current_epoch(rt, rec)
    key = commit_key(netuid, epoch)
    entries = list(rt.store.get(key) or [])
    if sum(1 for e in entries if e[0] == who) >= MAX_UNREVEALED:
        raise DispatchError("TooManyUnrevealedCommits")
    # 8. append (who, commit_block, commit, reveal_round)
    data = bytes(commit)
    entries.append([who, rt.block, "0x" + data.hex(), as_int(reveal_round, "reveal_round")])
    rt.store.put(key, entries)
    escrow = _escrow(devnet_reveal)
    if escrow is not None:
        rt.store.put(escrow_key(netuid, data), escrow)
    # 9. event; 10. LastUpdate = commit block
    rt.deposit_event("SubtensorModule", "TimelockedWeightsCommitted", {
        "who": who, "netuid": netuid, "commit_hash": "0x" + blake2b(data, digest_size=32).hexdigest(),
        "reveal_round": as_int(reveal_round, "reveal_round")})
    rt.subnet_mut(netuid)["last_update"][uid] = rt.block


def _escrow(raw: Any) -> dict | None:
    if not isinstance(raw, dict):
        return None
    try:
        return {"hotkey": str(raw["hotkey"]), "uids": [int(u) for u in raw["uids"]],
                "values": [int(v) for v in raw["values"]], "version_key": int(raw["version_key"])}
    except (KeyError, TypeError, ValueError):
        return None


def reveal_commits(rt: Runtime, netuid: int) -> None:
    """`reveal_crv3_commits_for_subnet`: reveal the reveal epoch's commits whose drand round exists."""
    rec = rt.store.get(f"net:{netuid}")
    if rec is None:
        return
    period = int(rec["hp"]["RevealPeriodEpochs"])
    cur = current_epoch(rt, rec)
    reveal_epoch = max(0, cur - period)
    prefix = f"tlc:{netuid}:"
    for key in list(rt.store.keys(prefix)):
        if int(key[len(prefix):]) < reveal_epoch:  # expired: never revealed, dropped silently
            for who, block, commit_hex, rnd in rt.store.get(key) or []:
                logger.debug("devnet: commit by {} at block {} expired unrevealed (round {})", who, block, rnd)
                rt.store.delete(escrow_key(netuid, bytes.fromhex(commit_hex[2:])))
            rt.store.delete(key)
    if cur < period:
        return
    key = commit_key(netuid, reveal_epoch)
    entries = list(rt.store.get(key) or [])
    if not entries:
        return
    rt.store.delete(key)
    unrevealed = []
    for entry in entries:
        who, commit_block, commit_hex, rnd = entry
        if not round_published(rt, rnd):
            unrevealed.append(entry)  # retried every block of the reveal epoch
            continue
        ekey = escrow_key(netuid, bytes.fromhex(commit_hex[2:]))
        payload = rt.store.get(ekey)
        rt.store.delete(ekey)
        if payload is None or payload["hotkey"] != who:
            logger.debug("devnet: commit by {} at block {} cannot be decrypted; dropped", who, commit_block)
            continue
        try:
            set_weights(rt, who, netuid, payload["uids"], payload["values"], payload["version_key"])
        except DispatchError as exc:
            logger.debug("devnet: reveal of {}'s commit at block {} failed: {}", who, commit_block, exc.name)
            continue
        rt.deposit_event("SubtensorModule", "TimelockedWeightsRevealed", {"netuid": netuid, "who": who})
    if unrevealed:
        rt.store.put(key, unrevealed)


@call("SubtensorModule", "commit_timelocked_mechanism_weights")
def commit_timelocked_mechanism_weights(rt: Runtime, origin: str, netuid: Any, mecid: Any, commit: Any,
                                        reveal_round: Any, commit_reveal_version: Any,
                                        devnet_reveal: Any = None) -> None:
    commit_timelocked(rt, origin, netuid, mecid, commit, reveal_round, commit_reveal_version, devnet_reveal)


@call("SubtensorModule", "commit_timelocked_weights")
def commit_timelocked_weights(rt: Runtime, origin: str, netuid: Any, commit: Any, reveal_round: Any,
                              commit_reveal_version: Any, devnet_reveal: Any = None) -> None:
    commit_timelocked(rt, origin, netuid, 0, commit, reveal_round, commit_reveal_version, devnet_reveal)


@call("SubtensorModule", "commit_crv3_mechanism_weights")
def commit_crv3_mechanism_weights(rt: Runtime, origin: str, netuid: Any, mecid: Any, commit: Any,
                                  reveal_round: Any, devnet_reveal: Any = None) -> None:
    commit_timelocked(rt, origin, netuid, mecid, commit, reveal_round, COMMIT_REVEAL_VERSION, devnet_reveal)
