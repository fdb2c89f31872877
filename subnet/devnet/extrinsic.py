"""Signed devnet extrinsics: what the caller signs, and how the node checks it.

A devnet extrinsic is a JSON object: the call (module, function, params), the
signer's ss58 address, its nonce, a mortal era (birth block, period) and the
genesis hash. The sr25519 signature covers the blake2b-256 digest of the
canonical JSON of all of these, under a domain tag, so a signature from one
devnet (or one call) cannot be replayed on another. The node refuses a bad
signature (`BadProof`), a used nonce (`Stale`), a nonce ahead of the account
(`Future`) and an expired era (`Stale`), as a real transaction pool would.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import bittensor_core

from subnet.devnet.codec import canonical, hash_hex

DOMAIN = b"tessera-devnet/extrinsic/v1:"


@dataclass(frozen=True, kw_only=True)
class Extrinsic:
    """One signed extrinsic in wire form (params already codec-encoded)."""

    module: str
    function: str
    params: dict
    signer: str
    nonce: int
    era_birth: int
    era_period: int
    genesis_hash: str
    signature: str = ""  # 0x-hex sr25519 signature over `signing_digest()`

    def unsigned_body(self) -> dict[str, Any]:
        return {
            "call": {"module": self.module, "function": self.function, "params": self.params},
            "signer": self.signer,
            "nonce": int(self.nonce),
            "era": {"birth": int(self.era_birth), "period": int(self.era_period)},
            "genesis_hash": self.genesis_hash,
        }

    def signing_digest(self) -> bytes:
        return blake2b(DOMAIN + canonical(self.unsigned_body()), digest_size=32).digest()

    def to_wire(self) -> dict[str, Any]:
        return {**self.unsigned_body(), "signature": self.signature}

    @property
    def hash(self) -> str:
        """The extrinsic hash (covers the signature, like a substrate extrinsic hash)."""
        return hash_hex(canonical(self.to_wire()))

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Extrinsic:
        try:
            call = data["call"]
            era = data.get("era") or {}
            return cls(
                module=str(call["module"]),
                function=str(call["function"]),
                params=dict(call.get("params") or {}),
                signer=str(data["signer"]),
                nonce=int(data["nonce"]),
                era_birth=int(era.get("birth", 0)),
                era_period=int(era.get("period", 0)),
                genesis_hash=str(data["genesis_hash"]),
                signature=str(data.get("signature") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed extrinsic: {exc}") from exc

    def verify_signature(self) -> bool:
        """True when `signature` is the signer's sr25519 signature of this body."""
        try:
            sig = bytes.fromhex(self.signature.removeprefix("0x"))
            return bool(bittensor_core.verify(self.signing_digest(), sig, self.signer))
        except Exception:  # malformed address or signature bytes are just a bad proof
            return False


def sign(
    *,
    module: str,
    function: str,
    params: dict,
    keypair: Any,
    nonce: int,
    era_birth: int,
    era_period: int,
    genesis_hash: str,
) -> Extrinsic:
    """Build and sign an extrinsic with the caller's keypair (anything with `.sign`)."""
    ext = Extrinsic(
        module=module,
        function=function,
        params=params,
        signer=keypair.ss58_address,
        nonce=nonce,
        era_birth=era_birth,
        era_period=era_period,
        genesis_hash=genesis_hash,
    )
    signature = keypair.sign(ext.signing_digest())
    if isinstance(signature, str):
        signature = bytes.fromhex(signature.removeprefix("0x"))
    return Extrinsic(**{**ext.__dict__, "signature": "0x" + bytes(signature).hex()})
