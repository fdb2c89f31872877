"""MEV shield on the Substrate face: the devnet as the block author that decrypts `submit_encrypted`.

Subtensor's `pallet_shield` (opentensor/subtensor 14bc6f9, `pallets/shield`):
users read the ML-KEM-768 encapsulation key `MevShield.NextKey`, sign their
extrinsic, encrypt it and submit `MevShield.submit_encrypted(ciphertext)` with

    ciphertext = twox128(key) (16) || kem_len (u16 LE) || kem_ct || nonce (24) || XChaCha20-Poly1305(ss, nonce, xt)

(the raw ML-KEM shared secret is the AEAD key, no KDF, empty AAD: the SDK's
`bittensor_core.encrypt_mlkem768`, KDF id `v1`). The block author decrypts and
includes the inner extrinsic right after the carrier, where it is checked like
any other extrinsic. Malformed structure is refused by the pool
(`CheckShieldedTxValidity`: `InvalidTransaction::Custom(23)`); a well-formed
ciphertext the author cannot open, or whose inner extrinsic is invalid, leaves
the carrier included on its own.

The devnet is the only author. Its keys rotate every `KEY_ROTATION_BLOCKS`
blocks and each is accepted for two rotations (the pallet's N+2 pipeline gives
two block periods, 12-24 s on finney; subtensor's own single-author dev node
freezes one key). Every key is derived from one 32-byte secret kept next to
the chain state (written once with `subnet/atomic.py`, mode 0600), so a
restart, also after kill -9, decrypts what was encrypted to the keys it served
before, and block-pinned reads of `NextKey` stay consistent.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from hashlib import blake2b
from pathlib import Path
from typing import TypeVar

import xxhash
from bittensor.sp_core import ss58_decode
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from loguru import logger

from subnet.atomic import write_bytes_atomic
from subnet.devnet.codec import from_wire, to_wire
from subnet.devnet.extrinsic import Extrinsic
from subnet.devnet.node import Node, PoolRejection
from subnet.devnet.substrate_rpc import scale

KEY_ROTATION_BLOCKS = 10
SECRET_FILE = "mev-shield.secret"
ENC_KEY_BYTES = 1184  # MLKEM768_ENC_KEY_LEN
MAX_CIPHERTEXT = 8192  # submit_encrypted's BoundedVec<u8, ConstU32<8192>>
FAILED_SHIELDED_TX_PARSING = 23  # CustomTransactionError::FailedShieldedTxParsing (common/src/transaction_error.rs)
_KEY_HASH, _KEM_LEN, _NONCE = 16, 2, 24
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")
E = TypeVar("E", bound=Extrinsic)


class MalformedCiphertext(ValueError):
    """Bytes that do not parse as a `ShieldedTransaction`; the pool refuses the carrier."""


class Unshield(enum.Enum):
    """What the author made of a well-formed ciphertext."""

    DECRYPTED = "decrypted"
    UNKNOWN_KEY = "unknown_key"  # not encrypted to a key the author still holds (expired or foreign)
    UNDECRYPTABLE = "undecryptable"  # right key hash, but decapsulation or the AEAD tag fails


@dataclass(frozen=True)
class ShieldedTransaction:
    key_hash: bytes
    kem_ct: bytes
    nonce: bytes
    aead_ct: bytes

    @classmethod
    def parse(cls, data: bytes) -> ShieldedTransaction:
        """`stp_shield::ShieldedTransaction::parse`: the fixed-length fields must all be present."""
        if len(data) > MAX_CIPHERTEXT:
            raise MalformedCiphertext(f"ciphertext of {len(data)} bytes exceeds {MAX_CIPHERTEXT}")
        if len(data) < _KEY_HASH + _KEM_LEN:
            raise MalformedCiphertext("ciphertext shorter than its key hash and KEM length")
        (kem_len,) = struct.unpack_from("<H", data, _KEY_HASH)
        start = _KEY_HASH + _KEM_LEN
        if len(data) < start + kem_len + _NONCE:
            raise MalformedCiphertext(f"ciphertext truncated (KEM length {kem_len})")
        kem_ct = data[start:start + kem_len]
        nonce = data[start + kem_len:start + kem_len + _NONCE]
        return cls(data[:_KEY_HASH], kem_ct, nonce, data[start + kem_len + _NONCE:])


def twox128(data: bytes) -> bytes:
    """Substrate's `twox_128`: two xxh64 (seeds 0 and 1), each little-endian."""
    return xxhash.xxh64(data, seed=0).intdigest().to_bytes(8, "little") + \
        xxhash.xxh64(data, seed=1).intdigest().to_bytes(8, "little")


