"""SparseLoCo-style encoder with error feedback, and the matching decoder.

Per window the miner calls `Encoder.encode(pseudo_grad)`:

    ef = decay * ef + pseudo_grad          (fp32, per tensor)
    per chunk: keep the top-k |ef| entries, quantise them (quant.py)
    ef -= decoded(kept)                    (quantisation error stays in ef)

so whatever is not sent this window (unselected mass and rounding error) is
sent later. Indices within a chunk are sorted ascending: a canonical form that
lets the reader refuse repeated indices with one comparison, and that the
sub-block index coding (indexcode.py) needs. The packed streams (`idx`,
`occ`, `val`, `scale`) hold every tensor back to back in layout order
(layout.py), which keeps a whole fragment in four wire tensors.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from loguru import logger
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from subnet.codec.bitpack import pack_bits, unpack_bits
from subnet.codec.config import CodecConfig
from subnet.codec.errors import BadShape, NonFinite
from subnet.codec.indexcode import decode_group, encode_group, occupancy_bits
from subnet.codec.layout import Layout, build_layout, groups
from subnet.codec.quant import dequantize, quantize

__all__ = ["CodecConfig", "EncodedUpdate", "Encoder", "decode", "decode_sparse", "SparseTensor"]


@dataclass(frozen=True, kw_only=True)
class EncodedUpdate:
    """A compressed pseudo-gradient for an ordered set of named tensors."""

    cfg: CodecConfig
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    idx: torch.Tensor  # uint8, packed index offsets (cfg.offset_bits each)
    occ: torch.Tensor  # uint8, packed sub-block occupancy bits (indexcode.py; empty in fixed-width mode)
    val: torch.Tensor  # uint8, packed value codes (value_bits each)
    scales: torch.Tensor  # bf16, (n_chunks, scales_per_chunk)

    @property
    def layout(self) -> Layout:
        return build_layout(list(zip(self.names, self.shapes)), self.cfg)

    def payload_bytes(self) -> int:
        return self.idx.numel() + self.occ.numel() + self.val.numel() + self.scales.numel() * 2


@dataclass(frozen=True, kw_only=True)
class SparseTensor:
    """Decoded entries of one tensor: flat positions and fp32 values."""

    name: str
    shape: tuple[int, ...]
    index: torch.Tensor  # int64 flat positions, unique
    values: torch.Tensor  # fp32


def _check_shapes(names: Sequence[str], shapes: Sequence[tuple[int, ...]],
                  expected: Mapping[str, Sequence[int]]) -> None:
    if set(names) != set(expected):
        missing = sorted(set(expected) - set(names))[:5]
        extra = sorted(set(names) - set(expected))[:5]
        raise BadShape(f"tensor names differ from the expected fragment: missing={missing} unexpected={extra}")
    for name, shape in zip(names, shapes):
        want = tuple(int(d) for d in expected[name])
        if tuple(shape) != want:
            raise BadShape(f"tensor {name!r} has shape {tuple(shape)}, expected {want}")


class Encoder:
    """Error-feedback top-k encoder for a fixed set of tensors (one fragment)."""

    def __init__(self, shapes: Mapping[str, Sequence[int]], cfg: CodecConfig) -> None:
        self.cfg = cfg
        self.layout = build_layout(shapes, cfg)
        self.names = tuple(t.name for t in self.layout.tensors)
        self.shapes = tuple(t.shape for t in self.layout.tensors)
        self.ef: dict[str, torch.Tensor] = {t.name: torch.zeros(t.shape, dtype=torch.float32)
                                            for t in self.layout.tensors}

    def encode(self, pseudo_grad: Mapping[str, torch.Tensor]) -> EncodedUpdate:
        """Fold `pseudo_grad` into the EF buffer, select, quantise, pack; subtract what was sent."""
        _check_shapes(list(pseudo_grad), [tuple(t.shape) for t in pseudo_grad.values()],
                      dict(zip(self.names, self.shapes)))
        for name, g in pseudo_grad.items():  # refuse before touching EF: one NaN would poison it for good
            if not bool(torch.isfinite(g).all()):
                raise NonFinite(f"pseudo-gradient {name!r} has NaN or infinite entries; EF buffer left unchanged")
        idx_codes: list[torch.Tensor] = []
        occ_bits: list[torch.Tensor] = []
        sub = self.cfg.sub_block_bits
        val_codes: list[torch.Tensor] = []
        scales: list[torch.Tensor] = []
        with torch.no_grad():
            for t in self.layout.tensors:
                ef = self.ef[t.name]
                ef.mul_(self.cfg.ef_decay).add_(pseudo_grad[t.name].detach().to(torch.float32))
                flat = ef.view(-1)
                split = t.n_full * self.cfg.chunk
                blocks = []
                if t.n_full:
                    blocks.append((flat[:split].view(t.n_full, self.cfg.chunk), t.k_full))
                if t.tail:
                    blocks.append((flat[split:].view(1, t.tail), t.k_tail))
                for block, k in blocks:
                    ix = block.abs().topk(k, dim=1, sorted=False).indices.sort(dim=1).values
                    offsets, occ = encode_group(ix, block.shape[1], sub)
                    kept = block.gather(1, ix)
                    codes, sc = quantize(kept, self.cfg.value_bits)
                    sent = dequantize(codes, sc, self.cfg.value_bits)
                    block.scatter_add_(1, ix, -sent)  # ef -= decoded; indices are unique per row
                    idx_codes.append(offsets)
                    occ_bits.append(occ)
                    val_codes.append(codes.reshape(-1))
                    scales.append(sc)
        return EncodedUpdate(
            cfg=self.cfg,
            names=self.names,
            shapes=self.shapes,
            idx=pack_bits(torch.cat(idx_codes), self.cfg.offset_bits),
            occ=pack_bits(torch.cat(occ_bits), 1),
            val=pack_bits(torch.cat(val_codes), self.cfg.value_bits),
            scales=torch.cat(scales, dim=0).contiguous(),
        )

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: buf.clone() for name, buf in self.ef.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        _check_shapes(list(state), [tuple(t.shape) for t in state.values()], dict(zip(self.names, self.shapes)))
        for name in self.names:
            self.ef[name] = state[name].detach().to(torch.float32).clone().contiguous()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the EF buffers as safetensors, atomically (tmp + fsync + replace)."""
        path = Path(path)
        meta = {"chunk": str(self.cfg.chunk), "topk": str(self.cfg.topk), "value_bits": str(self.cfg.value_bits),
                "ef_decay": repr(self.cfg.ef_decay)}
        data = st_save({n: b.contiguous() for n, b in self.ef.items()}, metadata=meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        logger.debug("saved encoder state to {} ({} bytes)", path, len(data))

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore EF buffers written by `save` (safetensors, never pickle)."""
        self.load_state_dict(st_load(Path(path).read_bytes()))


def _check_packed(encoded: EncodedUpdate, layout: Layout) -> None:
    sizes = layout.packed_sizes(encoded.cfg)
    got = {"idx": encoded.idx.numel(), "occ": encoded.occ.numel(), "val": encoded.val.numel(),
           "scale": encoded.scales.numel() * 2}
    if got != sizes:
        raise BadShape(f"packed sizes {got} do not match the layout {sizes}")
    if encoded.scales.shape != (layout.n_chunks, encoded.cfg.scales_per_chunk):
        raise BadShape(f"scales shape {tuple(encoded.scales.shape)} != "
                       f"({layout.n_chunks}, {encoded.cfg.scales_per_chunk})")


def unpack_indices(encoded: EncodedUpdate, layout: Layout | None = None) -> list[list[torch.Tensor]]:
    """Per tensor, per block (full chunks, partial chunk): in-chunk positions (rows, k).

    Validates sizes (BadShape) and every index (BadIndex): this is the check
    read_artifact relies on, so decoding never scatters out of bounds.
    """
    cfg = encoded.cfg
    layout = layout or encoded.layout
    _check_packed(encoded, layout)
    sub = cfg.sub_block_bits
    offsets = unpack_bits(encoded.idx, cfg.offset_bits, layout.n_entries)
    occ = unpack_bits(encoded.occ, 1, layout.n_occ_bits)
    out: list[list[torch.Tensor]] = []
    for t in layout.tensors:
        e, o = t.entry_offset, t.occ_offset
        blocks = []
        for rows, k, row_len in groups(t, cfg.chunk):
            n_occ = occupancy_bits(rows, k, row_len, sub)
            blocks.append(decode_group(offsets[e : e + rows * k], occ[o : o + n_occ], rows, k, row_len, sub,
                                       what=f"tensor {t.name!r}"))
            e += rows * k
            o += n_occ
        out.append(blocks)
    return out


def pack_indices(encoded: EncodedUpdate, blocks: Sequence[Sequence[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of `unpack_indices`: per-tensor, per-block positions -> packed (idx, occ), unvalidated.

    For tests and adversarial tooling that need hostile-but-well-formed index streams.
    """
    cfg = encoded.cfg
    offs: list[torch.Tensor] = []
    occs: list[torch.Tensor] = []
    for t, tb in zip(encoded.layout.tensors, blocks):
        for (_rows, _k, row_len), ix in zip(groups(t, cfg.chunk), tb):
            o, b = encode_group(ix, row_len, cfg.sub_block_bits)
            offs.append(o)
            occs.append(b)
    return pack_bits(torch.cat(offs), cfg.offset_bits), pack_bits(torch.cat(occs), 1)


def decode_sparse(encoded: EncodedUpdate, shapes: Mapping[str, Sequence[int]] | None = None) -> list[SparseTensor]:
    """Unpack to per-tensor (flat index, fp32 value) pairs, validating sizes and indices."""
    if shapes is not None:
        _check_shapes(encoded.names, encoded.shapes, shapes)
    cfg = encoded.cfg
    layout = encoded.layout
    positions = unpack_indices(encoded, layout)
    codes = unpack_bits(encoded.val, cfg.value_bits, layout.n_entries)
    out: list[SparseTensor] = []
    for t, blocks in zip(layout.tensors, positions):
        e, c = t.entry_offset, t.chunk_offset
        parts_i, parts_v = [], []
        base = 0
        for (rows, k, _), ix in zip(groups(t, cfg.chunk), blocks):
            vals = dequantize(codes[e : e + rows * k].view(rows, k), encoded.scales[c : c + rows], cfg.value_bits)
            starts = base + torch.arange(rows, dtype=torch.int64).unsqueeze(1) * cfg.chunk
            parts_i.append((ix + starts).reshape(-1))
            parts_v.append(vals.reshape(-1))
            e += rows * k
            c += rows
            base += rows * cfg.chunk
        out.append(SparseTensor(name=t.name, shape=t.shape, index=torch.cat(parts_i), values=torch.cat(parts_v)))
    return out


def decode(encoded: EncodedUpdate, shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, torch.Tensor]:
    """Dense fp32 tensors (zeros where nothing was sent)."""
    dense: dict[str, torch.Tensor] = {}
    for s in decode_sparse(encoded, shapes):
        buf = torch.zeros(s.shape, dtype=torch.float32)
        buf.view(-1).index_put_((s.index,), s.values)
        dense[s.name] = buf
    return dense
