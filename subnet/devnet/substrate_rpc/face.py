"""Substrate JSON-RPC over WebSocket: the face the SDK's `RpcSubstrate` and `btcli` speak.

Serves the methods the pinned SDK's transport calls (`bittensor/_transport`):
chain_* headers and hashes, state_getRuntimeVersion, the V15 metadata
(`state_call Metadata_metadata_at_version`, `state_getMetadata`), storage by
raw key (`state_getStorage[At]`, `state_queryStorageAt`, `state_getKeysPaged`),
`system_accountNextIndex`, signed extrinsics (`author_submitExtrinsic`,
`author_submitAndWatchExtrinsic`, see `extrinsics`) and head subscriptions;
plus one devnet method, `devnet_commitEscrow` (see `escrow`), so timelocked
weight commits sent over this face reveal.
Answers come from the same `Node` (pool, state, rules, blocks) as the JSON
face. Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from bittensor._transport.codec import RuntimeCodec
from loguru import logger
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from subnet.devnet.config import MANUAL_MODE_SLOT_MS, SPEC_VERSION
from subnet.devnet.node import Node, PoolRejection
from subnet.devnet.reads import Reader
from subnet.devnet.server import STATE_DISCARDED, UNKNOWN_BLOCK, RpcError
from subnet.devnet.state import BlockRecord, StateDiscarded
from subnet.devnet.substrate_rpc import extrinsics, mev_shield, scale
from subnet.devnet.substrate_rpc.escrow import EscrowBook, EscrowRefused
from subnet.devnet.substrate_rpc.extrinsics import ScaleExtrinsic
from subnet.devnet.substrate_rpc.metadata import (
    METAGRAPH_DEFAULTS,
    METAGRAPH_FIELDS,
    METAGRAPH_SOURCES,
    build,
)
from subnet.devnet.substrate_rpc.storage import StorageKeyError, StorageMap

TRANSACTION_VERSION = 1
SPEC_NAME = "node-subtensor"
CACHED_BLOCKS = 64
MAX_KEYS_PAGE = 1000  # a real node caps state_getKeysPaged at 1000 too
ZERO_HASH = "0x" + "00" * 32
SUBSCRIPTIONS = {  # subscribe method -> (notification method, unsubscribe method, finalized?)
    "chain_subscribeNewHeads": ("chain_newHead", "chain_unsubscribeNewHeads", False),
    "chain_subscribeAllHeads": ("chain_allHead", "chain_unsubscribeAllHeads", False),
    "chain_subscribeFinalizedHeads": ("chain_finalizedHead", "chain_unsubscribeFinalizedHeads", True),
    "chain_subscribeFinalisedHeads": ("chain_finalizedHead", "chain_unsubscribeFinalisedHeads", True),
}
# Runtime APIs of features the devnet does not model (root network, beta baskets): their empty answers.
UNMODELLED_RESULTS: dict[tuple[str, str], Any] = {
    ("BetaBasketRuntimeApi", "get_root_basket_positions"): [],
    ("BetaBasketRuntimeApi", "get_root_basket_owed"): 0,
}
WATCH, UNWATCH = "author_submitAndWatchExtrinsic", "author_unwatchExtrinsic"
UNSUBSCRIBE = {unsub for _, unsub, _ in SUBSCRIPTIONS.values()}


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _remember(cache: dict, key: str, value: Any) -> None:
    """Insert into a small FIFO cache of per-block values (`CACHED_BLOCKS` entries)."""
    cache[key] = value
    if len(cache) > CACHED_BLOCKS:
        cache.pop(next(iter(cache)))


def _unhex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise RpcError(-32602, f"{what} must be a 0x-hex string")
    try:
        return bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise RpcError(-32602, f"{what} is not valid hex") from None


class SubstrateFace:
    """Routes Substrate JSON-RPC requests to a `Node`."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._loaded = False
        self._sub_ids = itertools.count(1)
        self.escrows = EscrowBook()
        self.shield = mev_shield.ShieldKeys(node.cfg.dir)  # the author's ML-KEM-768 keys (MevShield)
        # Committed blocks never change: their records and encoded System.Events are kept by hash, since every
        # watched submission reads its block's body and events once included (bench/devnet.py).
        self._records: dict[str, BlockRecord] = {}
        self._events: dict[str, str] = {}

    def _load(self) -> None:
        """Build metadata, codec and key index on first use (~0.7 s), not at every devnet start."""
        if self._loaded:
            return
        built = build(self.node.cfg.block_ms or MANUAL_MODE_SLOT_MS)  # as the JSON face's Aura.SlotDuration
        self.metadata = built.data
        self._api_inputs = built.api_inputs
        self.codec = RuntimeCodec(self.metadata, spec_version=SPEC_VERSION,
                                  transaction_version=TRANSACTION_VERSION, spec_name=SPEC_NAME)
        self.storage = StorageMap(self.codec, self.shield)
        events = self.codec.storage_entry("System", "Events")
        self._events_key, self._events_type = self.codec.storage_key(events, []), events.value_type
        self._loaded = True

    # -- helpers --------------------------------------------------------------

    def _reader(self, at: Any) -> Reader:
        try:
            return self.node.reader_at(at)
        except StateDiscarded as exc:
            raise RpcError(STATE_DISCARDED, str(exc), str(exc)) from None
        except LookupError as exc:
            raise RpcError(UNKNOWN_BLOCK, str(exc), str(exc)) from None

    def _record(self, block_hash: Any) -> BlockRecord | None:
        node = self.node
        if block_hash is None or block_hash == node.head.hash:
            return node.head
        record = self._records.get(block_hash)
        if record is None:
            number = node.store.block_number(block_hash)
            record = node.store.block(number) if number is not None else None
            if record is not None:
                _remember(self._records, block_hash, record)
        return record

    def _header(self, record: BlockRecord) -> dict:
        parent = record.parent if record.number > 0 else ZERO_HASH
        return {"parentHash": parent, "number": hex(record.number), "stateRoot": record.hash,
                "extrinsicsRoot": ZERO_HASH, "digest": {"logs": []}}

    def runtime_version(self) -> dict:
        return {"specName": SPEC_NAME, "implName": SPEC_NAME, "authoringVersion": 1,
                "specVersion": SPEC_VERSION, "implVersion": 1, "apis": [],
                "transactionVersion": TRANSACTION_VERSION, "stateVersion": 1}

    # -- methods --------------------------------------------------------------

    async def call(self, method: str, params: list) -> Any:
        self._load()
        handler = getattr(self, "rpc_" + method, None)
        if handler is None:
            raise RpcError(-32601, f"Method not found: {method}")
        return handler(*params)

    def rpc_rpc_methods(self) -> dict:
        names = [n[4:] for n in dir(self) if n.startswith("rpc_")]
        extra = list(SUBSCRIPTIONS) + sorted(UNSUBSCRIBE) + [WATCH, UNWATCH]
        return {"version": 1, "methods": sorted(names + extra)}

    def rpc_system_chain(self) -> str:
        return "Tessera Devnet"

    def rpc_system_name(self) -> str:
        return "tessera-devnet"

    def rpc_system_version(self) -> str:
        return f"spec-{SPEC_VERSION}"

    def rpc_system_properties(self) -> dict:
        return {"ss58Format": 42, "tokenDecimals": 9, "tokenSymbol": "TAO"}

    def rpc_system_health(self) -> dict:
        return {"peers": 0, "isSyncing": False, "shouldHavePeers": False}

    def rpc_system_accountNextIndex(self, address: str) -> int:
        return self.node.next_index(address)

    rpc_account_nextIndex = rpc_system_accountNextIndex  # the SDK's nonce cache asks under this name

    def _admit(self, data: Any) -> tuple[ScaleExtrinsic, asyncio.Future]:
        """Decode, verify and pool one extrinsic; refusals read as a node's (1010, InvalidTransaction)."""
        node = self.node
        try:
            ext = extrinsics.decode(self.codec, _unhex(data, "extrinsic"), head=node.head.number,
                                    genesis_hash=node.genesis_hash, block_hash_at=node.store.block_hash)
        except extrinsics.BadExtrinsic as exc:
            raise RpcError(1010, f"Invalid Transaction: {exc}", "Transaction has a bad signature") from None
        ext = self.escrows.attach(ext)
        try:
            shielded = mev_shield.carrier(ext)
        except mev_shield.MalformedCiphertext as exc:  # CheckShieldedTxValidity: InvalidTransaction::Custom(23)
            code = mev_shield.FAILED_SHIELDED_TX_PARSING
            raise RpcError(1010, f"Invalid Transaction: Custom error: {code} ({exc})",
                           f"Custom error: {code}") from None
        if shielded is not None:
            ext = shielded[0]
        try:
            fut = node.submit(ext)
        except PoolRejection as rej:
            raise RpcError(1010, rej.message, rej.message) from None
        self.escrows.consume(ext)
        if shielded is not None:  # as the next block's author: decrypt and pool the inner extrinsic after it
            mev_shield.admit_inner(self.shield, node, shielded[1], lambda raw: extrinsics.decode(
                self.codec, raw, head=node.head.number, genesis_hash=node.genesis_hash,
                block_hash_at=node.store.block_hash))
        fut.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        return ext, fut

    def rpc_devnet_commitEscrow(self, commit: Any, escrow: Any) -> bool:
        """Hold a timelocked commit's plaintext until its extrinsic arrives (substrate_rpc/escrow.py)."""
        try:
            self.escrows.offer(commit, escrow)
        except EscrowRefused as exc:
            raise RpcError(-32602, f"escrow refused: {exc}") from None
        return True

    def rpc_author_submitExtrinsic(self, data: Any) -> str:
        ext, _ = self._admit(data)
        return ext.hash

    def rpc_chain_getBlockHash(self, number: Any = None) -> str | None:
        if number is None:
            return self.node.head.hash
        if isinstance(number, str):
            number = int(number, 16)
        return self.node.store.block_hash(int(number))

    def rpc_chain_getHead(self) -> str:
        return self.node.head.hash

    def rpc_chain_getFinalizedHead(self) -> str:
        return self.node.finalized_header()["hash"]

    rpc_chain_getFinalisedHead = rpc_chain_getFinalizedHead

    def rpc_chain_getHeader(self, block_hash: Any = None) -> dict | None:
        record = self._record(block_hash)
        return None if record is None else self._header(record)

    def rpc_chain_getBlock(self, block_hash: Any = None) -> dict | None:
        record = self._record(block_hash)
        if record is None:
            return None
        # SCALE extrinsics only: those submitted through the JSON face have no SCALE form.
        return {"block": {"header": self._header(record), "extrinsics": extrinsics.block_body(record)},
                "justifications": None}

    def rpc_state_getRuntimeVersion(self, at: Any = None) -> dict:
        if at is not None and self._record(at) is None:
            raise RpcError(UNKNOWN_BLOCK, f"UnknownBlock: {at}", f"UnknownBlock: {at}")
        return self.runtime_version()

    def rpc_state_getMetadata(self, at: Any = None) -> str:
        return _hex(self.metadata)

    def rpc_state_call(self, name: str, data: str = "0x", at: Any = None) -> str:
        args = _unhex(data, "call data")
        if name == "Metadata_metadata_at_version":
            version = int.from_bytes(args[:4], "little") if len(args) >= 4 else 0
            if version != 15:
                return "0x00"
            return _hex(b"\x01" + scale.blob(self.metadata))
        if name == "Metadata_metadata_versions":
            return _hex(scale.vec([15], scale.u32))
        if name == "Metadata_metadata":
            return _hex(scale.blob(self.metadata))
        api, _, method = name.partition("_")
        definition = self.codec.runtime_api_map.get(api, {}).get(method)
        if definition is None:
            raise RpcError(-32000, f"Client error: Execution failed: Other: Exported method {name} is not found",
                           f"Exported method {name} is not found")
        return _hex(self._runtime_api(api, method, definition, args, at))

    def _runtime_api(self, api: str, method: str, definition: dict, args: bytes, at: Any) -> bytes:
        """Decode the inputs, answer from the same `Reader` as the JSON face, encode the output."""
        try:
            decoded = self.codec.decode(f"scale_info::{self._api_inputs[(api, method)]}", args)
        except Exception as exc:  # the codec raises its own error types for malformed input
            raise RpcError(-32602, f"{api}_{method}: cannot decode the call's arguments: {exc}") from None
        params = list(decoded) if isinstance(decoded, (list, tuple)) else [decoded]
        value = self._reader(at).runtime_call(api, method, params)
        if value is None and (api, method) in UNMODELLED_RESULTS:
            value = UNMODELLED_RESULTS[(api, method)]
        if api == "SubnetInfoRuntimeApi" and method == "get_metagraph" and value is not None:
            value = {name: value.get(METAGRAPH_SOURCES.get(name, name), METAGRAPH_DEFAULTS.get(name))
                     for name, _ in METAGRAPH_FIELDS}
        return self.codec.encode(definition["output"], value)

    def rpc_state_getStorage(self, key: str, at: Any = None) -> str | None:
        raw = _unhex(key, "storage key")
        if raw == self._events_key and self._record(at) is not None:  # no state view needed
            return self._value(self.node.reader, raw, at)
        return self._value(self._reader(at), raw, at)

    rpc_state_getStorageAt = rpc_state_getStorage

    def _value(self, reader: Reader, key: bytes, at: Any = None) -> str | None:
        if key == self._events_key:
            record = self._record(at)
            if record is None:
                return None
            encoded = self._events.get(record.hash)
            if encoded is None:
                encoded = _hex(self.codec.encode(self._events_type, extrinsics.block_events(record)))
                _remember(self._events, record.hash, encoded)
            return encoded
        try:
            value = self.storage.value(reader, key)
        except StorageKeyError:
            return None
        return None if value is None else _hex(value)

    def rpc_state_queryStorageAt(self, keys: list, at: Any = None) -> list:
        reader = self._reader(at)
        record = self._record(at)
        block = record.hash if record is not None else self.node.head.hash
        changes = [[k, self._value(reader, _unhex(k, "storage key"), at)] for k in keys]
        return [{"block": block, "changes": changes}]

    def rpc_state_getKeysPaged(self, prefix: str, count: int, start_key: Any = None, at: Any = None) -> list:
        reader = self._reader(at)
        try:
            keys = self.storage.keys(reader, _unhex(prefix, "prefix"))
        except StorageKeyError:
            return []
        start = _unhex(start_key, "start key") if start_key else b""
        page = [k for k in keys if k > start][: min(int(count), MAX_KEYS_PAGE)]
        return [_hex(k) for k in page]

    def rpc_state_getKeys(self, prefix: str, at: Any = None) -> list:
        return self.rpc_state_getKeysPaged(prefix, MAX_KEYS_PAGE, None, at)

    # -- transport --------------------------------------------------------------

    async def handle(self, ws: ServerConnection) -> None:
        subs: dict[str, tuple[asyncio.Queue, asyncio.Task]] = {}
        try:
            async for raw in ws:
                await self._one(ws, raw, subs)
        except ConnectionClosed:
            pass
        finally:
            for queue, pump in subs.values():
                self.node.unlisten_heads(queue)
                pump.cancel()

    async def _one(self, ws: ServerConnection, raw: str | bytes, subs: dict) -> None:
        req_id = None
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise RpcError(-32600, "Invalid request")
            req_id = req.get("id")
            method = str(req.get("method"))
            params = req.get("params") or []
            if not isinstance(params, list):
                raise RpcError(-32602, "params must be a list")
            if method == WATCH:
                self._load()
                result: Any = self._watch(ws, params[0] if params else None, subs)
            elif method in SUBSCRIPTIONS:
                result = self._subscribe(ws, method, subs)
            elif method in UNSUBSCRIBE or method == UNWATCH:
                entry = subs.pop(str(params[0]) if params else "", None)
                if entry:
                    self.node.unlisten_heads(entry[0])
                    entry[1].cancel()
                result = entry is not None
            else:
                result = await self.call(method, params)
            reply = {"jsonrpc": "2.0", "id": req_id, "result": result}
        except RpcError as exc:
            error: dict = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
            reply = {"jsonrpc": "2.0", "id": req_id, "error": error}
        except (TypeError, ValueError) as exc:
            reply = {"jsonrpc": "2.0", "id": req_id, "error": {"code": -32602, "message": f"Invalid params: {exc}"}}
        except Exception as exc:  # keep serving; report the failure to this caller
            logger.exception("substrate rpc failure")
            reply = {"jsonrpc": "2.0", "id": req_id,
                     "error": {"code": -32603, "message": f"{type(exc).__name__}: {exc}"}}
        try:
            await ws.send(json.dumps(reply, separators=(",", ":")))
        except ConnectionClosed:
            pass

    def _watch(self, ws: ServerConnection, data: Any, subs: dict) -> str:
        """author_submitAndWatchExtrinsic: ready, then inBlock, then finalized (after the finality lag)."""
        ext, fut = self._admit(data)
        sub_id = f"{next(self._sub_ids):x}"
        queue = self.node.listen_heads()

        async def send(status: Any) -> None:
            msg = {"jsonrpc": "2.0", "method": "author_extrinsicUpdate",
                   "params": {"subscription": sub_id, "result": status}}
            await ws.send(json.dumps(msg, separators=(",", ":")))

        async def pump() -> None:
            try:
                await asyncio.sleep(0)  # the subscription id reaches the client first
                await send("ready")
                receipt = await fut
                if receipt.get("dropped"):
                    await send("dropped")
                    return
                await send({"inBlock": receipt["block_hash"]})
                while self.node.finalized_number < receipt["block_number"]:
                    await queue.get()
                await send({"finalized": receipt["block_hash"]})
            except ConnectionClosed:
                return
            finally:
                self.node.unlisten_heads(queue)

        subs[sub_id] = (queue, asyncio.create_task(pump()))
        return sub_id

    def _subscribe(self, ws: ServerConnection, method: str, subs: dict) -> str:
        notify, _, finalized = SUBSCRIPTIONS[method]
        sub_id = f"{next(self._sub_ids):x}"  # never reused, so an unsubscribe cannot hit a newer subscription
        queue = self.node.listen_heads()

        async def pump() -> None:
            last = None
            while True:
                note = await queue.get()
                head = note["finalized"] if finalized else note
                if head["hash"] == last:
                    continue
                last = head["hash"]
                record = self._record(head["hash"])
                if record is None:
                    continue
                msg = {"jsonrpc": "2.0", "method": notify,
                       "params": {"subscription": sub_id, "result": self._header(record)}}
                try:
                    await ws.send(json.dumps(msg, separators=(",", ":")))
                except ConnectionClosed:
                    return  # the connection's handler unlistens the queue

        subs[sub_id] = (queue, asyncio.create_task(pump()))
        return sub_id
