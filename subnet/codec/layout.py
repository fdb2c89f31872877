"""Where each tensor's kept entries live in the packed streams.

The layout is a pure function of (names, shapes, codec config), so the
encoder, the decoder and the validator's size check agree without trusting
anything a peer sends. Tensors are flattened and cut into `chunk`-element
chunks; full chunks keep `topk`, a trailing partial chunk keeps a
proportional k (at least `min_tail_k`, at most its length).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from subnet.codec.config import CodecConfig
from subnet.codec.errors import BadShape
from subnet.codec.indexcode import occupancy_bits


@dataclass(frozen=True, kw_only=True)
class TensorLayout:
    """One tensor's share of the packed entry and chunk streams."""

    name: str
    shape: tuple[int, ...]
    numel: int
    n_full: int  # full chunks
    tail: int  # elements in the trailing partial chunk (0 = none)
    k_full: int
    k_tail: int
    entry_offset: int  # first kept entry of this tensor in the entry stream
    chunk_offset: int  # first chunk of this tensor in the scale stream
    occ_offset: int  # first bit of this tensor in the index-occupancy stream
    occ_bits: int

    @property
    def n_chunks(self) -> int:
        return self.n_full + (1 if self.tail else 0)

    @property
    def n_entries(self) -> int:
        return self.n_full * self.k_full + self.k_tail


@dataclass(frozen=True, kw_only=True)
class Layout:
    tensors: tuple[TensorLayout, ...]
    n_entries: int
    n_chunks: int
    n_params: int
    n_occ_bits: int

    def packed_sizes(self, cfg: CodecConfig) -> dict[str, int]:
        """Exact byte lengths of the packed offset / occupancy / value / scale tensors."""
        return {
            "idx": math.ceil(self.n_entries * cfg.offset_bits / 8),
            "occ": math.ceil(self.n_occ_bits / 8),
            "val": math.ceil(self.n_entries * cfg.value_bits / 8),
            "scale": self.n_chunks * cfg.scales_per_chunk * 2,
        }


def tail_k(tail: int, cfg: CodecConfig) -> int:
    """k for a partial chunk of `tail` elements: proportional to density, rounded up."""
    if tail == 0:
        return 0
    return min(tail, max(cfg.min_tail_k, math.ceil(cfg.topk * tail / cfg.chunk)))


def build_layout(shapes: Mapping[str, Sequence[int]] | Sequence[tuple[str, Sequence[int]]], cfg: CodecConfig) -> Layout:
    """Layout for tensors in the given order (a mapping's iteration order)."""
    items = list(shapes.items()) if isinstance(shapes, Mapping) else list(shapes)
    out: list[TensorLayout] = []
    entries = chunks = params = occ = 0
    s = cfg.sub_block_bits
    seen: set[str] = set()
    for name, shape in items:
        if name in seen:
            raise BadShape(f"tensor {name!r} appears twice in the layout")
        seen.add(name)
        dims = tuple(int(d) for d in shape)
        if any(d < 0 for d in dims):
            raise BadShape(f"tensor {name!r} has a negative dimension {dims}")
        numel = math.prod(dims)
        if numel == 0:
            raise BadShape(f"tensor {name!r} is empty {dims}")
        n_full, tail = divmod(numel, cfg.chunk)
        k_tail = tail_k(tail, cfg)
        bits = occupancy_bits(n_full, cfg.topk, cfg.chunk, s) + (occupancy_bits(1, k_tail, tail, s) if tail else 0)
        tl = TensorLayout(
            name=name, shape=dims, numel=numel, n_full=n_full, tail=tail, k_full=cfg.topk, k_tail=k_tail,
            entry_offset=entries, chunk_offset=chunks, occ_offset=occ, occ_bits=bits,
        )
        out.append(tl)
        entries += tl.n_entries
        chunks += tl.n_chunks
        params += numel
        occ += bits
    return Layout(tensors=tuple(out), n_entries=entries, n_chunks=chunks, n_params=params, n_occ_bits=occ)


def groups(t: TensorLayout, chunk: int) -> list[tuple[int, int, int]]:
    """(rows, k, row_length) blocks of one tensor: its full chunks, then its partial chunk."""
    out = []
    if t.n_full:
        out.append((t.n_full, t.k_full, chunk))
    if t.tail:
        out.append((1, t.k_tail, t.tail))
    return out
