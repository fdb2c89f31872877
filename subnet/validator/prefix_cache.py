"""Exact prefix caching for scoring: run only the layers an update can change.

Why: an update to fragment f > 0 touches decoder layers [a, n) (and, for the
last fragment, the final norm and LM head) but nothing before layer a, so the
hidden states entering layer a are the same before and after it is applied.
Scoring needs a "before" forward anyway (the baseline for held-out and control
pages, once per window; the assigned pages, per submission), so those passes
record what enters layer a and every "after" pass runs only layers [a, n),
the final norm and the head. The losses are those of the full forward (the
same modules on the same inputs; validator_tests/test_validator_prefix_cache.py
checks <= 1e-6 for every fragment of tiny and small at F = 1, 2, 3).

How, and why this way: the "before" forward is HF's own ``LlamaForCausalLM``
forward; a forward pre-hook on ``model.model.layers[a]`` (or on
``model.model.norm`` when a = n) records the hidden states and every other
argument HF passed to that layer (causal mask, rotary ``position_embeddings``,
``position_ids``), so the mask and rotary construction are never re-implemented
here (they are the parts of HF's internals that change between versions; the
pinned transformers is 5.24). The tail then calls the HF modules themselves:
``layers[i](hidden, **recorded)``, ``model.model.norm``, ``model.lm_head``.
What it relies on: a layer takes the hidden states as its first argument and
returns them (a tensor, or a tuple whose first item they are), and the same
arguments are valid for every later layer (true for Llama: one mask and one
rotary table for all layers). Models whose layers take per-layer masks
(sliding-window mixes) or are not Llama-shaped fall back to the full forward
(`llama_parts` returns None); so does fragment 0 (its embedding feeds
everything).

Memory: one recorded input is a [B, L-1, d] tensor in the model's dtype, i.e.
per page ``(L-1) * d * element_size`` bytes per cached layer boundary: 64 KiB
for tiny (128 x 128 fp32), 144 KiB for small (128 x 288), 2 MiB for an 8b
model (128 x 4096 fp32 pages of 129 tokens; 128 MiB per page at 8192
tokens). A cache is recorded only while it fits ``PrefixCacheConfig.max_bytes``
(per cache: the window's held-out + control pages, or one submission's
assigned pages); anything over the bound is not recorded and that pass takes
the full forward, so the cache can never be what runs a large model out of
memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

DEFAULT_MAX_BYTES = 256 * 2**20


@dataclass(frozen=True, kw_only=True)
class PrefixCacheConfig:
    """Whether scoring caches the hidden states entering the updated fragment, and how much it may hold."""

    enabled: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    """Bound on one cache (the window's held-out + control pages; one submission's assigned pages), in bytes."""


@dataclass(frozen=True)
class LlamaParts:
    """The HF modules the cached tail calls (``model.model.layers``, ``.norm``, ``model.lm_head``)."""

    layers: nn.ModuleList
    norm: nn.Module
    head: nn.Module
    hidden_size: int

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def entry(self, layer: int) -> nn.Module:
        """The module whose input is the hidden state entering ``layer`` (``norm`` for layer n)."""
        return self.layers[layer] if layer < self.n_layers else self.norm


@dataclass(frozen=True)
class LayerInput:
    """What HF passed to the module at one boundary for one batch: hidden states and the rest of the call."""

    hidden: torch.Tensor
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def nbytes(self) -> int:
        return self.hidden.numel() * self.hidden.element_size()


@dataclass
class PrefixCache:
    """Recorded inputs at some layer boundaries for a list of batches (the batches kept to check identity)."""

    batches: list[torch.Tensor]
    inputs: dict[int, list[LayerInput]] = field(default_factory=dict)
    """layer -> the input entering it, one per batch (same order as ``batches``)."""

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for xs in self.inputs.values() for x in xs)

    def lookup(self, batches: Sequence[torch.Tensor], layer: int) -> list[LayerInput] | None:
        """The recorded inputs at ``layer`` for exactly these batches (same token ids), else None."""
        got = self.inputs.get(layer)
        if got is None or len(got) != len(batches) or len(batches) != len(self.batches):
            return None
        for b, mine in zip(batches, self.batches):
            if b is not mine and (b.shape != mine.shape or not torch.equal(b, mine)):
                return None
        return got


@dataclass(frozen=True)
class WindowPrefix:
    """The window's recorded held-out and control inputs (from the baseline pass) and the bound for the rest."""

    heldout: PrefixCache
    random: PrefixCache
    cfg: PrefixCacheConfig


