"""Artifact stores: a local directory (embedded default) and S3-compatible services.

`open_store(location)` turns OUR OWN configured location into an
`ArtifactStore`; `open_peer(location, policy)` turns a location a peer
committed on chain into a read-only, anonymous, budgeted `PeerReader`. Both go
through one grammar (location.py), which never lets a location carry secrets.
"""

from subnet.storage.base import ArtifactStore, BadKey, open_store, validate_key
from subnet.storage.local import LocalDirStore
from subnet.storage.location import BadLocation, LocationPolicy, StoreLocation, parse_location
from subnet.storage.peer import (
    PeerObject,
    PeerReader,
    PeerReadOptions,
    PeerRefused,
    PeerStoreError,
    PeerTimeout,
    PeerTooLarge,
    PeerUnreachable,
    open_peer,
)

__all__ = [
    "ArtifactStore",
    "BadKey",
    "BadLocation",
    "LocalDirStore",
    "LocationPolicy",
    "PeerObject",
    "PeerReadOptions",
    "PeerReader",
    "PeerRefused",
    "PeerStoreError",
    "PeerTimeout",
    "PeerTooLarge",
    "PeerUnreachable",
    "StoreLocation",
    "open_peer",
    "open_store",
    "parse_location",
    "validate_key",
]
