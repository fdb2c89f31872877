"""A small JSON-RPC 2.0 WebSocket client for the devnet.

One connection, one reader task routing replies to futures by id and
subscription notifications to queues. If the devnet restarts, the next
request reconnects (bounded retries), so long-running neurons survive a
devnet restart.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from subnet.devnet.codec import from_wire, to_wire


class DevnetRpcError(Exception):
    """The devnet answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data or {}


class DevnetRpc:
    def __init__(self, url: str, *, timeout: float = 60.0, connect_retries: int = 20) -> None:
        self.url = url
        self.timeout = timeout
        self.connect_retries = connect_retries
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._subs: dict[str, asyncio.Queue] = {}
        self._ids = itertools.count(1)
        self._lock: asyncio.Lock | None = None

    async def connect(self) -> None:
        if self._ws is not None:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._ws is not None:
                return
            last: Exception | None = None
            for attempt in range(self.connect_retries):
                try:
                    self._ws = await connect(self.url, max_size=64 * 2**20, ping_interval=None,
                                             compression=None, open_timeout=5)
                    break
                except (TimeoutError, OSError) as exc:
                    last = exc
                    await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise ConnectionError(f"devnet not reachable at {self.url}: {last}")
            self._reader = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if "id" in msg and msg.get("id") in self._pending:
                    fut = self._pending.pop(msg["id"])
                    if fut.done():
                        continue
                    if "error" in msg:
                        err = msg["error"] or {}
                        fut.set_exception(DevnetRpcError(err.get("code", -1), err.get("message", ""), err.get("data")))
                    else:
                        fut.set_result(from_wire(msg.get("result")))
                elif msg.get("method") == "devnet_head":
                    params = msg.get("params") or {}
                    queue = self._subs.get(params.get("subscription"))
                    if queue is not None:
                        queue.put_nowait(params.get("result"))
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("devnet connection closed"))
            self._pending.clear()
            for queue in self._subs.values():
                queue.put_nowait(None)

    async def request(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        fut = await self.start(method, *params)
        return await asyncio.wait_for(fut, timeout or self.timeout)

    async def start(self, method: str, *params: Any) -> asyncio.Future:
        """Send a request now; the returned future resolves with its reply.

        Requests are sent (and handled by the devnet) in call order, which is
        what lets one signer pipeline several nonces into the same block.
        """
        await self.connect()
        ws = self._ws
        if ws is None:
            raise ConnectionError("devnet connection closed")
        req_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        payload = {"jsonrpc": "2.0", "id": req_id, "method": method, "params": to_wire(list(params))}
        try:
            await ws.send(json.dumps(payload, separators=(",", ":")))
        except ConnectionClosed as exc:
            self._pending.pop(req_id, None)
            self._ws = None
            raise ConnectionError(f"devnet connection closed: {exc}") from exc
        return fut

    async def subscribe_heads(self) -> tuple[str, asyncio.Queue]:
        sub_id = await self.request("devnet_subscribeHeads")
        queue: asyncio.Queue = asyncio.Queue()
        self._subs[sub_id] = queue
        return sub_id, queue

    async def unsubscribe_heads(self, sub_id: str) -> None:
        self._subs.pop(sub_id, None)
        if self._ws is not None:
            try:
                await self.request("devnet_unsubscribeHeads", sub_id, timeout=5)
            except Exception:
                pass

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
