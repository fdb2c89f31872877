"""The devnet node: transaction pool, block production and persistence.

One asyncio task owns everything (a single writer, like a datasette write
thread): extrinsics are admitted to the pool after signature/nonce/era checks,
and every block applies `on_initialize` (epochs) then the pooled extrinsics in
order, hashes the result and commits it to SQLite in one transaction before
any submitter is told about it. `block_ms = 0` is instant-seal mode: a block is
sealed as soon as something is submitted (and by `devnet_produceBlocks`).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from loguru import logger

from subnet.devnet.codec import canonical, hash_hex
from subnet.devnet.config import DevnetConfig
from subnet.devnet.extrinsic import Extrinsic
from subnet.devnet.reads import Reader
from subnet.devnet.runtime import CALLS, Runtime
from subnet.devnet.state import BlockRecord, Store

MAX_EXTRINSICS_PER_BLOCK = 2000
MAX_POOL = 20_000


@dataclass(frozen=True)
class PoolRejection(Exception):
    """An extrinsic refused before inclusion (never reaches a block)."""

    name: str  # Substrate InvalidTransaction variant: BadProof, Stale, Future, ...
    message: str

    def __str__(self) -> str:
        return self.message


class Node:
    """State, pool and block production for one devnet."""

    def __init__(self, cfg: DevnetConfig) -> None:
        self.cfg = cfg
        self.store = Store(cfg.db_path, state_pruning=cfg.state_pruning)
        self.finality_lag = cfg.effective_finality_lag
        self.rt = Runtime(self.store, cfg.genesis)
        self.reader = Reader(self.rt)
        self._pool: list[tuple[Extrinsic, asyncio.Future | None]] = []
        self._queued: dict[str, int] = {}
        self._receipts: dict[str, dict] = {}  # recent extrinsic hash -> receipt
        self._head_listeners: list[asyncio.Queue] = []
        self._wake = asyncio.Event()
        head = self.store.head()
        if head is None:
            self._genesis()
            head = self.store.head()
        self.head = head
        self.rt.block = head.number
        self.rt.timestamp_ms = head.timestamp
        self.genesis_hash = self.store.block_hash(0)
        logger.info("devnet state {} at block {}", cfg.db_path, head.number)

    # -- genesis ------------------------------------------------------------------

    def _genesis(self) -> None:
        self.rt.block = 0
        self.rt.init_genesis()
        salt = os.urandom(16).hex()  # a fresh devnet never shares a genesis hash
        ts = int(time.time() * 1000)
        genesis = BlockRecord(
            number=0,
            hash=hash_hex(canonical({"genesis": salt, "ts": ts})),
            parent="0x" + "00" * 32,
            timestamp=ts,
            extrinsics=[],
            events=[],
        )
        self.store.commit_block(genesis)

    # -- pool --------------------------------------------------------------------

    def next_index(self, address: str) -> int:
        return int(self.rt.account(address).get("nonce", 0)) + self._queued.get(address, 0)

    def _check(self, ext: Extrinsic, expected_nonce: int) -> None:
        if ext.genesis_hash != self.genesis_hash:
            raise PoolRejection("BadProof", "Invalid Transaction: Transaction has a bad signature (wrong genesis hash)")
        if not ext.verify_signature():
            raise PoolRejection("BadProof", "Invalid Transaction: Transaction has a bad signature")
        if (ext.module, ext.function) not in CALLS:
            raise PoolRejection("CallFiltered",
                                f"Invalid Transaction: {ext.module}.{ext.function} is not supported by the devnet")
        account_nonce = int(self.rt.account(ext.signer).get("nonce", 0))
        if ext.nonce < account_nonce:
            raise PoolRejection("Stale", f"Invalid Transaction: Transaction is outdated "
                                         f"(nonce {ext.nonce} < account nonce {account_nonce}; replayed?)")
        if ext.nonce < expected_nonce:
            raise PoolRejection("Stale",
                                f"Invalid Transaction: Transaction is outdated (nonce {ext.nonce} already in the pool)")
        if ext.nonce > expected_nonce:
            raise PoolRejection("Future", f"Invalid Transaction: Transaction will be valid in the future "
                                          f"(nonce {ext.nonce}, expected {expected_nonce})")
        head = self.head.number
        if ext.era_period > 0 and not (ext.era_birth <= head + 1 and head + 1 < ext.era_birth + ext.era_period):
            raise PoolRejection("Stale", f"Invalid Transaction: Transaction is outdated "
                                         f"(era {ext.era_birth}+{ext.era_period} at block {head + 1})")

    def submit(self, ext: Extrinsic, inner: Extrinsic | None = None) -> asyncio.Future:
        """Admit an extrinsic (and a shielded inner one) to the pool; resolves on inclusion."""
        if len(self._pool) >= MAX_POOL:
            raise PoolRejection("ExhaustsResources", "Invalid Transaction: pool is full")
        expected = self.next_index(ext.signer)
        self._check(ext, expected)
        if inner is not None:
            if ext.module != "MevShield" or inner.signer != ext.signer:
                raise PoolRejection("BadProof",
                                    "Invalid Transaction: shielded inner extrinsic must come from the carrier's signer")
            self._check(inner, expected + 1)
        fut = asyncio.get_running_loop().create_future()
        self._pool.append((ext, fut))
        self._queued[ext.signer] = self._queued.get(ext.signer, 0) + 1
        if inner is not None:
            self._pool.append((inner, None))
            self._queued[ext.signer] += 1
        if self.cfg.block_ms <= 0:
            self._wake.set()
        return fut

    # -- blocks -----------------------------------------------------------------

    def produce_block(self) -> BlockRecord:
        rt = self.rt
        parent = self.head
        rt.block = parent.number + 1
        rt.timestamp_ms = max(int(time.time() * 1000), parent.timestamp + 1)
        rt.events = []
        rt.on_initialize()
        batch = self._pool[:MAX_EXTRINSICS_PER_BLOCK]
        del self._pool[: len(batch)]
        receipts = []
        for idx, (ext, _fut) in enumerate(batch):
            self._queued[ext.signer] -= 1
            if not self._queued[ext.signer]:
                del self._queued[ext.signer]
            if int(rt.account(ext.signer).get("nonce", 0)) != ext.nonce:
                # An earlier extrinsic of the same signer vanished; never apply out of order.
                receipts.append({"hash": ext.hash, "index": idx, "success": False, "dropped": True,
                                 "error": {"name": "Stale", "docs": ["nonce out of order"]}, "events": []})
                continue
            receipts.append(rt.apply(ext, idx))
        ext_root = hash_hex(canonical([r["hash"] for r in receipts]))
        state_digest = hash_hex(canonical(rt.events))
        block_hash = hash_hex(canonical([parent.hash, rt.block, ext_root, state_digest]))
        block = BlockRecord(
            number=rt.block,
            hash=block_hash,
            parent=parent.hash,
            timestamp=rt.timestamp_ms,
            extrinsics=receipts,
            events=rt.events,
        )
        self.store.commit_block(block)
        self.head = block
        if len(self._receipts) > 50_000:
            self._receipts.clear()
        for (ext, fut), receipt in zip(batch, receipts):
            full = {**receipt, "block_hash": block_hash, "block_number": block.number}
            self._receipts[ext.hash] = full
            if fut is not None and not fut.done():
                fut.set_result(full)
        note = {**self.header(block), "finalized": self.finalized_header()}
        for queue in list(self._head_listeners):
            if not queue.full():  # a stalled subscriber misses heads, never blocks the chain
                queue.put_nowait(note)
        return block

    def header(self, block: BlockRecord | None = None) -> dict:
        block = block or self.head
        return {
            "number": block.number,
            "hash": block.hash,
            "parentHash": block.parent,
            "timestamp": block.timestamp,
        }

    @property
    def finalized_number(self) -> int:
        """The finalized head: `finality_lag` blocks behind the best head (never below genesis)."""
        return max(0, self.head.number - self.finality_lag)

    def finalized_header(self) -> dict:
        number = self.finalized_number
        if number == self.head.number:
            return self.header()
        record = self.store.block(number)
        return self.header(record) if record is not None else self.header()

    def reader_at(self, block_hash: str | None) -> Reader:
        """A reader over the state at `block_hash` (the head when None or the head's hash).

        Unknown hashes fail like Substrate's `UnknownBlock`; blocks past the
        pruning window like a pruned node's "State already discarded".
        """
        if block_hash is None or block_hash == self.head.hash:
            return self.reader
        number = self.store.block_number(block_hash)
        if number is None:
            raise LookupError(f"UnknownBlock: Header was not found in the database: {block_hash}")
        if number == self.head.number:
            return self.reader
        view = self.store.at(number, self.head.number)
        record = self.store.block(number)
        rt = Runtime(view, self.cfg.genesis)  # type: ignore[arg-type]  # StoreAt: the read half of Store
        rt.block = number
        rt.timestamp_ms = record.timestamp if record else 0
        return Reader(rt)

    def find_extrinsic(self, ext_hash: str, block_hash: str | None) -> dict | None:
        receipt = self._receipts.get(ext_hash)
        if receipt is not None and (block_hash is None or receipt["block_hash"] == block_hash):
            return receipt
        number = self.store.block_number(block_hash) if block_hash else None
        record = self.store.block(number) if number is not None else None
        for r in (record.extrinsics if record else []):
            if r.get("hash") == ext_hash:
                return {**r, "block_hash": record.hash, "block_number": record.number}
        return None

    def listen_heads(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._head_listeners.append(queue)
        return queue

    def unlisten_heads(self, queue: asyncio.Queue) -> None:
        if queue in self._head_listeners:
            self._head_listeners.remove(queue)

    async def run(self) -> None:
        """Produce blocks forever: on a timer, or on demand in instant-seal mode."""
        interval = self.cfg.block_ms / 1000.0
        next_at = time.monotonic()
        while True:
            if interval > 0:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    next_at = time.monotonic()  # fell behind: do not burst to catch up
                    await asyncio.sleep(0)
            else:
                await self._wake.wait()
                self._wake.clear()
                await asyncio.sleep(0)  # let concurrent submitters join the block
            self.produce_block()
            while interval <= 0 and self._pool:
                self.produce_block()

    def close(self) -> None:
        self.store.close()
