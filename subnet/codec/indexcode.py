"""Index coding: sub-block occupancy (unary) + fixed-width offsets.

A chunk of C elements with k kept, ascending positions is split into
sub-blocks of S = 2**s elements. Each kept position is sent as its s-bit
offset inside its sub-block; which sub-block it is in is sent once per chunk
as an occupancy bitmap in unary: for every sub-block, one 1-bit per kept entry
then a 0. That is k + ceil(C/S) bits per chunk, a fixed size, so everything
stays vectorised and the layout stays a pure function of the shapes. With
C=4096, k=64, S=64 it costs 8 bits per index instead of 12 (the entropy bound
log2(C(4096,64))/64 is 7.4). S is picked per (C, k) to minimise total bits.

Decoding validates what a hostile file could break: exactly k ones per
chunk, no one after the last sub-block's terminator, positions inside the
(possibly partial) chunk, strictly ascending positions.
"""

from __future__ import annotations

import math

import torch

from subnet.codec.errors import BadIndex


def index_bits(chunk: int) -> int:
    return max(1, (chunk - 1).bit_length())


def best_sub_block_bits(chunk: int, k: int) -> int | None:
    """log2 of the sub-block size minimising k*s + k + ceil(chunk / 2**s) (smallest s on ties),
    or None when plain fixed-width indices (k * index_bits) are no larger (small k)."""
    top = index_bits(chunk)
    s = min(range(top + 1), key=lambda s: (k * s + k + math.ceil(chunk / (1 << s)), s))
    return None if k * top <= k * s + k + math.ceil(chunk / (1 << s)) else s


def offset_bits(chunk: int, s: int | None) -> int:
    return index_bits(chunk) if s is None else s


def occupancy_bits(rows: int, k: int, row_len: int, s: int | None) -> int:
    return 0 if s is None else rows * (k + math.ceil(row_len / (1 << s)))


def encode_group(ix: torch.Tensor, row_len: int, s: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ascending positions (rows, k) -> (offset codes (rows*k,), occupancy bits (rows*(k+n_sub),) as int64)."""
    rows, k = ix.shape
    if s is None:
        return ix.reshape(-1), ix.new_zeros(0)
    n_sub = math.ceil(row_len / (1 << s))
    sub = ix >> s
    occ = torch.zeros(rows, k + n_sub, dtype=torch.int64)
    occ.scatter_(1, torch.arange(k, dtype=torch.int64) + sub, 1)  # entry i sits after the sub[i] zeros before it
    offsets = ix & ((1 << s) - 1)
    return offsets.reshape(-1), occ.reshape(-1)


def decode_group(offsets: torch.Tensor, occ: torch.Tensor, rows: int, k: int, row_len: int, s: int | None,
                 what: str = "tensor") -> torch.Tensor:
    """Inverse of `encode_group`, refusing anything an encoder could not have produced (BadIndex)."""
    if s is None:
        ix = offsets.view(rows, k)
    else:
        n_sub = math.ceil(row_len / (1 << s))
        bits = occ.view(rows, k + n_sub)
        ones = bits.sum(1)
        if not bool((ones == k).all()):
            raise BadIndex(f"{what}: a chunk's occupancy map holds {int(ones[ones != k][0])} entries, expected {k}")
        pos = bits.nonzero()[:, 1].view(rows, k)
        sub = pos - torch.arange(k, dtype=torch.int64)
        if int(sub.max()) >= n_sub:
            raise BadIndex(f"{what}: occupancy map places an entry past the last sub-block")
        ix = (sub << s) | offsets.view(rows, k)
    if int(ix.max()) >= row_len:
        raise BadIndex(f"{what}: index {int(ix.max())} out of range for a chunk of {row_len}")
    if k > 1 and not bool((ix[:, 1:] > ix[:, :-1]).all()):
        raise BadIndex(f"{what}: indices within a chunk are repeated or not ascending")
    return ix
