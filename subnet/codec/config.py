"""Codec parameters shared by the encoder, the decoder and the wire format.

Defaults follow SparseLoCo's production point (top 64 of 4096-element chunks
= 1.56 % density, 2-bit values): with bit-packed 12-bit indices, 2-bit values
and two bf16 scales per chunk that is 0.227 bits/param with 12-bit indices.
Indices cost 8 bits instead of 12 with the sub-block occupancy coding of
indexcode.py, so the default lands at 0.164 bits/param before the container.
A 64-element chunk (6-bit indices) looks cheaper but its per-chunk scales alone
would cost 0.25-0.5 bits/param, so the chunk is a parameter, not a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from subnet.codec.errors import Malformed
from subnet.codec.indexcode import best_sub_block_bits

MAX_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class CodecConfig:
    """Parameters of the SparseLoCo-style codec.

    chunk: elements per top-k chunk of a flattened tensor (2..2**20); the last
        partial chunk of a tensor keeps a proportional k (at least `min_tail_k`).
    topk: entries kept per full chunk (density = topk / chunk).
    value_bits: bits per kept value, 1 sign bit + (value_bits-1) magnitude bits (1..8).
    ef_decay: error-feedback decay (ef = decay * ef + pseudo_grad); encoder only.
    min_tail_k: lower bound on k for a partial chunk (small 1-D tensors).
    """

    chunk: int = 4096
    topk: int = 64
    value_bits: int = 2
    ef_decay: float = 0.95
    min_tail_k: int = 1

    def __post_init__(self) -> None:
        validate_params(self.chunk, self.topk, self.value_bits, self.min_tail_k)
        if not 0.0 <= self.ef_decay <= 1.0:
            raise Malformed(f"ef_decay must be in [0, 1], got {self.ef_decay}")

    @property
    def index_bits(self) -> int:
        """Bits per packed index: enough for positions 0..chunk-1."""
        return max(1, (self.chunk - 1).bit_length())

    @property
    def sub_block_bits(self) -> int | None:
        """log2 of the index sub-block size, or None for plain fixed-width indices (indexcode.py)."""
        return best_sub_block_bits(self.chunk, self.topk)

    @property
    def offset_bits(self) -> int:
        """Bits per packed index offset (the in-sub-block position, or the whole index)."""
        s = self.sub_block_bits
        return self.index_bits if s is None else s

    @property
    def scales_per_chunk(self) -> int:
        """1 (mean magnitude) for sign-only values, else 2 (lowest, highest level)."""
        return 1 if self.value_bits == 1 else 2

    @property
    def density(self) -> float:
        return self.topk / self.chunk


def validate_params(chunk: int, topk: int, value_bits: int, min_tail_k: int = 1) -> None:
    """Range-check codec integers (also used on untrusted header values).

    Besides the ranges, refuses combinations the index coding cannot carry:
    topk == chunk (nothing to select) and densities so high that the best
    sub-block size is 1 element (0-bit offsets; about topk/chunk > 0.44). No
    honest SparseLoCo setting is near either, and refusing them here, with a
    typed error, keeps a peer's header from reaching bitpack with nbits = 0.
    """
    for name, v in (("chunk", chunk), ("topk", topk), ("value_bits", value_bits), ("min_tail_k", min_tail_k)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise Malformed(f"codec {name} must be an int, got {type(v).__name__}")
    if not 2 <= chunk <= MAX_CHUNK:
        raise Malformed(f"codec chunk must be in [2, {MAX_CHUNK}], got {chunk}")
    if not 1 <= topk < chunk:
        raise Malformed(f"codec topk must be in [1, chunk={chunk}), got {topk}")
    if not 1 <= value_bits <= 8:
        raise Malformed(f"codec value_bits must be in [1, 8], got {value_bits}")
    if not 1 <= min_tail_k <= chunk:
        raise Malformed(f"codec min_tail_k must be in [1, chunk], got {min_tail_k}")
    if best_sub_block_bits(chunk, topk) == 0:
        raise Malformed(f"codec topk={topk} of chunk={chunk} is too dense for the index coding (0-bit offsets)")