def _hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 from one ChaCha20 block: the block minus its input state is the bare rounds."""
    block = Cipher(algorithms.ChaCha20(key, nonce16), mode=None).encryptor().update(bytes(64))
    out = struct.unpack("<16I", block)
    state = _SIGMA + struct.unpack("<8I", key) + struct.unpack("<4I", nonce16)
    words = [(out[i] - state[i]) & 0xFFFFFFFF for i in (0, 1, 2, 3, 12, 13, 14, 15)]
    return struct.pack("<8I", *words)


def xchacha20poly1305_decrypt(key: bytes, nonce24: bytes, data: bytes) -> bytes:
    """XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) over `cryptography`'s ChaCha20-Poly1305; raises InvalidTag."""
    return ChaCha20Poly1305(_hchacha20(key, nonce24[:16])).decrypt(b"\x00" * 4 + nonce24[16:], data, None)


class ShieldKeys:
    """The author's ML-KEM-768 keys, one per rotation, all derived from a persisted secret."""

    def __init__(self, directory: Path, *, rotation_blocks: int = KEY_ROTATION_BLOCKS) -> None:
        if rotation_blocks < 1:
            raise ValueError("rotation_blocks must be >= 1")
        self.rotation_blocks = rotation_blocks
        path = Path(directory) / SECRET_FILE
        if path.exists():
            secret = path.read_bytes()
            if len(secret) != 32:
                raise ValueError(f"{path}: expected a 32-byte MEV-shield secret, found {len(secret)} bytes")
        else:
            secret = os.urandom(32)
            write_bytes_atomic(path, secret, mode=0o600)
        self._secret = secret
        self._private = lru_cache(maxsize=8)(self._derive)

    def _derive(self, rotation: int) -> mlkem.MLKEM768PrivateKey:
        seed = blake2b(rotation.to_bytes(8, "little"), key=self._secret, digest_size=64,
                       person=b"tessera-mevkey").digest()
        return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)

    def rotation(self, block: int) -> int:
        return max(0, block) // self.rotation_blocks

    def public(self, rotation: int) -> bytes:
        return self._private(rotation).public_key().public_bytes_raw()

    # -- storage as the pallet names it, for the state after block `head` --------

    def storage(self, item: str, head: int) -> bytes | int | None:
        """`MevShield.{NextKey, PendingKey, CurrentKey, NextKeyExpiresAt, PendingKeyExpiresAt}` at `head`."""
        building = self.rotation(head + 1)  # the rotation of the next block, which a submission lands in
        if item == "NextKey":
            return self.public(building)
        if item == "NextKeyExpiresAt":  # exclusive: accepted through the following rotation
            return (building + 2) * self.rotation_blocks
        if item in ("PendingKey", "PendingKeyExpiresAt"):
            if building == 0:
                return None
            return self.public(building - 1) if item == "PendingKey" else (building + 1) * self.rotation_blocks
        if item == "CurrentKey":
            return self.public(self.rotation(head))
        return None

    # -- the author's side -----------------------------------------------------------

    def unshield(self, shielded: ShieldedTransaction, block: int) -> tuple[Unshield, bytes | None]:
        """Decrypt for inclusion in `block`: with this rotation's key or the previous one."""
        now = self.rotation(block)
        for rotation in (now, now - 1):
            if rotation < 0 or twox128(self.public(rotation)) != shielded.key_hash:
                continue
            try:
                secret = self._private(rotation).decapsulate(shielded.kem_ct)
                return Unshield.DECRYPTED, xchacha20poly1305_decrypt(secret, shielded.nonce, shielded.aead_ct)
            except (ValueError, InvalidTag):  # wrong-length KEM ciphertext, or a failed tag
                return Unshield.UNDECRYPTABLE, None
        return Unshield.UNKNOWN_KEY, None


