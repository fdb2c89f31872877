"""Sync errors: this node cannot reproduce the lead's model by applying a manifest.

Raised instead of silently forking; the caller falls back to checkpoint catch-up.
"""

from __future__ import annotations

from subnet.errors import ErrorCode, SubnetError


class SyncError(SubnetError):
    """A manifest or checkpoint could not be applied exactly; the local model is not advanced."""

    code = ErrorCode.MODEL


class ArtifactUnavailable(SyncError):
    """A selected artifact could not be fetched from its miner's store."""


class ArtifactHashMismatch(SyncError):
    """The fetched artifact's sha256 differs from the one the manifest pins."""


class ArtifactRefused(SyncError):
    """A fetched artifact does not verify or decode (pinned codec, signature, shapes, ranges...)."""


class VersionMismatch(SyncError):
    """The manifest's base version is not this node's model version."""


class ModelHashMismatch(SyncError):
    """After applying, the model hash differs from the one the lead published."""


class SignatureError(SyncError):
    """A manifest or checkpoint in the lead's store is not signed by the lead the chain names."""


class UnsignedManifest(SignatureError):
    """The manifest carries no signature."""


class BadManifestSignature(SignatureError):
    """The manifest's signature does not verify over its content for its signer."""


class UnsignedCheckpoint(SignatureError):
    """The checkpoint's metadata carries no signer or signature."""


class BadCheckpointSignature(SignatureError):
    """The checkpoint's signature does not verify over its metadata for its signer."""


class WrongSigner(SignatureError):
    """Signed, but by a hotkey other than the lead's."""


class VersionOutOfBounds(SyncError):
    """A claimed version or window exceeds what the window count allows (e.g. version 10**12)."""


class FutureWindow(VersionOutOfBounds):
    """From a window later than this node's current one: not visible yet (clock skew, or a lie)."""


class Diverged(SyncError):
    """This node's state is not on the lead's signed history and there is nothing to reset it to."""


class PolicyViolation(SyncError):
    """A correctly signed manifest that no honest lead would publish under this subnet's settings."""
