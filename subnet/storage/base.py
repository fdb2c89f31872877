"""The artifact store seam: a few `str`-keyed methods and a location parser.

A miner publishes its store location on chain (its commitment), so a location
string is public: it names a place (`file:///path`, `s3://bucket/prefix?
endpoint=...&region=...`) and never carries secrets. S3 credentials come from
the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY env vars,
~/.aws/credentials, AWS_PROFILE) and are used only for our own store; the
location grammar (location.py) refuses credential-looking parameters. `get`
returns None for "absent" (missing, truncated, or over the caller's size
limit: late or broken uploads are a scored outcome, not an exception);
transport failures that survive retries raise StorageError.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from subnet.errors import StorageError

MAX_KEY_LEN = 512
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=-]*$")


@runtime_checkable
class ArtifactStore(Protocol):
    """Blob store for artifacts, manifests and checkpoints, addressed by relative keys."""

    @property
    def location(self) -> str: ...

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str, max_bytes: int) -> bytes | None: ...

    def exists(self, key: str) -> bool: ...

    def modified(self, key: str) -> float | None:
        """When the object was last written (unix seconds, the store's clock), None if absent."""
        ...

    def list(self, prefix: str = "") -> list[str]: ...

    def delete(self, key: str) -> None: ...


class BadKey(StorageError):
    """A key that could escape the store or is not in the allowed alphabet."""


def validate_key(key: str) -> str:
    """Refuse keys that are absolute, contain '..'/'.' segments, backslashes or odd characters."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LEN:
        raise BadKey(f"key must be a non-empty string of at most {MAX_KEY_LEN} characters")
    for seg in key.split("/"):
        if not _SEGMENT.match(seg) or seg in (".", ".."):
            raise BadKey(f"invalid key {key[:80]!r}: segment {seg[:40]!r} not allowed "
                         "(letters, digits, ._=- ; no leading dot)")
    return key


def validate_prefix(prefix: str) -> str:
    """A list prefix: empty, or a key possibly ending with '/' (validated without the slash)."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def open_store(location: str, s3: Any = None) -> ArtifactStore:
    """Our OWN store from our config: `file:///abs/path`, a plain path, or `s3://bucket/prefix?endpoint=&region=`.

    Goes through the same grammar as peers' locations (subnet/storage/location.py)
    with the own-store policy: any endpoint (http://127.0.0.1 for MinIO), local
    and ~ paths. Peers' stores are opened with subnet/storage/peer.py instead,
    which never uses this node's credentials. ``s3``: `S3Options` for an S3
    location (``S3Options.from_store_config(cfg.store)``); None: its defaults.
    """
    from subnet.storage.location import LocationPolicy, S3Location, parse_location

    parsed = parse_location(location, LocationPolicy.own_store())
    if isinstance(parsed, S3Location):
        from subnet.storage.s3 import S3Store  # boto3 is imported only when an S3 store is used

        return S3Store(bucket=parsed.bucket, prefix=parsed.prefix,
                       endpoint_url=parsed.endpoint.url if parsed.endpoint else None,
                       region=parsed.region, addressing=parsed.addressing, options=s3)
    from subnet.storage.local import LocalDirStore

    return LocalDirStore(Path(parsed.path).expanduser())
