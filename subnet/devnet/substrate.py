"""`DevnetSubstrate`: the `bittensor.Substrate` protocol over the devnet's JSON-RPC.

Plugs into the SDK at its own seam (`bt.Subtensor(network, substrate=...)`),
so metagraphs, intents (`SetWeights`, `BurnedRegister`, `AddStake`, ...) and
raw calls run unmodified. Reads return plain decoded values in the SDK's
shapes; writes are signed here with the caller's keypair (`keypair.sign`) and
verified by the node. MEV-shielded intents work because `sign_extrinsic`
remembers the signed inner extrinsic and `submit` forwards it with the
`MevShield.submit_encrypted` carrier (the devnet does not decrypt).
Timelocked weight commits work the same way: the devnet cannot decrypt drand
timelock ciphertext offline, so `install_commit_escrow` has the SDK's
`get_encrypted_commit_v2` also record the plaintext it encrypts, and `compose`
attaches it to the commit as `devnet_reveal` for the chain to apply at the
reveal round (see `subnet.devnet.runtime.commit_reveal`); `add_escrow_sink`
also posts it to a Substrate face, for the plain SDK client there.
Neurons use the plain SDK client on the Substrate face by default
(`subnet.chain.make_subtensor`); this client remains for bootstrap's
MEV-shielded registration and for `TESSERA_DEVNET_TRANSPORT=json`.
Reads pinned to a block hash are answered from that block's state (the node
keeps a pruning window of history); `finalized_block_number` and finalized
head streams trail the best head by the devnet's finality lag, and `submit`
with `wait_for_finalization` returns once its block is finalized, as the
SDK's own transport does. Unsupported surfaces (SCALE decoding, multisig,
out-of-process signing) raise a `ChainError` saying so.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from hashlib import blake2b
from typing import Any

from bittensor.balance import Balance
from bittensor.result import ChainError, ExtrinsicResult
from loguru import logger

from subnet.devnet import extrinsic as xt
from subnet.devnet.codec import canonical, to_wire
from subnet.devnet.config import MANUAL_MODE_SLOT_MS, SPEC_VERSION
from subnet.devnet.reads import mev_dummy_key
from subnet.devnet.rpc_client import DevnetRpc, DevnetRpcError

DEFAULT_URL = "ws://127.0.0.1:9946"
_UNSUPPORTED = "not supported by the devnet (no SCALE/metadata); see contrib/DEVNET.md"


class ComposedCall:
    """A composed call: the generated Call's fields plus `call_hash` and `data`."""

    def __init__(self, module: str, function: str, params: dict) -> None:
        self.module = module
        self.function = function
        self.params = dict(params)

    def __iter__(self):
        return iter((self.module, self.function, self.params))

    @property
    def call_module(self) -> str:
        return self.module

    @property
    def call_function(self) -> str:
        return self.function

    @property
    def data(self) -> bytes:
        return canonical({"module": self.module, "function": self.function, "params": to_wire(self.params)})

    @property
    def call_hash(self) -> bytes:
        return blake2b(self.data, digest_size=32).digest()

    def __repr__(self) -> str:
        return f"ComposedCall({self.module}.{self.function}, {self.params})"


_TIMELOCKED_COMMITS = frozenset({
    "commit_timelocked_mechanism_weights", "commit_timelocked_weights", "commit_crv3_mechanism_weights"})
_ESCROW: OrderedDict[bytes, dict] = OrderedDict()
_ESCROW_MAX = 256
_ESCROW_SINKS: dict[str, float] = {}  # Substrate-face URL -> request timeout (s)
_ESCROW_OPEN_TIMEOUT_S = 5.0


class _EscrowingCore:
    """`bittensor_core`, except that `get_encrypted_commit_v2` also keeps the plaintext it encrypted."""

    def __init__(self, core: Any) -> None:
        self._core = core

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    def get_encrypted_commit_v2(self, *args: Any, **kwargs: Any) -> Any:
        commit, reveal_round = self._core.get_encrypted_commit_v2(*args, **kwargs)
        if not args:
            import bittensor_core

            payload = {
                "hotkey": bittensor_core.ss58_encode(bytes(kwargs["hotkey"])),
                "uids": [int(u) for u in kwargs["uids"]],
                "values": [int(v) for v in kwargs["weights"]],
                "version_key": int(kwargs["version_key"]),
            }
            _ESCROW[bytes(commit)] = payload
            while len(_ESCROW) > _ESCROW_MAX:
                _ESCROW.popitem(last=False)
            for url, timeout in list(_ESCROW_SINKS.items()):
                _post_escrow(url, bytes(commit), payload, timeout)
        return commit, reveal_round