def llama_parts(model: nn.Module) -> LlamaParts | None:
    """The modules of a Llama-shaped HF causal LM (``LlamaForCausalLM``), or None: use the full forward."""
    config = getattr(model, "config", None)
    inner = getattr(model, "model", None)
    if getattr(config, "model_type", None) != "llama" or inner is None:
        return None
    layers, norm, head = getattr(inner, "layers", None), getattr(inner, "norm", None), getattr(model, "lm_head", None)
    if not isinstance(layers, nn.ModuleList) or not isinstance(norm, nn.Module) or not isinstance(head, nn.Module):
        return None
    if getattr(inner, "embed_tokens", None) is None or len(layers) == 0:
        return None
    return LlamaParts(layers=layers, norm=norm, head=head, hidden_size=int(config.hidden_size))


def start_layer(model: nn.Module, params: Mapping[str, torch.Tensor]) -> int | None:
    """First boundary an update to ``params`` can change: layer a of its first decoder layer, n for norm/head only.

    None: the cache cannot help (fragment 0's embedding, a parameter this
    helper cannot place, or a model that is not Llama-shaped). Placed by
    tensor identity, not by name, so a renamed module cannot be misplaced.
    """
    parts = llama_parts(model)
    if parts is None or not params:
        return None
    owner: dict[int, int] = {}
    for i, layer in enumerate(parts.layers):
        owner.update({id(p): i for p in layer.parameters()})
    owner.update({id(p): parts.n_layers for m in (parts.norm, parts.head) for p in m.parameters()})
    firsts = [owner.get(id(p)) for p in params.values()]
    if any(f is None for f in firsts):
        return None
    a = min(f for f in firsts if f is not None)
    return a if a > 0 else None


def page_bytes(model: nn.Module, n_tokens: int) -> int:
    """Bytes one page's recorded input takes at one boundary: ``(L - 1) * d * element_size``."""
    parts = llama_parts(model)
    if parts is None:
        return 0
    elem = next(iter(parts.norm.parameters()), torch.empty(0)).element_size()  # the hidden states' dtype
    return (n_tokens - 1) * parts.hidden_size * elem


def affordable(model: nn.Module, batches: Sequence[torch.Tensor], layers: Sequence[int], max_bytes: int) -> list[int]:
    """The boundaries (in the given order) whose recorded inputs for ``batches`` fit ``max_bytes`` together."""
    per = sum(int(b.shape[0]) * page_bytes(model, int(b.shape[1])) for b in batches)
    out, used = [], 0
    for layer in layers:
        if per > 0 and used + per <= max_bytes:
            out.append(layer)
            used += per
    return out


def _detached(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, tuple):
        return tuple(_detached(v) for v in x)
    if isinstance(x, list):
        return [_detached(v) for v in x]
    if isinstance(x, dict):
        return {k: _detached(v) for k, v in x.items()}
    return x


def _tensors(x: Any) -> Iterator[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (tuple, list)):
        for v in x:
            yield from _tensors(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)


@contextmanager
def recording(model: nn.Module, layers: Sequence[int],
              max_bytes: int | None = None) -> Iterator[dict[int, list[LayerInput]]]:
    """While open, every forward of ``model`` appends what enters each of ``layers`` (hooks removed on exit).

    ``max_bytes`` is a hard bound on what the record keeps alive (hidden states and every tensor of the call,
    e.g. an eager causal mask, each counted once): the first input over it empties the record and stops it, so
    every list comes back empty (callers then take the full forward; `PrefixCache.lookup` refuses short lists).
    """
    parts = llama_parts(model)
    record: dict[int, list[LayerInput]] = {layer: [] for layer in layers}
    handles = []
    seen: set[int] = set()
    state = {"used": 0, "over": False}
    if parts is not None:
        for layer in layers:
            def hook(_m: nn.Module, args: tuple, kwargs: dict, _layer: int = layer) -> None:
                if state["over"]:
                    return
                if args:
                    hidden, rest, kw = args[0], args[1:], dict(kwargs)
                else:
                    kw = dict(kwargs)
                    hidden, rest = kw.pop("hidden_states"), ()
                inp = LayerInput(hidden.detach(), _detached(rest), _detached(kw))
                new = {t.data_ptr(): t.numel() * t.element_size() for t in _tensors((inp.hidden, inp.args, inp.kwargs))
                       if t.data_ptr() not in seen}
                if max_bytes is not None and state["used"] + sum(new.values()) > max_bytes:
                    state["over"] = True
                    for xs in record.values():
                        xs.clear()
                    return
                state["used"] += sum(new.values())
                seen.update(new)
                record[_layer].append(inp)
            handles.append(parts.entry(layer).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield record
    finally:
        for h in handles:
            h.remove()


def tail_logits(model: nn.Module, inp: LayerInput, layer: int) -> torch.Tensor:
    """Logits from the recorded input entering ``layer``: layers [layer, n), the final norm and the LM head."""
    parts = llama_parts(model)
    if parts is None:
        raise TypeError("tail_logits needs a Llama-shaped model (prefix_cache.llama_parts)")
    hidden = inp.hidden
    for i in range(layer, parts.n_layers):
        out = parts.layers[i](hidden, *inp.args, **inp.kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
    return parts.head(parts.norm(hidden))
