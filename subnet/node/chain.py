"""The chain as a neuron sees it: blocks, window seeds, metagraph, store commitments.

Everything goes through the bittensor SDK client built by
`subnet.chain.make_subtensor`, so the same code runs on the devnet, a local
subtensor, testnet or finney. Transient connection failures are retried with
backoff here, at the edge, so the loops above see either an answer or a
`ChainError`.

Seeds come from finalised blocks only. A window's seed is the hash of its
first block, read once that block is at or below the chain's finalised head
(`Subtensor.finalized_block`, GRANDPA on subtensor): a reorganisation of the
unfinalised tip can change a best-chain hash, and a miner and a validator
that read it on either side of the reorg would train and score different
pages. Only finalised hashes are cached. Deadlines and upload evidence keep
using the best head (`block()`): they measure time, not randomness. With
instant finality (the devnet by default) nothing waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import bittensor as bt
from loguru import logger

from subnet.chain import DEFAULT_MAX_FIELDS, commitment_call
from subnet.errors import ChainError
from subnet.protocol.windows import WindowParams, seed_from_hash, window_start
from subnet.validator.weights import U16_MAX, WeightRules

T = TypeVar("T")

# Commitment payload: "tessera1:" + store location. The prefix lets other
# subnets' data (or garbage) in the same field be ignored rather than parsed.
COMMIT_PREFIX = "tessera1:"


def retry(what: str, fn: Callable[[], T], *, attempts: int = 5, base_delay: float = 0.5) -> T:
    """Call `fn`, retrying transient failures with exponential backoff; ChainError after the last."""
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except ChainError:
            raise
        except Exception as exc:  # transport errors come in many types from the SDK
            if attempt == attempts:
                raise ChainError(f"{what} failed after {attempts} attempts: {exc}",
                                 remediation="is the chain endpoint up? check --subtensor.network") from exc
            logger.warning("{} failed (attempt {}/{}): {}; retrying in {:.1f}s", what, attempt, attempts, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Peer:
    """One registered neuron as the protocol needs it."""

    uid: int
    hotkey: str
    stake: float
    validator_permit: bool
    last_update: int
    location: str | None  # committed artifact-store location, if any
    commit_block: int | None
    registered_at: int | None = None  # BlockAtRegistration: a recycled uid has a new one


class ChainView:
    """Thin, retrying reader/writer over an SDK client for one netuid."""

    def __init__(self, subtensor: Any, netuid: int, window: WindowParams) -> None:
        self.sub = subtensor
        self.netuid = netuid
        self.window = window
        self._hash_cache: dict[int, str] = {}  # finalised blocks only
        self._finalized = -1  # highest finalised block number seen so far
        self._max_fields: int | None = None

    # -- reads ---------------------------------------------------------------
    def block(self) -> int:
        """The best (head) block: the clock for deadlines and upload evidence."""
        return int(retry("read block number", lambda: self.sub.block))

    def finalized_block(self) -> int:
        """The finalised head (never above the best head; equal to it with instant finality)."""
        self._finalized = max(self._finalized, int(retry("read finalized block", lambda: self.sub.finalized_block)))
        return self._finalized

    def block_hash(self, number: int) -> str | None:
        """Hash of block `number` once it is finalised; None before (an unfinalised hash may still change)."""
        if number in self._hash_cache:
            return self._hash_cache[number]
        if number > self._finalized and number > self.finalized_block():
            return None
        info = retry(f"read block {number}", lambda: self.sub.block_info(number))
        if info is None or not info.hash:
            return None
        self._hash_cache[number] = info.hash
        return info.hash

    def window_seed(self, w: int) -> int | None:
        """Seed of window `w` (hash of its first block), None until that block is finalised."""
        h = self.block_hash(window_start(w, self.window))
        return None if h is None else seed_from_hash(h)

    def block_time(self) -> float:
        """Seconds per block as the chain reports it (Aura slot duration; 12 on finney)."""
        return float(retry("read block time", lambda: self.sub.block_time()))

    def metagraph(self) -> Any:
        mg = retry("read metagraph", lambda: self.sub.subnets.metagraph(self.netuid))
        if mg is None:
            raise ChainError(f"subnet {self.netuid} does not exist", remediation="check --netuid")
        return mg

    def peers(self, mg: Any | None = None) -> list[Peer]:
        mg = mg if mg is not None else self.metagraph()
        out = []
        for n in mg.neurons:
            c = n.commitment
            loc = parse_commitment(c.data) if c is not None else None
            out.append(Peer(uid=n.uid, hotkey=n.hotkey, stake=_tao(n.total_stake),
                            validator_permit=bool(n.validator_permit), last_update=int(n.last_update),
                            location=loc, commit_block=(c.block if c is not None else None),
                            registered_at=_opt_int(getattr(n, "block_at_registration", None))))
        return out

    def weights_rate_limit(self) -> int:
        return int(retry("read weights rate limit", lambda: self.sub.hyperparameters.weights_rate_limit(self.netuid)))

    def min_allowed_weights(self) -> int:
        return int(retry("read MinAllowedWeights", lambda: self.sub.hyperparameters.min_allowed_weights(self.netuid)))

    def max_weight_limit(self) -> int:
        value = retry("read MaxWeightsLimit", lambda: self.sub.hyperparameters.max_weight_limit(self.netuid))
        return U16_MAX if value is None else int(value)

    def commit_reveal_enabled(self) -> bool:
        return bool(retry("read CommitRevealWeightsEnabled",
                          lambda: self.sub.subnets.commit_reveal_enabled(self.netuid)))

    def reveal_period(self) -> int:
        return int(retry("read RevealPeriodEpochs", lambda: self.sub.hyperparameters.reveal_period(self.netuid)) or 1)

    def weights_version(self) -> int:
        return int(self._storage("WeightsVersionKey", [self.netuid]) or 0)

    def weight_rules(self, hotkey: str) -> WeightRules:
        """Every hyperparameter the weights cadence obeys, plus this hotkey's uid and LastUpdate, read now."""
        block = self.block()
        uid = self._storage("Uids", [self.netuid, hotkey])
        last_update = self._storage("LastUpdate", [self.netuid]) or []
        uid = None if uid is None else int(uid)
        return WeightRules(
            netuid=self.netuid,
            n=int(self._storage("SubnetworkN", [self.netuid]) or 0),
            min_allowed=self.min_allowed_weights(),
            max_weight_limit=self.max_weight_limit(),
            rate_limit=self.weights_rate_limit(),
            commit_reveal=self.commit_reveal_enabled(),
            reveal_period=self.reveal_period(),
            tempo=int(self._storage("Tempo", [self.netuid]) or 0),
            weights_version=self.weights_version(),
            self_uid=uid,
            last_update=int(last_update[uid]) if uid is not None and uid < len(last_update) else 0,
            block=block,
        )

    def weights_row(self, uid: int) -> dict[int, float]:
        """This subnet's weights row of `uid` as the SDK reads it ({dest: fraction}; empty if none)."""
        rows = retry("read weights", lambda: self.sub.weights.weights(self.netuid))
        return {int(k): float(v) for k, v in (rows or {}).get(uid, {}).items()}

    def timelocked_commits(self) -> list[dict[str, Any]]:
        """Pending timelocked weight commits on this subnet, flattened, each with its `epoch`."""
        grouped = retry("read timelocked commits", lambda: self.sub.weights.timelocked_weight_commits(self.netuid))
        return [{**c, "epoch": int(epoch)} for epoch, commits in (grouped or {}).items() for c in commits]

    def _storage(self, item: str, params: list[Any]) -> Any:
        return retry(f"read {item}", lambda: self.sub.query(getattr(bt.storage.SubtensorModule, item), params))

    def max_commit_fields(self) -> int:
        """Commitments.MaxFields of the chain (3 on subtensor; that when the chain does not say)."""
        if self._max_fields is None:
            try:
                value = self.sub.constant(bt.constants.Commitments.MaxFields)
            except Exception as exc:  # a chain without the constant: subtensor's value
                logger.debug("Commitments.MaxFields unreadable ({}); assuming {}", exc, DEFAULT_MAX_FIELDS)
                value = None
            self._max_fields = int(value) if value else DEFAULT_MAX_FIELDS
        return self._max_fields

    # -- writes --------------------------------------------------------------
    def commit_location(self, wallet: Any, location: str) -> None:
        """Publish `location` as this hotkey's commitment (Raw fields of <= 128 bytes, up to MaxFields)."""
        call = commitment_call(self.netuid, COMMIT_PREFIX + location, max_fields=self.max_commit_fields())
        result = retry("commit store location", lambda: self.sub.submit_call(call, wallet, signer="hotkey"))
        _raise_for(result, "commit store location")
        logger.info("committed store location {} on netuid {}", location, self.netuid)

    def set_weights(self, wallet: Any, weights: dict[int, float], version_key: int) -> Any:
        intent = bt.SetWeights(netuid=self.netuid, weights=weights, version_key=version_key)
        return self.sub.execute(intent, wallet)


def parse_commitment(data: str | None) -> str | None:
    """The store location in a commitment, or None when it is not a Tessera commitment."""
    if not data or not isinstance(data, str) or not data.startswith(COMMIT_PREFIX):
        return None
    loc = data[len(COMMIT_PREFIX):].strip()
    return loc or None


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _raise_for(result: Any, what: str) -> None:
    ok = getattr(result, "success", None)
    if ok is False:
        raise ChainError(f"{what} refused by the chain: {getattr(result, 'error', None) or result}")


def lead_validator(peers: list[Peer], exclude: set[str] | frozenset[str] = frozenset()) -> Peer | None:
    """The lead: highest stake among permitted validators with a committed store, skipping `exclude`.

    Ties break by lower uid so every node picks the same lead.
    """
    cands = [p for p in peers if p.validator_permit and p.location and p.hotkey not in exclude and p.stake > 0]
    if not cands:
        return None
    return sorted(cands, key=lambda p: (-p.stake, p.uid))[0]


def _tao(value: Any) -> float:
    """A Balance (TAO or subnet alpha) or a number, as a float amount of whole units."""
    rao = getattr(value, "rao", None)
    return float(rao) / 1e9 if rao is not None else float(value)