def add_escrow_sink(url: str, timeout: float) -> None:
    """Also post each recorded escrow to the Substrate face at `url` (`devnet_commitEscrow`) before the commit.

    For the plain SDK client on a devnet's Substrate face, where a SCALE call has
    no room for the plaintext (subnet/devnet/substrate_rpc/escrow.py).
    """
    _ESCROW_SINKS[url] = float(timeout)
    install_commit_escrow()


def _post_escrow(url: str, commit: bytes, payload: dict, timeout: float) -> None:
    """One blocking loopback call (before the SDK submits the commit); a failure leaves the commit unrevealable."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    request = {"jsonrpc": "2.0", "id": 1, "method": "devnet_commitEscrow", "params": ["0x" + commit.hex(), payload]}
    try:
        # Every sink the process registered gets it (the hook cannot tell which client will submit), so a
        # stale one must cost little: loopback handshakes are bounded by a few seconds, not the read budget.
        with connect(url, open_timeout=min(timeout, _ESCROW_OPEN_TIMEOUT_S), close_timeout=1) as ws:
            ws.send(json.dumps(request))
            reply = json.loads(ws.recv(timeout=timeout))
        if "error" in reply:
            logger.warning("devnet refused the commit escrow at {}: {}", url, reply["error"].get("message"))
    except (OSError, TimeoutError, ValueError, WebSocketException) as exc:
        logger.warning("commit escrow not delivered to {} ({}); this commit will not reveal", url, exc)


def install_commit_escrow() -> None:
    """Have the SDK's weights intents record each timelocked commit's plaintext (idempotent).

    Only records: encryption, the ciphertext and the reveal round are the SDK's
    own, so a real chain client in the same process is unaffected.
    """
    from bittensor.intents import weights as sdk_weights

    if not isinstance(sdk_weights._core, _EscrowingCore):
        sdk_weights._core = _EscrowingCore(sdk_weights._core)


def _chain_error(exc: Exception) -> ChainError:
    if isinstance(exc, DevnetRpcError):
        return ChainError(exc.message, (exc.data or {}).get("name"))
    return ChainError(f"devnet RPC failed: {exc}")


class DevnetSubstrate:
    """See module docstring. Satisfies the `bittensor.Substrate` protocol."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 120.0) -> None:
        self.url = url
        self.token_symbols: dict[int, str] = {}
        self._rpc = DevnetRpc(url, timeout=timeout)
        self._block_ms: int | None = None
        self._hashes: dict[int, str] = {}
        self._shielded: dict[str, xt.Extrinsic] = {}
        self._nonces: dict[str, int] = {}
        self._nonce_lock: asyncio.Lock | None = None
        install_commit_escrow()

    # -- plumbing -------------------------------------------------------------

    async def _call(self, method: str, *params: Any) -> Any:
        try:
            return await self._rpc.request(method, *params)
        except (TimeoutError, DevnetRpcError, ConnectionError, OSError) as exc:
            raise _chain_error(exc) from exc

    def balance(self, rao: int, netuid: int = 0) -> Balance:
        symbol = self.token_symbols.get(netuid) if netuid else None
        return Balance(int(rao), netuid, symbol)

    async def connect(self) -> None:
        try:
            await self._rpc.connect()
        except (ConnectionError, OSError) as exc:
            raise ChainError(str(exc)) from exc
        head = await self._call("devnet_head")
        self._block_ms = int(head["block_ms"])

    async def close(self) -> None:
        await self._rpc.close()

    # -- chain head -----------------------------------------------------------

    async def block_hash(self, block: int | None = None) -> str:
        if block is not None and int(block) in self._hashes:
            return self._hashes[int(block)]
        value = await self._call("devnet_blockHash", block)
        if value is not None and block is not None:
            self._hashes[int(block)] = value
        return value

    async def block_number(self) -> int:
        return int((await self._call("devnet_head"))["number"])

    async def finalized_block_number(self) -> int:
        """The finalized head, `finality_lag` blocks behind the best head (the devnet's GRANDPA stand-in)."""
        return int((await self._call("devnet_finalizedHead"))["number"])

    async def block_time(self) -> float:
        if self._block_ms is None:
            self._block_ms = int((await self._call("devnet_head"))["block_ms"])
        return (self._block_ms or MANUAL_MODE_SLOT_MS) / 1000.0

    async def spec_version(self) -> int:
        return SPEC_VERSION

    async def get_block(self, block_number: int | None = None, block_hash: str | None = None) -> dict | None:
        return await self._call("devnet_getBlock", block_number, block_hash)

    # -- reads -----------------------------------------------------------------

    async def query(self, module: str, storage_function: str, params: list | None = None,
                    block_hash: str | None = None) -> Any:
        return await self._call("devnet_query", module, storage_function, list(params or []), block_hash)

    async def map_has_entries(self, module: str, storage_function: str, params: list,
                              block_hash: str | None = None) -> bool:
        return bool(await self.query_map(module, storage_function, params, block_hash))

    async def query_map(self, module: str, storage_function: str, params: list | None = None,
                        block_hash: str | None = None) -> list[tuple[Any, Any]]:
        rows = await self._call("devnet_queryMap", module, storage_function, list(params or []), block_hash)
        return [(key, value) for key, value in rows]

    async def query_batch(self, module: str, storage_function: str, param_sets: list[list],
                          block_hash: str | None = None) -> list[Any]:
        if not param_sets:
            return []
        return await self._call("devnet_queryBatch", module, storage_function, [list(p) for p in param_sets],
                                block_hash)

    async def runtime_call(self, api: str, method: str, params: Any, block_hash: str | None = None) -> Any:
        return await self._call("devnet_runtimeCall", api, method, params, block_hash)

    async def constant(self, module: str, name: str) -> Any:
        return await self._call("devnet_constant", module, name)

    async def decode_scale(self, type_string: str, data: Any) -> Any:
        raise ChainError(f"decode_scale is {_UNSUPPORTED}")

    async def blocks(self, *, finalized: bool = False) -> AsyncIterator[dict]:
        sub_id, queue = await self._rpc.subscribe_heads()
        last = -1
        try:
            while True:
                note = await queue.get()
                if note is None:
                    raise ChainError("devnet head subscription closed")
                header = note.get("finalized") or note if finalized else note
                header = {k: v for k, v in header.items() if k != "finalized"}
                if finalized and int(header["number"]) <= last:
                    continue  # the finalized head did not move with this block
                last = int(header["number"])
                yield {"header": header}
        finally:
            await self._rpc.unsubscribe_heads(sub_id)

    async def events(self, block_hash: str | None = None) -> list[dict]:
        return list(await self._call("devnet_events", block_hash) or [])

    # -- calls and fees ----------------------------------------------------------

    async def compose(self, call: Any) -> ComposedCall:
        if isinstance(call, ComposedCall):
            return call
        module, function, params = call
        params = dict(params)
        if module == "SubtensorModule" and function in _TIMELOCKED_COMMITS:
            escrow = _ESCROW.get(bytes(params.get("commit") or b""))
            if escrow is not None:
                params["devnet_reveal"] = dict(escrow)
        return ComposedCall(module, function, params)

    async def estimate_fee(self, call: Any, keypair: Any) -> Balance:
        return Balance.from_rao(0)  # the devnet charges no fees

    async def estimate_weight(self, call: Any, keypair: Any) -> dict:
        return {"ref_time": 1_000_000, "proof_size": 4_096}

    async def account_next_index(self, address: str) -> int:
        return int(await self._call("devnet_accountNextIndex", address))

    # -- writes ---------------------------------------------------------------------

    async def mev_next_key(self) -> bytes | None:
        return mev_dummy_key()

    def _lock(self) -> asyncio.Lock:
        if self._nonce_lock is None:
            self._nonce_lock = asyncio.Lock()
        return self._nonce_lock

    async def _signed(self, call: Any, keypair: Any, nonce: int | None, period: int | None) -> xt.Extrinsic:
        """Sign `call`; callers hold `_lock()` so nonces are allocated and sent in order."""
        composed = await self.compose(call)
        info = await self._call("devnet_signingInfo", keypair.ss58_address)
        address = keypair.ss58_address
        if nonce is None:
            nonce = max(int(info["nonce"]), self._nonces.get(address, 0))
            self._nonces[address] = nonce + 1
        return xt.sign(
            module=composed.module,
            function=composed.function,
            params=to_wire(composed.params),
            keypair=keypair,
            nonce=int(nonce),
            era_birth=int(info["block"]),
            era_period=int(period or 0),
            genesis_hash=info["genesis_hash"],
        )

    async def sign_extrinsic(self, call: Any, keypair: Any, *, nonce: int, period: int) -> tuple[bytes, str]:
        async with self._lock():
            ext = await self._signed(call, keypair, nonce, period)
        self._shielded[keypair.ss58_address] = ext
        return canonical(ext.to_wire()), ext.hash

    async def find_extrinsic(self, extrinsic_hash: str, block_hash: str) -> ExtrinsicResult | None:
        receipt = await self._call("devnet_findExtrinsic", extrinsic_hash, block_hash)
        return self._result(receipt) if receipt else None

    async def prepare(self, call: Any, **kwargs: Any) -> Any:
        raise ChainError(f"out-of-process signing is {_UNSUPPORTED}")

    async def submit_signature(self, unsigned: Any, signature: Any, **kwargs: Any) -> ExtrinsicResult:
        raise ChainError(f"out-of-process signing is {_UNSUPPORTED}")

    async def submit(self, call: Any, keypair: Any, *, nonce: int | None = None,
                     period: int | None = None, wait_for_inclusion: bool = True,
                     wait_for_finalization: bool = True) -> ExtrinsicResult:
        async with self._lock():
            try:
                ext = await self._signed(call, keypair, nonce, period)
            except ChainError as exc:
                return ExtrinsicResult(success=False, message=exc.message, error=exc)
            inner = None
            if (ext.module, ext.function) == ("MevShield", "submit_encrypted"):
                inner = self._shielded.pop(keypair.ss58_address, None)
                if inner is None:
                    raise ChainError("MEV-shield carrier without a signed inner extrinsic")
            pending = await self._send(ext, inner)
        result = await self._receipt(ext, pending)
        if wait_for_finalization and result.block_hash:
            await self._await_finalized(int(result.extrinsic_id.split("-")[0]))
        return result

    async def _await_finalized(self, block: int) -> None:
        """Wait until the finalized head reaches `block` (bounded: the lag plus slack, in block times)."""
        head = await self._call("devnet_head")
        lag = int(head.get("finality_lag") or 0)
        if int(head["finalized"]["number"]) >= block:
            return
        if not self._block_ms:
            return  # instant seal: nothing would seal the blocks that finalize it; inclusion is the answer
        interval = self._block_ms / 1000.0
        deadline = asyncio.get_running_loop().time() + (lag + 2) * interval * 5 + 10
        while int((await self._call("devnet_finalizedHead"))["number"]) < block:
            if asyncio.get_running_loop().time() > deadline:
                raise ChainError(f"block {block} was not finalized in time (finality lag {lag})")
            await asyncio.sleep(interval / 2)

    async def _send(self, ext: xt.Extrinsic, inner: xt.Extrinsic | None) -> Any:
        try:
            return await self._rpc.start("devnet_submit", ext.to_wire(), inner.to_wire() if inner else None)
        except (ConnectionError, OSError) as exc:
            self._nonces.pop(ext.signer, None)
            raise ChainError(f"devnet RPC failed: {exc}") from exc

    async def submit_extrinsic(self, ext: xt.Extrinsic, inner: xt.Extrinsic | None = None) -> ExtrinsicResult:
        """Send an already-signed devnet extrinsic and wait for its receipt."""
        return await self._receipt(ext, await self._send(ext, inner))

    async def _receipt(self, ext: xt.Extrinsic, pending: Any) -> ExtrinsicResult:
        try:
            receipt = await asyncio.wait_for(pending, self._rpc.timeout)
        except DevnetRpcError as exc:
            self._nonces.pop(ext.signer, None)  # a refused extrinsic does not consume its nonce
            error = _chain_error(exc)
            return ExtrinsicResult(success=False, message=error.message, error=error)
        except (TimeoutError, ConnectionError, OSError) as exc:
            self._nonces.pop(ext.signer, None)
            raise ChainError(f"devnet RPC failed: {exc}") from exc
        return self._result(receipt)

    async def submit_signed(self, extrinsic: Any, keypair: Any, *, wait_for_inclusion: bool = True,
                            wait_for_finalization: bool = True) -> ExtrinsicResult:
        if not isinstance(extrinsic, xt.Extrinsic):
            raise ChainError(f"submit_signed takes a devnet Extrinsic; other forms are {_UNSUPPORTED}")
        return await self.submit_extrinsic(extrinsic)

    def _result(self, receipt: dict) -> ExtrinsicResult:
        ext_id = f"{receipt['block_number']}-{int(receipt['index']):04d}"
        common = dict(
            block_hash=receipt["block_hash"],
            extrinsic_id=ext_id,
            fee=Balance.from_rao(0),
            events=list(receipt.get("events") or []),
        )
        if receipt.get("success"):
            return ExtrinsicResult(success=True, message="Success", **common)
        error = receipt.get("error") or {}
        docs = error.get("docs") or [error.get("name") or "extrinsic failed"]
        text = " ".join(docs) if isinstance(docs, list) else str(docs)
        return ExtrinsicResult(success=False, message=text, error=ChainError(text, error.get("name")), **common)

    # -- multisig --------------------------------------------------------------------

    def multisig_account(self, signatories: list[str], threshold: int) -> Any:
        from bittensor._transport import codec as codec_mod

        return codec_mod.multisig_account(signatories, threshold)

    async def submit_multisig(self, call: Any, keypair: Any, multisig_account: Any, **kwargs: Any) -> ExtrinsicResult:
        raise ChainError(f"multisig is {_UNSUPPORTED}")
