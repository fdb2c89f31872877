"""JSON-RPC 2.0 over WebSocket for the devnet, bound to 127.0.0.1 only.

Methods (all `devnet_*`): head, finalizedHead, status, blockHash, getBlock, events,
findExtrinsic, query, queryMap, queryBatch, runtimeCall (each read takes an
optional block hash `at`, answered from that block's state), constant,
accountNextIndex, signingInfo, submit (waits for inclusion), produceBlocks
(admin), subscribeHeads / unsubscribeHeads. Values use `subnet.devnet.codec`.
Admin calls are unauthenticated, so they are refused (error -32010,
`AdminDisabled`) unless the devnet was started with `--devnet.allow_admin`
(`TESSERA_DEVNET_ALLOW_ADMIN=1`); `devnet_head` reports `admin` either way.
Pool rejections are JSON-RPC errors with code 1010 and the Substrate
InvalidTransaction wording ("has a bad signature", "is outdated", ...), so the
SDK classifies them as it would a real node's.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from loguru import logger
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from subnet.devnet.codec import from_wire, to_wire
from subnet.devnet.config import ADMIN_ENV, ADMIN_FLAG, MANUAL_MODE_SLOT_MS, SPEC_VERSION, DevnetConfig
from subnet.devnet.extrinsic import Extrinsic
from subnet.devnet.node import Node, PoolRejection
from subnet.devnet.reads import Reader
from subnet.devnet.state import StateDiscarded

LOOPBACK = "127.0.0.1"
CONSTANTS = {
    ("Balances", "ExistentialDeposit"): 500,
    ("SubtensorModule", "InitialStartCallDelay"): 0,
}
ADMIN_METHODS = frozenset({"devnet_produceBlocks"})
ADMIN_DISABLED = -32010  # JSON-RPC server-error range
UNKNOWN_BLOCK = 4001  # Substrate's state RPC error codes: UnknownBlock / state discarded
STATE_DISCARDED = 4003


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class DevnetServer:
    """Routes JSON-RPC requests to a `Node`."""

    def __init__(self, node: Node) -> None:
        self.node = node

    # -- methods -------------------------------------------------------------

    def _head(self) -> dict:
        return {
            **self.node.header(),
            "genesis_hash": self.node.genesis_hash,
            "block_ms": self.node.cfg.block_ms,
            "spec_version": SPEC_VERSION,
            "admin": self.node.cfg.allow_admin,
            "finalized": self.node.finalized_header(),
            "finality_lag": self.node.finality_lag,
        }

    def _reader(self, params: list, index: int) -> Reader:
        """The reader for the block hash pinned at `params[index]` (head when absent)."""
        at = params[index] if len(params) > index else None
        try:
            return self.node.reader_at(at)
        except StateDiscarded as exc:
            raise RpcError(STATE_DISCARDED, str(exc), {"name": "StateDiscarded"}) from None
        except LookupError as exc:
            raise RpcError(UNKNOWN_BLOCK, str(exc), {"name": "UnknownBlock"}) from None

    def _require_admin(self, method: str) -> None:
        """Refuse an admin call unless the operator opted in at start-up."""
        if not self.node.cfg.allow_admin:
            raise RpcError(
                ADMIN_DISABLED,
                f"{method} is an admin call and this devnet was started without {ADMIN_FLAG}; "
                f"restart it with {ADMIN_FLAG} (or {ADMIN_ENV}=1) to allow it (tests only)",
                {"name": "AdminDisabled"},
            )

    async def call(self, method: str, params: list, ws: ServerConnection) -> Any:
        node = self.node
        if method in ADMIN_METHODS:
            self._require_admin(method)
        if method == "devnet_head":
            return self._head()
        if method == "devnet_finalizedHead":
            return node.finalized_header()
        if method == "devnet_status":
            return {
                **self._head(),
                "pid": os.getpid(),
                "port": node.cfg.port,
                "dir": str(node.cfg.dir),
                "subnets": node.rt.netuids(),
                "pool": len(node._pool),
            }
        if method == "devnet_blockHash":
            number = params[0] if params else None
            return node.head.hash if number is None else node.store.block_hash(int(number))
        if method == "devnet_getBlock":
            return self._get_block(*params)
        if method == "devnet_events":
            return self._block(params[0] if params else None, want="events")
        if method == "devnet_findExtrinsic":
            return node.find_extrinsic(params[0], params[1] if len(params) > 1 else None)
        if method == "devnet_query":
            module, item, keys = params[0], params[1], from_wire(params[2] if len(params) > 2 else [])
            return self._reader(params, 3).query(module, item, keys)
        if method == "devnet_queryMap":
            module, item, keys = params[0], params[1], from_wire(params[2] if len(params) > 2 else [])
            return [list(pair) for pair in self._reader(params, 3).query_map(module, item, keys)]
        if method == "devnet_queryBatch":
            module, item, sets = params[0], params[1], from_wire(params[2])
            pinned = self._reader(params, 3)
            return [pinned.query(module, item, keys) for keys in sets]
        if method == "devnet_runtimeCall":
            api, name, args = params[0], params[1], from_wire(params[2] if len(params) > 2 else [])
            return self._reader(params, 3).runtime_call(api, name, args)
        if method == "devnet_constant":
            if tuple(params[:2]) == ("Aura", "SlotDuration"):
                return node.cfg.block_ms or MANUAL_MODE_SLOT_MS
            return CONSTANTS.get(tuple(params[:2]))
        if method == "devnet_accountNextIndex":
            return node.next_index(params[0])
        if method == "devnet_signingInfo":
            return {
                "nonce": node.next_index(params[0]),
                "block": node.head.number,
                "genesis_hash": node.genesis_hash,
            }
        if method == "devnet_submit":
            return await self._submit(params)
        if method == "devnet_produceBlocks":
            count = int(params[0]) if params else 1
            if not 0 < count <= 100_000:
                raise RpcError(-32602, "produceBlocks takes 1..100000 blocks")
            for i in range(count):
                node.produce_block()
                if i % 50 == 49:
                    await asyncio.sleep(0)  # stay responsive during long fast-forwards
            return self._head()
        raise RpcError(-32601, f"method not found: {method}")

    async def _submit(self, params: list) -> dict:
        try:
            ext = Extrinsic.from_wire(params[0])
            inner = Extrinsic.from_wire(params[1]) if len(params) > 1 and params[1] else None
        except (ValueError, IndexError) as exc:
            raise RpcError(1010, f"Invalid Transaction: {exc}", {"name": "BadProof"}) from None
        try:
            fut = self.node.submit(ext, inner)
        except PoolRejection as rej:
            raise RpcError(1010, rej.message, {"name": rej.name}) from None
        return await fut

    def _block(self, ref: Any, *, want: str) -> Any:
        node = self.node
        if ref is None:
            record = node.store.block(node.head.number)
        elif isinstance(ref, str):
            number = node.store.block_number(ref)
            record = node.store.block(number) if number is not None else None
        else:
            record = node.store.block(int(ref))
        if record is None:
            return None
        return record.events if want == "events" else record

    def _get_block(self, number: Any = None, block_hash: Any = None) -> dict | None:
        record = self._block(block_hash if block_hash is not None else number, want="record")
        if record is None:
            return None
        return {
            "header": {"number": record.number, "hash": record.hash, "parentHash": record.parent},
            "extrinsics": [
                {"call": {"call_module": "Timestamp", "call_function": "set",
                          "call_args": [{"name": "now", "value": record.timestamp}]}}
            ] + [r.get("extrinsic") for r in record.extrinsics],
        }

    # -- transport ------------------------------------------------------------

    async def handle(self, ws: ServerConnection) -> None:
        subscriptions: dict[str, tuple[asyncio.Queue, asyncio.Task]] = {}
        tasks: set[asyncio.Task] = set()
        try:
            async for raw in ws:
                task = asyncio.create_task(self._one(ws, raw, subscriptions))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except ConnectionClosed:
            pass
        finally:
            for queue, pump in subscriptions.values():
                self.node.unlisten_heads(queue)
                pump.cancel()
            for task in tasks:
                task.cancel()

    async def _one(self, ws: ServerConnection, raw: str | bytes, subs: dict) -> None:
        req_id = None
        try:
            req = json.loads(raw)
            req_id = req.get("id")
            method = req.get("method")
            params = req.get("params") or []
            if not isinstance(params, list):
                params = [params]
            if method == "devnet_subscribeHeads":
                result: Any = self._subscribe(ws, subs)
            elif method == "devnet_unsubscribeHeads":
                entry = subs.pop(str(params[0]), None)
                if entry:
                    self.node.unlisten_heads(entry[0])
                    entry[1].cancel()
                result = entry is not None
            else:
                result = await self.call(str(method), params, ws)
            reply = {"jsonrpc": "2.0", "id": req_id, "result": to_wire(result)}
        except RpcError as exc:
            reply = {"jsonrpc": "2.0", "id": req_id,
                     "error": {"code": exc.code, "message": exc.message, "data": exc.data}}
        except Exception as exc:  # keep serving; report the failure to this caller
            logger.exception("devnet rpc failure")
            reply = {"jsonrpc": "2.0", "id": req_id,
                     "error": {"code": -32603, "message": f"{type(exc).__name__}: {exc}"}}
        try:
            await ws.send(json.dumps(reply, separators=(",", ":")))
        except ConnectionClosed:
            pass

    def _subscribe(self, ws: ServerConnection, subs: dict) -> str:
        sub_id = f"heads-{len(subs) + 1}-{id(ws)}"
        queue = self.node.listen_heads()

        async def pump() -> None:
            while True:
                header = await queue.get()
                msg = {"jsonrpc": "2.0", "method": "devnet_head",
                       "params": {"subscription": sub_id, "result": header}}
                await ws.send(json.dumps(msg, separators=(",", ":")))

        subs[sub_id] = (queue, asyncio.create_task(pump()))
        return sub_id


async def serve_forever(cfg: DevnetConfig, ready: asyncio.Event | None = None) -> None:
    """Run node + server until SIGTERM/SIGINT; the pidfile marks a live devnet."""
    if cfg.host != LOOPBACK:
        raise ValueError("the devnet binds to 127.0.0.1 only")
    node = Node(cfg)
    server = DevnetServer(node)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with serve(server.handle, LOOPBACK, cfg.port, max_size=16 * 2**20,
                     ping_interval=None, compression=None):
        producer = asyncio.create_task(node.run())
        producer.add_done_callback(lambda task: _producer_ended(task, stop))
        substrate_face = await _start_substrate_face(cfg, node)
        tmp = cfg.pid_path.with_suffix(".tmp")
        tmp.write_text(f"{os.getpid()} {cfg.port}\n")
        os.replace(tmp, cfg.pid_path)
        logger.info("devnet listening on ws://{}:{} (block {} ms, pid {})",
                    LOOPBACK, cfg.port, cfg.block_ms, os.getpid())
        if cfg.allow_admin:
            logger.warning("admin RPC enabled ({}): any local process can produce blocks", ADMIN_FLAG)
        print(f"devnet ready ws://{LOOPBACK}:{cfg.port}", flush=True)
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            producer.cancel()
            if substrate_face is not None:
                substrate_face.close()
            try:
                cfg.pid_path.unlink()
            except FileNotFoundError:
                pass
            node.close()
            logger.info("devnet stopped at block {}", node.head.number)
        if producer.done() and not producer.cancelled() and producer.exception() is not None:
            raise DevnetHalted(f"block production failed at block {node.head.number + 1}") \
                from producer.exception()


class DevnetHalted(RuntimeError):
    """Block production raised: the devnet exits non-zero rather than serve a chain that no longer moves."""


def _producer_ended(task: asyncio.Task, stop: asyncio.Event) -> None:
    """A block producer that stops on its own is a bug: say so loudly and stop the devnet (no silent stall)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        logger.opt(exception=exc).critical("devnet: block production crashed; stopping the devnet")
    else:
        logger.critical("devnet: block production ended unexpectedly; stopping the devnet")
    stop.set()


async def _start_substrate_face(cfg: DevnetConfig, node: Node) -> Any:
    """Serve the Substrate JSON-RPC face (subnet/devnet/substrate_rpc) beside this one.

    An explicitly configured port that cannot be bound is an error; the
    default (port + 1) is skipped with a warning so a busy neighbour port
    never stops the devnet.
    """
    if cfg.substrate_port == 0:
        return None
    from subnet.devnet.substrate_rpc.face import SubstrateFace

    port = cfg.substrate_port if cfg.substrate_port is not None else cfg.port + 1
    face = SubstrateFace(node)
    try:
        server = await serve(face.handle, LOOPBACK, port, max_size=16 * 2**20,
                             ping_interval=None, compression=None)
    except OSError as exc:
        if cfg.substrate_port is not None:
            raise
        logger.warning("substrate face not served: port {} unavailable ({})", port, exc)
        return None
    logger.info("devnet substrate face on ws://{}:{}", LOOPBACK, port)
    print(f"devnet substrate ws://{LOOPBACK}:{port}", flush=True)
    return server
