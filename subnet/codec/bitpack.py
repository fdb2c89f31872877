"""Vectorised little-endian bit packing of small unsigned codes.

Codes of `nbits` bits are laid end to end (code 0 in the lowest bits of byte
0), so N codes take exactly ceil(N * nbits / 8) bytes: no byte-per-value
waste. When lcm(nbits, 8) <= 56 bits a group of codes is combined into one
int64 word and split into bytes (fast path: 1,2,4,6,8,12 bits...); other
widths go through an explicit bit matrix.
"""

from __future__ import annotations

import math

import torch

from subnet.codec.errors import BadShape, Malformed

_MAX_BITS = 24


def _check(nbits: int) -> None:
    # Typed, not ValueError: nbits comes from codec parameters a peer's header may carry.
    if isinstance(nbits, bool) or not isinstance(nbits, int) or not 1 <= nbits <= _MAX_BITS:
        raise Malformed(f"nbits must be an int in [1, {_MAX_BITS}], got {nbits!r}")


def packed_len(n: int, nbits: int) -> int:
    return math.ceil(n * nbits / 8)


def pack_bits(codes: torch.Tensor, nbits: int) -> torch.Tensor:
    """Pack a 1-D integer tensor of values in [0, 2**nbits) into uint8."""
    _check(nbits)
    codes = codes.reshape(-1).to(torch.int64)
    n = codes.numel()
    out_len = packed_len(n, nbits)
    group_bits = math.lcm(nbits, 8)
    if group_bits <= 56:
        per = group_bits // nbits
        nbytes = group_bits // 8
        pad = (-n) % per
        if pad:
            codes = torch.cat([codes, codes.new_zeros(pad)])
        shifts = torch.arange(per, dtype=torch.int64) * nbits
        words = (codes.view(-1, per) << shifts).sum(1)  # disjoint bit ranges: sum == or
        bshift = torch.arange(nbytes, dtype=torch.int64) * 8
        out = ((words.unsqueeze(1) >> bshift) & 0xFF).to(torch.uint8).reshape(-1)
        return out[:out_len].contiguous()
    bits = ((codes.unsqueeze(1) >> torch.arange(nbits, dtype=torch.int64)) & 1).to(torch.uint8).reshape(-1)
    pad = (-bits.numel()) % 8
    if pad:
        bits = torch.cat([bits, bits.new_zeros(pad)])
    weights = (1 << torch.arange(8, dtype=torch.int64))
    return (bits.view(-1, 8).to(torch.int64) * weights).sum(1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, nbits: int, n: int) -> torch.Tensor:
    """Inverse of `pack_bits`: the first `n` codes as int64. `packed` must hold exactly packed_len(n) bytes."""
    _check(nbits)
    packed = packed.reshape(-1)
    if packed.dtype != torch.uint8:
        raise Malformed(f"packed must be uint8, got {packed.dtype}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise BadShape(f"code count must be a non-negative int, got {n!r}")
    if packed.numel() != packed_len(n, nbits):
        raise BadShape(f"expected {packed_len(n, nbits)} packed bytes for {n} codes of {nbits} bits, "
                       f"got {packed.numel()}")
    group_bits = math.lcm(nbits, 8)
    if group_bits <= 56:
        per = group_bits // nbits
        nbytes = group_bits // 8
        b = packed.to(torch.int64)
        pad = (-b.numel()) % nbytes
        if pad:
            b = torch.cat([b, b.new_zeros(pad)])
        words = (b.view(-1, nbytes) << (torch.arange(nbytes, dtype=torch.int64) * 8)).sum(1)
        shifts = torch.arange(per, dtype=torch.int64) * nbits
        codes = ((words.unsqueeze(1) >> shifts) & ((1 << nbits) - 1)).reshape(-1)
        return codes[:n]
    bits = ((packed.to(torch.int64).unsqueeze(1) >> torch.arange(8, dtype=torch.int64)) & 1).reshape(-1)
    bits = bits[: n * nbits].view(n, nbits)
    return (bits << torch.arange(nbits, dtype=torch.int64)).sum(1)
