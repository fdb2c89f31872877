"""Sync errors: this node cannot reproduce the lead's model by applying a manifest.

Raised instead of silently forking; the caller falls back to checkpoint catch-up.
"""

from __future__ import annotations

from subnet.errors import SubnetError, ErrorCode


class SyncError(SubnetError):
    """A manifest or checkpoint could not be applied exactly; the local model is not advanced."""

    code = ErrorCode.MODEL


class ArtifactUnavailable(SyncError):
    """A selected artifact could not be fetched from its miner's store."""


class ArtifactHashMismatch(SyncError):
    """The fetched artifact's sha256 differs from the one the manifest pins."""


class VersionMismatch(SyncError):
    """The manifest's base version is not this node's model version."""


class ModelHashMismatch(SyncError):
    """After applying, the model hash differs from the one the lead published."""
