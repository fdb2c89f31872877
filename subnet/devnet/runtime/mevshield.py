"""MevShield.submit_encrypted accepted as a carrier, never decrypted.

The SDK encrypts the inner signed extrinsic to `NextKey` (ML-KEM-768). The
devnet hands out a dummy key and cannot decrypt; `DevnetSubstrate` sends the
inner extrinsic (separately signed and verified) alongside the carrier and the
node includes it right after the carrier, as a block author would after
decryption. See contrib/DEVNET.md.
"""

from __future__ import annotations

from typing import Any

from subnet.devnet.runtime.base import DispatchError, call
from subnet.devnet.runtime.chain import Runtime

MAX_CIPHERTEXT = 8192


@call("MevShield", "submit_encrypted")
def submit_encrypted(rt: Runtime, origin: str, ciphertext: Any = None, **_extra: Any) -> None:
    if not isinstance(ciphertext, (bytes, bytearray)) or not ciphertext:
        raise DispatchError("InvalidValue", "ciphertext must be non-empty bytes")
    if len(ciphertext) > MAX_CIPHERTEXT:
        raise DispatchError("InvalidValue", "ciphertext too large")
    rt.deposit_event("MevShield", "EncryptedSubmitted", {"who": origin, "bytes": len(ciphertext)})
