"""`make_subtensor(network)` and the error seam between the SDK and Tessera.

Network strings (the `--subtensor.network` flag):
- `devnet` -> the local devnet at ws://127.0.0.1:$TESSERA_DEVNET_PORT (default 9946: the same variable
  that sets `tessera devnet start --devnet.port`; a neuron's `--subtensor.chain_endpoint` names another);
- `devnet+ws://host:port` -> a devnet at that URL (loopback only);
- `finney`, `test`, `local`, `archive`, `ws://...`, `wss://...` -> the real chain.

A devnet network string names the devnet's own port; the client is the plain
SDK client on its Substrate face (that port + 1, or $TESSERA_DEVNET_SUBSTRATE_PORT),
the same `bt.Subtensor(network=ws://...)` and transport as on finney, so the
neurons run one code path everywhere. `TESSERA_DEVNET_TRANSPORT=json` selects
the devnet's JSON face through `DevnetSubstrate` instead (the older path).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

import bittensor as bt

from subnet.errors import ChainError

DEVNET_DEFAULT_URL = "ws://127.0.0.1:9946"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
T = TypeVar("T")


def devnet_url(network: str) -> str | None:
    """The devnet URL a network string names, or None for a real network."""
    if network != "devnet" and not network.startswith("devnet+"):
        return None
    url = network.partition("+")[2]
    if not url:
        port = int(os.environ.get("TESSERA_DEVNET_PORT", "9946"))
        return f"ws://127.0.0.1:{port}"
    parsed = urlparse(url)
    if parsed.scheme != "ws" or parsed.hostname not in _LOOPBACK or not parsed.port:
        raise ChainError(
            f"bad devnet network {network!r}",
            remediation="use devnet or devnet+ws://127.0.0.1:PORT (the devnet is loopback-only)",
        )
    return url


def devnet_transport(given: str | None = None) -> str:
    """`substrate` (default) or `json`: the neuron's `--subtensor.devnet_transport`, else $TESSERA_DEVNET_TRANSPORT."""
    from subnet.devnet.config import DEFAULT_TRANSPORT, TRANSPORT_ENV, TRANSPORTS  # lazy: no import cycle via config

    raw = (given or os.environ.get(TRANSPORT_ENV, "")).strip().lower() or DEFAULT_TRANSPORT
    if raw not in TRANSPORTS:
        raise ChainError(f"bad {TRANSPORT_ENV}={raw!r}", remediation=f"use one of {', '.join(TRANSPORTS)}")
    return raw


def devnet_substrate_url(url: str) -> str:
    """The Substrate face of the devnet at `url`: its port + 1, or $TESSERA_DEVNET_SUBSTRATE_PORT when set."""
    from subnet.devnet.config import SUBSTRATE_PORT_ENV

    parsed = urlparse(url)
    override = os.environ.get(SUBSTRATE_PORT_ENV, "").strip()
    port = int(override) if override else int(parsed.port or 0) + 1
    return f"ws://{parsed.hostname}:{port}"


class _BoundedRpcSubstrate(bt.RpcSubstrate):
    """The SDK's own `RpcSubstrate`, with each request bounded by `response_timeout` (the SDK's default is 60 s)."""

    def __init__(self, endpoint: str, *, response_timeout: float) -> None:
        super().__init__(endpoint, fallback_endpoints=[], archive_endpoints=[])
        self._response_timeout = float(response_timeout)

    def _interface(self, endpoint: str, fallbacks: list[str]) -> Any:
        from bittensor._transport.interface import SubstrateConnection

        return SubstrateConnection(endpoint, fallback_urls=fallbacks, retry_forever=self.retry_forever,
                                   response_timeout=self._response_timeout)


def make_subtensor(network: str, *, timeout_s: float = 30.0, transport: str | None = None) -> Any:
    """A `bittensor.Subtensor` for `network` (see module docstring).

    `timeout_s` bounds each devnet request (`--subtensor.devnet_timeout_s`); the real chain keeps the SDK's.
    `transport` picks the devnet's face (`--subtensor.devnet_transport`); none: $TESSERA_DEVNET_TRANSPORT.
    """
    if not network:
        raise ChainError("empty network", remediation="pass --subtensor.network finney|test|local|devnet")
    url = devnet_url(network)
    if url is not None:
        # A hung (connected, silent) devnet must not stall a neuron for minutes per read:
        # each request is bounded; ChainView retries a few times on top.
        if devnet_transport(transport) == "json":
            from subnet.devnet.substrate import DevnetSubstrate

            # "local" labels explorer links only; the substrate decides where calls go.
            return bt.Subtensor("local", substrate=DevnetSubstrate(url, timeout=timeout_s))
        from subnet.devnet.substrate import add_escrow_sink

        face = devnet_substrate_url(url)
        add_escrow_sink(face, timeout_s)  # so commit-reveal commits reveal (substrate_rpc/escrow.py)
        return bt.Subtensor(face, substrate=_BoundedRpcSubstrate(face, response_timeout=timeout_s))
    try:
        return bt.Subtensor(network)
    except Exception as exc:  # unknown network names raise from the SDK's resolver
        raise ChainError(f"cannot create a client for network {network!r}: {exc}") from exc


def chain_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run an SDK call, re-raising SDK/transport failures as `subnet.errors.ChainError`."""
    try:
        return fn(*args, **kwargs)
    except ChainError:
        raise
    except bt.BittensorError as exc:
        hint = getattr(exc, "remediation", None)
        err = ChainError(str(exc), remediation=hint if isinstance(hint, str) else None)
        err.chain_name = getattr(exc, "name", None)  # e.g. "SettingWeightsTooFast"
        raise err from exc
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise ChainError(f"chain unreachable: {exc}") from exc
