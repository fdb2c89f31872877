"""Artifact stores: a local directory (embedded default) and S3-compatible services.

`open_store(location)` turns a public location string (as committed on chain)
into an `ArtifactStore`; see base.py for the location grammar and why it never
holds credentials.
"""

from subnet.storage.base import ArtifactStore, BadKey, open_store, validate_key
from subnet.storage.local import LocalDirStore

__all__ = ["ArtifactStore", "BadKey", "LocalDirStore", "open_store", "validate_key"]
