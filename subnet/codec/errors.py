"""Typed refusals for artifacts read from the network.

Every reason a peer's file is refused has its own class so the validator can
log and score the failure precisely; all derive from `ArtifactError` so a
caller can catch the whole family in one place. Nothing here is raised for a
bug in our own code: those stay ordinary exceptions.
"""

from __future__ import annotations

from subnet.errors import ErrorCode, SubnetError


class ArtifactError(SubnetError):
    """An artifact (or encoded update) was refused."""

    code = ErrorCode.ARTIFACT


class TooLarge(ArtifactError):
    """The file (or its header) is bigger than the caller allows."""


class Malformed(ArtifactError):
    """Not a well-formed Tessera safetensors artifact (wrong container, bad JSON, bad dtype...)."""


class Truncated(Malformed):
    """The file ends before the byte ranges its header promises."""


class BadSignature(ArtifactError):
    """The sr25519 signature does not verify for the expected hotkey."""


class BadPayloadHash(ArtifactError):
    """The tensor bytes do not hash to the signed payload sha256 (tampered payload)."""


class WrongHotkey(ArtifactError):
    """The artifact claims a different hotkey than the one we expected."""


class HeaderMismatch(ArtifactError):
    """A header field (netuid, window, fragment, base version, codec) differs from what was expected."""


class BadShape(ArtifactError):
    """Tensor names/shapes or packed sizes do not match the expected fragment layout."""


class BadIndex(ArtifactError):
    """A packed index is out of range for its chunk or repeats within a chunk."""


class NonFinite(ArtifactError):
    """A scale decodes to NaN or infinity."""


class ValueOutOfRange(ArtifactError):
    """A scale is negative, unordered, or above the allowed magnitude bound."""
