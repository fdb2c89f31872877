"""Stores that peers committed on chain: parsed under a policy, opened once, cached.

A commitment is attacker-controlled text, so nothing raised while parsing or
opening one may reach the caller: every location becomes either a read-only
`PeerReader` (anonymous, bounded in bytes and time: subnet/storage/peer.py)
or a `StoreRefusal` saying why, logged once per location string. A changed
commitment is a new string, hence a fresh decision.

Policies: on the devnet (`allow_local`) file:// and loopback endpoints are
readable; on a real network only https endpoints on public addresses are,
unless the operator allows private endpoints (a private network).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from subnet.errors import SubnetError
from subnet.storage.location import LocationPolicy
from subnet.storage.peer import PeerReader, PeerReadOptions, open_peer

if TYPE_CHECKING:
    from subnet.storage.config import StoreConfig

_MAX_CACHED = 4096

def is_local(location: str) -> bool:
    """A file:// location or a plain path (reads this machine's disk)."""
    return location.startswith("file:") or "://" not in location


@dataclass(frozen=True, kw_only=True)
class StoreRefusal:
    """Why a peer's store is not read (shown in scores and logs)."""

    reason: str


class PeerStores:
    """Peer location string -> PeerReader or StoreRefusal, decided once per string."""

    def __init__(self, policy: LocationPolicy | None = None, options: PeerReadOptions | None = None, *,
                 allow_local: bool | None = None) -> None:
        if policy is None:  # legacy keyword: allow_local=True is the devnet, False a real network
            policy = LocationPolicy.devnet() if allow_local else LocationPolicy.network()
        elif allow_local is not None:
            raise TypeError("pass either a policy or allow_local, not both")
        if policy.own:
            raise ValueError("the own-store policy is not for peers")
        self.policy = policy
        self.options = options or PeerReadOptions()
        self._open: dict[str, PeerReader | StoreRefusal] = {}
        self._lock = threading.Lock()  # the upload watcher opens from worker threads

    @classmethod
    def for_runtime(cls, allow_local: bool, public_only: bool,
                    options: PeerReadOptions | None = None) -> PeerStores:
        """The node's policy: `allow_local` on the devnet, `public_only` on real (non-private) networks."""
        return cls(LocationPolicy(allow_local=allow_local, public_only=public_only), options)

    @classmethod
    def from_config(cls, store: StoreConfig, *, allow_local: bool) -> PeerStores:
        """Policy and read budget from a StoreConfig; `allow_local` is NodeRuntime.allow_local_stores."""
        public_only = not (allow_local or store.allow_private_peer_endpoints)
        options = PeerReadOptions(request_timeout_s=store.peer_request_timeout_s, attempts=store.peer_attempts)
        return cls.for_runtime(allow_local, public_only, options)

    @property
    def allow_local(self) -> bool:
        return self.policy.allow_local

    def open(self, location: str | None) -> PeerReader | StoreRefusal:
        """The reader for `location`, or a StoreRefusal; never raises (and never touches the network)."""
        if not location:
            return StoreRefusal(reason="no store committed")
        with self._lock:
            cached = self._open.get(location)
            if cached is None:
                cached = self._decide(location)
            return cached

    def _decide(self, location: str) -> PeerReader | StoreRefusal:
        result: PeerReader | StoreRefusal
        try:
            result = open_peer(location, self.policy, self.options)
        except SubnetError as exc:
            result = StoreRefusal(reason=f"unusable store location: {exc}")
            logger.warning("refusing peer store {!r}: {}", location[:200], exc)
        except Exception as exc:  # noqa: BLE001 - a peer's text must never crash this node
            result = StoreRefusal(reason=f"unusable store location: {type(exc).__name__}")
            logger.opt(exception=exc).error("refusing peer store {!r}: unexpected {}", location[:200],
                                            type(exc).__name__)
        if len(self._open) >= _MAX_CACHED:  # commitments change; forget the oldest decisions
            self._open.pop(next(iter(self._open)))
        self._open[location] = result
        return result

    def get(self, location: str | None) -> PeerReader | None:
        """The reader for `location`, or None when it is refused or missing (logged once)."""
        result = self.open(location)
        return None if isinstance(result, StoreRefusal) else result
