"""Typed refusals of the shard data path (all `DataError`s).

A page set whose shard cannot be had, or whose bytes are not the pinned ones,
fails with one of these for that page set only; nothing downstream ever sees
different data than the manifest names.
"""

from __future__ import annotations

from subnet.errors import DataError


class ShardError(DataError):
    """A shard could not be used; the message names the shard and the store."""


class ShardMissing(ShardError):
    """The store does not have the shard (or it is larger than the manifest says)."""


class ShardCorrupt(ShardError):
    """The shard's bytes do not hash to the manifest's sha256 (or have the wrong length)."""


class ShardUnavailable(ShardError):
    """The store could not be read (timeout, connection, refusal) after the reader's retries."""


class ManifestError(DataError):
    """The shard manifest is missing, malformed, or not the one this node pins."""


class ManifestMismatch(ManifestError):
    """The manifest's bytes hash to another value than the pinned `--data.manifest_sha256`,
    or it describes other data than this node's model expects (vocab, tokenizer)."""
