"""Windows: block ranges that pace training, and the seeds drawn from them.

A window is `window_blocks` consecutive blocks starting at `start_block`.
Window `w`'s seed is `seed_from_hash(hash of window_start(w))`; the held-out
pages of window `w` come from window `w+1`'s seed, unknown while miners train.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from subnet.errors import ProtocolError


@dataclass(frozen=True, kw_only=True)
class WindowParams:
    """Window geometry.

    window_blocks: blocks per window (>= 1).
    start_block: first block of window 0 (>= 0); earlier blocks belong to no window.
    """

    window_blocks: int
    start_block: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.window_blocks, int) or self.window_blocks < 1:
            raise ProtocolError(f"window_blocks must be an int >= 1, got {self.window_blocks!r}")
        if not isinstance(self.start_block, int) or self.start_block < 0:
            raise ProtocolError(f"start_block must be an int >= 0, got {self.start_block!r}")


def window_of(block: int, p: WindowParams) -> int:
    """Index of the window that contains `block`."""
    if block < p.start_block:
        raise ProtocolError(f"block {block} precedes start_block {p.start_block}")
    return (block - p.start_block) // p.window_blocks


def window_start(w: int, p: WindowParams) -> int:
    """First block of window `w` (its hash is the window's seed)."""
    if w < 0:
        raise ProtocolError(f"window index must be >= 0, got {w}")
    return p.start_block + w * p.window_blocks


def window_end(w: int, p: WindowParams) -> int:
    """First block after window `w` (exclusive end) == window_start(w + 1)."""
    return window_start(w, p) + p.window_blocks


def seed_from_hash(block_hash: str | bytes) -> int:
    """64-bit seed from a block hash ("0x..." hex string or raw bytes).

    Hashing again (blake2b, personalised) rather than truncating keeps the seed
    uniform even if a chain's hashes have structure.
    """
    if isinstance(block_hash, str):
        text = block_hash[2:] if block_hash[:2].lower() == "0x" else block_hash
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise ProtocolError(f"block hash is not hex: {block_hash!r}") from exc
    elif isinstance(block_hash, (bytes, bytearray)):
        raw = bytes(block_hash)
    else:
        raise ProtocolError(f"block hash must be str or bytes, got {type(block_hash).__name__}")
    if not raw:
        raise ProtocolError("block hash is empty")
    digest = hashlib.blake2b(raw, digest_size=8, person=b"tessera-seed").digest()
    return int.from_bytes(digest, "big")
