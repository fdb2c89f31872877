"""The artifact store seam: a few `str`-keyed methods and a location parser.

A miner publishes its store location on chain (its commitment), so a location
string is public: it names a place (`file:///path`, `s3://bucket/prefix?
endpoint=...&region=...`) and never carries secrets. S3 credentials come from
the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY env vars,
~/.aws/credentials, AWS_PROFILE); a location with credential-looking query
parameters is refused. `get` returns None for "absent" (missing, truncated,
or over the caller's size limit: late or broken uploads are a scored outcome,
not an exception); transport failures that survive retries raise StorageError.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

from subnet.errors import ConfigError, StorageError

MAX_KEY_LEN = 512
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=-]*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SECRET_PARAMS = ("secret", "access_key", "password", "token", "credential", "key_id", "signature")


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
            raise BadKey(f"invalid key {key[:80]!r}: segment {seg[:40]!r} not allowed (letters, digits, ._=- ; no leading dot)")
    return key


def validate_prefix(prefix: str) -> str:
    """A list prefix: empty, or a key possibly ending with '/' (validated without the slash)."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def open_store(location: str) -> ArtifactStore:
    """`file:///abs/path` or a plain path -> LocalDirStore; `s3://bucket/prefix?endpoint=&region=` -> S3Store."""
    if not isinstance(location, str) or not location.strip():
        raise ConfigError("store location is empty")
    parts = urlsplit(location)
    if parts.scheme == "s3":
        from subnet.storage.s3 import S3Store  # boto3 is imported only when an S3 store is used

        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        for name in query:
            if any(s in name.lower() for s in _SECRET_PARAMS):
                raise ConfigError(f"store location must not carry credentials ({name!r}); it is published on chain",
                                  remediation="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment")
        unknown = set(query) - {"endpoint", "region", "addressing"}
        if unknown:
            raise ConfigError(f"unknown s3 location parameter(s) {sorted(unknown)}")
        if parts.username or parts.password:
            raise ConfigError("store location must not carry credentials (user:password@)")
        if not _BUCKET.match(parts.netloc):
            raise ConfigError(f"s3 location {location!r} needs a valid bucket name (3-63 of a-z 0-9 . -)")
        one = {k: v[-1] for k, v in query.items()}
        prefix = unquote(parts.path).strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except BadKey as e:
                raise ConfigError(f"s3 location {location!r} has an invalid prefix: {e}") from None
        return S3Store(bucket=parts.netloc, prefix=prefix, endpoint_url=one.get("endpoint") or None,
                       region=one.get("region") or None, addressing=one.get("addressing") or None)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"file location {location!r} must be file:///absolute/path")
        from subnet.storage.local import LocalDirStore

        return LocalDirStore(Path(unquote(parts.path)))
    if parts.scheme and len(parts.scheme) > 1:  # allow Windows drive letters like C:\
        raise ConfigError(f"unsupported store scheme {parts.scheme!r} in {location!r} (use file:// or s3://)")
    from subnet.storage.local import LocalDirStore

    return LocalDirStore(Path(location).expanduser())
