"""Apply a decoded sparse update to live parameters and undo it exactly.

The validator scores a contribution by applying it, measuring loss and
reverting. Adding then subtracting the same values does not restore fp32
weights bit for bit, so the undo restores the saved original entries instead:
after `revert()` the model hashes exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from subnet.codec.errors import BadShape
from subnet.codec.sparseloco import SparseTensor


@dataclass(kw_only=True)
class Undo:
    """Saved original entries; `revert()` writes them back once."""

    saved: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (param, index, old)

    def revert(self) -> None:
        with torch.no_grad():
            for param, index, old in reversed(self.saved):
                param.view(-1).index_copy_(0, index, old)
        self.saved.clear()


def apply_sparse(params: Mapping[str, torch.Tensor], update: Sequence[SparseTensor], scale: float = -1.0) -> Undo:
    """params[name].flat[index] += scale * values (default -1: a pseudo-gradient is start - end).

    All or nothing: every tensor's name, shape, index range and length is
    checked before any parameter changes, and a failure while adding (which
    the checks should make impossible) reverts what was already added, so a
    hostile update can never leave the live model changed.
    """
    for s in update:
        p = params.get(s.name)
        if p is None or tuple(p.shape) != s.shape:
            shaped = None if p is None else tuple(p.shape)
            raise BadShape(f"cannot apply {s.name!r} {s.shape}: parameter missing or shaped {shaped}")
        if s.index.numel() != s.values.numel() or s.index.dim() != 1:
            raise BadShape(f"cannot apply {s.name!r}: {s.index.numel()} indices for {s.values.numel()} values")
        if s.index.numel() and (int(s.index.min()) < 0 or int(s.index.max()) >= p.numel()):
            raise BadShape(f"cannot apply {s.name!r}: an index is outside its {p.numel()} entries")
    undo = Undo()
    try:
        with torch.no_grad():
            for s in update:
                p = params[s.name]
                flat = p.view(-1)
                undo.saved.append((p, s.index, flat.index_select(0, s.index)))
                flat.index_add_(0, s.index, (s.values.reshape(-1) * scale).to(p.dtype))
    except BaseException:
        undo.revert()
        raise
    return undo
