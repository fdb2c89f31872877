"""Stores that peers committed on chain: opened once, cached, and policed.

A commitment is attacker-controlled text. A `file://` (or plain path)
location makes this node read its *own* disk at a path a peer chose, which is
only meaningful on a single-machine devnet; on a real network such locations
are refused unless explicitly allowed. Opening an S3 client is costly, so each
location is opened once and reused across polls and windows.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from loguru import logger

from subnet.errors import SubnetError
from subnet.storage.base import ArtifactStore, open_store


def is_local(location: str) -> bool:
    return urlsplit(location).scheme in ("", "file")


class PeerStores:
    def __init__(self, *, allow_local: bool) -> None:
        self.allow_local = allow_local
        self._open: dict[str, ArtifactStore | None] = {}

    def get(self, location: str | None) -> ArtifactStore | None:
        """The store at `location`, or None when it is refused or malformed (logged once)."""
        if not location:
            return None
        if location in self._open:
            return self._open[location]
        store: ArtifactStore | None = None
        if is_local(location) and not self.allow_local:
            logger.warning("refusing peer store {!r}: local paths are only accepted on the devnet", location)
        else:
            try:
                store = open_store(location)
            except SubnetError as exc:
                logger.warning("refusing peer store {!r}: {}", location, exc)
        self._open[location] = store
        return store
