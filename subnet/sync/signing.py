"""The lead's signatures over manifests and checkpoints, checked against the hotkey the chain names.

Authority over the shared model is the lead validator's hotkey, not write
access to its store: a manifest is signed over its canonical JSON (see
protocol.manifest), a checkpoint over SIGNED_CHECKPOINT_FIELDS of its metadata
with CHECKPOINT_DOMAIN, so neither can be replayed as the other. Verification
is a pure function of bytes and the expected hotkey; refusals are typed
SignatureError subclasses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bittensor.sp_core import Keypair

from subnet.protocol.manifest import Manifest, Signer
from subnet.sync.errors import (
    BadCheckpointSignature,
    BadManifestSignature,
    UnsignedCheckpoint,
    UnsignedManifest,
    WrongSigner,
)

CHECKPOINT_DOMAIN = b"tessera.checkpoint.v2/sign\n"
SIGNED_CHECKPOINT_FIELDS = ("schema", "netuid", "version", "last_manifest_window", "model_hash", "signer")
_SIGNATURE = re.compile(r"[0-9a-f]{128}", re.ASCII)


def _verifies(signer: str, message: bytes, signature_hex: str) -> bool:
    try:
        return bool(Keypair(ss58_address=signer).verify(message, bytes.fromhex(signature_hex)))
    except Exception:  # noqa: BLE001 - a malformed address or signature simply does not verify
        return False


def verify_manifest_signature(manifest: Manifest, expected_signer: str) -> None:
    """Raise unless `manifest` is signed by `expected_signer` over exactly its content."""
    what = f"manifest for window {manifest.window}"
    if manifest.signature is None or manifest.signer is None:
        raise UnsignedManifest(f"{what} is not signed", remediation="the lead must publish signed manifests")
    if manifest.signer != expected_signer:
        raise WrongSigner(f"{what} is signed by {manifest.signer}, the lead is {expected_signer}")
    if not _verifies(expected_signer, manifest.signing_message(), manifest.signature):
        raise BadManifestSignature(f"{what}: signature does not verify for {expected_signer} (tampered?)")


def checkpoint_signing_message(meta: Mapping[str, Any]) -> bytes:
    """CHECKPOINT_DOMAIN + canonical JSON of the signed metadata fields."""
    try:
        body = {k: meta[k] for k in SIGNED_CHECKPOINT_FIELDS}
    except KeyError as exc:
        raise UnsignedCheckpoint(f"checkpoint metadata lacks {exc.args[0]!r}") from None
    return CHECKPOINT_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False,
                                          ensure_ascii=True).encode("ascii")


def sign_checkpoint_meta(meta: Mapping[str, Any], keypair: Signer) -> dict[str, Any]:
    """`meta` plus `signer` and `signature` (the lead's key over the signed fields)."""
    out = {k: v for k, v in meta.items() if k != "signature"}
    out["signer"] = keypair.ss58_address
    out["signature"] = bytes(keypair.sign(checkpoint_signing_message(out))).hex()
    return out


def verify_checkpoint_signature(meta: Mapping[str, Any], expected_signer: str, *, what: str = "checkpoint") -> None:
    """Raise unless the checkpoint metadata is signed by `expected_signer` over its signed fields."""
    signer, signature = meta.get("signer"), meta.get("signature")
    if signer is None or signature is None:
        raise UnsignedCheckpoint(f"{what} is not signed", remediation="the lead must publish signed checkpoints")
    if not isinstance(signer, str) or not isinstance(signature, str) or not _SIGNATURE.fullmatch(signature):
        raise BadCheckpointSignature(f"{what}: signer/signature are malformed")
    if signer != expected_signer:
        raise WrongSigner(f"{what} is signed by {signer[:64]}, the lead is {expected_signer}")
    try:
        message = checkpoint_signing_message(meta)
    except (TypeError, ValueError) as exc:  # non-JSON values cannot have been signed
        raise BadCheckpointSignature(f"{what}: metadata cannot be canonicalised: {exc}") from None
    if not _verifies(expected_signer, message, signature):
        raise BadCheckpointSignature(f"{what}: signature does not verify for {expected_signer} (tampered?)")