class Inner(enum.Enum):
    """What became of a carrier's inner extrinsic (the carrier itself is included either way)."""

    POOLED = "pooled"  # decrypted, verified, in the pool right after its carrier
    UNKNOWN_KEY = "unknown_key"
    UNDECRYPTABLE = "undecryptable"
    INVALID = "invalid"  # decrypted, but not a valid signed extrinsic of this runtime (or refused by the pool)


def carrier(ext: E) -> tuple[E, ShieldedTransaction] | None:
    """For a `MevShield.submit_encrypted` extrinsic: it with its ciphertext in wire form, and the parsed ciphertext.

    None for any other call; `MalformedCiphertext` where the pool's `CheckShieldedTxValidity` would refuse it.
    """
    if (ext.module, ext.function) != ("MevShield", "submit_encrypted"):
        return None
    raw = ext.params.get("ciphertext")
    if isinstance(raw, str):
        try:
            raw = bytes.fromhex(raw.removeprefix("0x"))
        except ValueError:
            raise MalformedCiphertext("ciphertext is not hex") from None
    elif isinstance(raw, (list, tuple)):
        raw = bytes(raw)
    if not isinstance(raw, (bytes, bytearray)):
        raise MalformedCiphertext("ciphertext must be bytes")
    raw = bytes(raw)
    shielded = ShieldedTransaction.parse(raw)
    return replace(ext, params={**ext.params, "ciphertext": to_wire(raw)}), shielded  # params stay in wire form


def admit_inner(keys: ShieldKeys, node: Node, shielded: ShieldedTransaction,
                decode: Callable[[bytes], Extrinsic]) -> Inner:
    """As the author of the next block: decrypt, verify like any extrinsic, pool it right after its carrier.

    Call with no await since the carrier was pooled, so nothing lands between them. `decode` turns the
    plaintext into a verified extrinsic or raises ValueError (the face's `extrinsics.decode`).
    """
    outcome, plaintext = keys.unshield(shielded, node.head.number + 1)
    if outcome is not Unshield.DECRYPTED or plaintext is None:
        logger.info("mev shield: carrier left without its inner extrinsic ({})", outcome.value)
        return Inner(outcome.value)
    try:
        inner = decode(plaintext)
        node.submit(inner).add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
    except (ValueError, PoolRejection) as exc:  # BadExtrinsic is a ValueError
        logger.info("mev shield: decrypted inner extrinsic dropped: {}", exc)
        return Inner.INVALID
    except Exception as exc:  # hostile plaintext the codec chokes on differently: still only the sender's loss
        logger.warning("mev shield: decrypted inner extrinsic dropped ({}: {})", type(exc).__name__, exc)
        return Inner.INVALID
    return Inner.POOLED


def submitted_event(receipt: dict) -> dict | None:
    """`MevShield.EncryptedSubmitted { id, who }` for a carrier's successful receipt, else None.

    `id` is the pallet's `T::Hashing::hash_of(&(who, &ciphertext))`: blake2-256 of the SCALE pair.
    """
    wire = receipt.get("extrinsic") or {}
    call = wire.get("call") or {}
    if not receipt.get("success") or (call.get("module"), call.get("function")) != ("MevShield", "submit_encrypted"):
        return None
    ciphertext = from_wire((call.get("params") or {}).get("ciphertext"))
    who = wire.get("signer")
    if not isinstance(ciphertext, bytes) or not isinstance(who, str):
        return None
    encoded = ss58_decode(who) + scale.compact(len(ciphertext)) + ciphertext
    event_id = "0x" + blake2b(encoded, digest_size=32).hexdigest()
    return {"MevShield": {"EncryptedSubmitted": {"id": event_id, "who": who}}}
