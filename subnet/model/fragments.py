"""Fragments: the model's parameters cut into F named, contiguous layer ranges.

Fragment i holds decoder layers [start_i, stop_i) (an even split, earlier
fragments take the remainder); the token embedding joins fragment 0 and the
final norm + LM head join fragment F-1. F=1 is the whole model. Every
parameter lands in exactly one fragment; an unrecognised parameter name is an
error rather than silently untrained.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from subnet.errors import ModelError

_LAYER = re.compile(r"(?:model\.)?layers\.([0-9]+)\..+", re.ASCII)
_FIRST = re.compile(r"(?:model\.)?embed_tokens\..+", re.ASCII)
_LAST = re.compile(r"(?:(?:model\.)?norm\..+|lm_head\..+)", re.ASCII)


@dataclass(frozen=True)
class Fragment:
    """One trainable unit: its index, a readable name, and its parameter names (model order)."""

    index: int
    name: str
    param_names: tuple[str, ...]
    layers: tuple[int, int] = (0, 0)  # decoder layer range [start, stop)


def _names(model_or_names: nn.Module | Iterable[str]) -> list[str]:
    if isinstance(model_or_names, nn.Module):
        # named_parameters() de-duplicates tied tensors, so a tied head is counted once.
        return [n for n, _ in model_or_names.named_parameters()]
    names = list(model_or_names)
    if len(set(names)) != len(names):
        raise ModelError("duplicate parameter names given to partition()")
    return names


def layer_ranges(n_layers: int, n_fragments: int) -> list[tuple[int, int]]:
    """Even contiguous split of `n_layers` into `n_fragments` ranges."""
    if isinstance(n_fragments, bool) or not isinstance(n_fragments, int) or n_fragments < 1:
        raise ModelError(f"n_fragments must be an int >= 1, got {n_fragments!r}")
    if n_fragments > n_layers:
        raise ModelError(
            f"n_fragments={n_fragments} exceeds the model's {n_layers} layers",
            remediation="use at most one fragment per decoder layer",
        )
    base, extra = divmod(n_layers, n_fragments)
    out, start = [], 0
    for i in range(n_fragments):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def partition(model_or_names: nn.Module | Iterable[str], n_fragments: int) -> list[Fragment]:
    """Split parameters into `n_fragments` fragments covering each exactly once."""
    names = _names(model_or_names)
    layer_of: dict[str, int] = {}
    for n in names:
        m = _LAYER.fullmatch(n)
        if m:
            layer_of[n] = int(m[1])
        elif not (_FIRST.fullmatch(n) or _LAST.fullmatch(n)):
            raise ModelError(f"parameter {n!r} belongs to no fragment rule (embed/layers/norm/lm_head)")
    if not layer_of:
        raise ModelError("model has no decoder layers to partition")
    n_layers = max(layer_of.values()) + 1
    ranges = layer_ranges(n_layers, n_fragments)
    members: list[list[str]] = [[] for _ in ranges]
    for n in names:
        if n in layer_of:
            idx = next(i for i, (a, b) in enumerate(ranges) if a <= layer_of[n] < b)
        elif _FIRST.fullmatch(n):
            idx = 0
        else:
            idx = n_fragments - 1
        members[idx].append(n)
    fragments = []
    for i, ((a, b), params) in enumerate(zip(ranges, members, strict=True)):
        if n_fragments == 1:
            name = "full"
        else:
            name = ("embed+" if i == 0 else "") + f"L{a}-{b - 1}" + ("+head" if i == n_fragments - 1 else "")
        fragments.append(Fragment(i, name, tuple(params), (a, b)))
    return fragments


def trainable_parameters(model: nn.Module, fragment: Fragment) -> dict[str, nn.Parameter]:
    """The fragment's parameters by name, in model order (nothing is modified)."""
    wanted = set(fragment.param_names)
    found = {n: p for n, p in model.named_parameters() if n in wanted}
    missing = wanted - found.keys()
    if missing:
        raise ModelError(f"fragment {fragment.name!r} names parameters the model lacks: {sorted(missing)[:3]}")
    return found


def freeze_all_but(model: nn.Module, fragment: Fragment) -> list[nn.Parameter]:
    """Set requires_grad on the fragment only; return its parameters for the optimizer.

    Building AdamW on the returned list means frozen parameters get no
    gradient buffers and no optimizer state.
    """
    wanted = trainable_parameters(model, fragment)
    for n, p in model.named_parameters():
        p.requires_grad_(n in wanted)
    return list(wanted.values())


def fragment_shapes(model: nn.Module, fragment: Fragment) -> dict[str, torch.Size]:
    """Shapes of the fragment's parameters (what the codec needs to decode)."""
    return {n: p.shape for n, p in trainable_parameters(model, fragment).items()}


def fragment_state(model: nn.Module, fragment: Fragment) -> dict[str, torch.Tensor]:
    """Detached fp32 copies of the fragment's parameters (the start point of a pseudo-gradient)."""
    return {n: p.detach().to(torch.float32).clone() for n, p in trainable_parameters(model, fragment).items()}
