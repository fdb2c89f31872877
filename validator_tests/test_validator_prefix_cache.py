"""Exact prefix caching in scoring (subnet/validator/prefix_cache.py): the cached tail is the full forward.

Real tiny/small Llama models; random token pages where only the arithmetic is
checked, the embedded corpus where a whole score is compared. Every claim is
checked against the uncached path on the same model and the same bytes.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from subnet.codec.sparseloco import CodecConfig, Encoder
from subnet.data.config import DataConfig
from subnet.data.pages import load_pages
from subnet.model.fragments import fragment_shapes, partition, trainable_parameters
from subnet.model.presets import build_model, get_preset
from subnet.validator.prefix_cache import (
    DEFAULT_MAX_BYTES,
    PrefixCache,
    PrefixCacheConfig,
    affordable,
    llama_parts,
    page_bytes,
    start_layer,
)
from subnet.validator.scoring import (
    ScoreConfig,
    _page_losses,
    compute_baseline,
    page_batches,
    page_losses,
    score_contribution,
)

torch.set_num_threads(1)
OFF = PrefixCacheConfig(enabled=False)


def _tokens(vocab: int, n_batches: int, rows: int = 4, length: int = 129, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (rows, length), generator=g) for _ in range(n_batches)]


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {name: build_model(name, seed=1) for name in ("tiny", "small")}


@pytest.mark.parametrize("preset", ["tiny", "small"])
@pytest.mark.parametrize("n_fragments", [1, 2, 3])
def test_tail_losses_equal_full_forward(models: dict, preset: str, n_fragments: int) -> None:
    model = models[preset]
    batches = _tokens(get_preset(preset).vocab_size, 2)
    full = page_losses(model, batches)
    for frag in partition(model, n_fragments):
        a = start_layer(model, trainable_parameters(model, frag))
        if frag.index == 0:  # the embedding feeds every layer: nothing to cache
            assert a is None
            continue
        assert a == frag.layers[0]
        before, rec = _page_losses(model, batches, record=[a])
        assert before == full and len(rec[a]) == len(batches)
        tail = _page_losses(model, batches, cached=rec[a], layer=a)[0]
        assert max(abs(x - y) for x, y in zip(full, tail)) <= 1e-6


def test_eager_attention_tail_equals_full_forward() -> None:
    """The recorded causal mask is what HF built for the implementation in use (here eager, an explicit mask)."""
    model = build_model("tiny", seed=2)
    model.set_attn_implementation("eager")
    batches = _tokens(2048, 1)
    full = page_losses(model, batches)
    frag = partition(model, 2)[1]
    a = start_layer(model, trainable_parameters(model, frag))
    _, rec = _page_losses(model, batches, record=[a])
    tail = _page_losses(model, batches, cached=rec[a], layer=a)[0]
    assert max(abs(x - y) for x, y in zip(full, tail)) <= 1e-6


def test_norm_and_head_only_start_after_the_last_layer(models: dict) -> None:
    model = models["tiny"]
    params = {n: p for n, p in model.named_parameters() if n.startswith(("model.norm.", "lm_head."))}
    assert start_layer(model, params) == 4
    batches = _tokens(2048, 1)
    _, rec = _page_losses(model, batches, record=[4])
    tail = _page_losses(model, batches, cached=rec[4], layer=4)[0]
    assert max(abs(x - y) for x, y in zip(page_losses(model, batches), tail)) <= 1e-6


@pytest.fixture(scope="module")
def world() -> dict:
    pages = load_pages(DataConfig(vocab_size=2048))
    model = build_model("tiny", seed=0)
    held = page_batches(pages, range(0, 8), "heldout", 8, 1)
    rand = page_batches(pages, range(9000, 9008), "train", 4, 2)
    ref = page_batches(pages, range(100, 116), "heldout", 8, 2)
    own = page_batches(pages, range(5000, 5008), "train", 4, 2)
    return dict(pages=pages, model=model, held=held, rand=rand, ref=ref, own=own)


def _update(model: torch.nn.Module, frag, seed: int, sparse: bool):
    g = torch.Generator().manual_seed(seed)
    dense = {n: 0.02 * torch.randn(s, generator=g) for n, s in fragment_shapes(model, frag).items()}
    return Encoder(fragment_shapes(model, frag), CodecConfig()).encode(dense) if sparse else dense


def _same(a, b) -> bool:
    """Field-by-field equality with NaN equal to NaN (a score carries NaN for what was not measured)."""
    for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b)):
        xs, ys = (x, y) if isinstance(x, tuple) else ((x,), (y,))
        for u, v in zip(xs, ys, strict=True):
            if not (u == v or (isinstance(u, float) and math.isnan(u) and math.isnan(v))):
                return False
    return True


class _Calls:
    """Counts rows run through decoder layer 0 (a full forward passes it; a cached tail does not)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0
        self.handle = model.model.layers[0].register_forward_hook(self._hook)

    def _hook(self, _m, args, _out) -> None:
        self.rows += int(args[0].shape[0])


@pytest.mark.parametrize("with_reference", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_score_contribution_same_with_and_without_cache(world: dict, sparse: bool, with_reference: bool) -> None:
    model = world["model"]
    ref = world["ref"] if with_reference else ()
    cached = compute_baseline(model, world["held"], world["rand"], ref)
    plain = compute_baseline(model, world["held"], world["rand"], ref, prefix=OFF)
    assert cached.prefix is not None and plain.prefix is None
    cfg = ScoreConfig(n_assigned_batches=2, n_random_batches=2)
    for n_fragments in (1, 2, 3):
        for frag in partition(model, n_fragments):
            params = trainable_parameters(model, frag)
            delta = _update(model, frag, 10 * n_fragments + frag.index, sparse)
            for rand in (world["rand"], []):
                calls = _Calls(model)
                try:
                    got = score_contribution(model, params, delta, cfg, world["own"], world["held"], rand, cached)
                finally:
                    calls.handle.remove()
                want = score_contribution(model, params, delta, cfg, world["own"], world["held"], rand, plain)
                assert _same(got, want), (frag.name, got, want)
                assert math.isfinite(got.heldout_improvement) and got.heldout_improvement != 0.0
                own_rows = sum(int(b.shape[0]) for b in world["own"])
                full_rows = 2 * own_rows + 8 + sum(int(b.shape[0]) for b in rand)
                # fragment 0 runs every pass in full; a later fragment runs layer 0 only for the assigned "before"
                assert calls.rows == (full_rows if frag.index == 0 else own_rows), frag.name


def test_cache_over_the_bound_is_not_recorded_and_scores_the_same(world: dict) -> None:
    model = world["model"]
    per_page = page_bytes(model, 129)
    assert per_page == 128 * 128 * 4  # (L-1) * d * fp32 for tiny
    small = PrefixCacheConfig(max_bytes=per_page * 10)  # 8 assigned pages (+ rotary) fit, 16 held-out + control do not
    capped = compute_baseline(model, world["held"], world["rand"], prefix=small)
    assert capped.prefix is not None and capped.prefix.heldout.inputs == {}
    plain = compute_baseline(model, world["held"], world["rand"], prefix=OFF)
    frag = partition(model, 2)[1]
    params = trainable_parameters(model, frag)
    delta = _update(model, frag, 7, sparse=True)
    cfg = ScoreConfig(n_assigned_batches=2, n_random_batches=2)
    calls = _Calls(model)
    try:
        got = score_contribution(model, params, delta, cfg, world["own"], world["held"], world["rand"], capped)
    finally:
        calls.handle.remove()
    want = score_contribution(model, params, delta, cfg, world["own"], world["held"], world["rand"], plain)
    assert _same(got, want)
    # held-out + control after passes in full (over the bound); assigned pages (8 = 4 pages x 2) fit and are cached
    assert calls.rows == 8 + 8 + 8


def test_prefix_layers_limit_what_is_recorded(world: dict) -> None:
    base = compute_baseline(world["model"], world["held"], world["rand"], prefix_layers=[0, 2])
    assert base.prefix is not None and set(base.prefix.heldout.inputs) == {2}
    assert len(base.prefix.heldout.inputs[2]) == 1 and len(base.prefix.random.inputs[2]) == 2


def test_lookup_refuses_other_batches(world: dict) -> None:
    model = world["model"]
    batches = world["held"]
    _, rec = _page_losses(model, batches, record=[2])
    cache = PrefixCache(list(batches), rec)
    assert cache.lookup(batches, 2) is not None
    assert cache.lookup([b.clone() for b in batches], 2) is not None  # same token ids
    other = [batches[0].flip(0)]
    assert cache.lookup(other, 2) is None and cache.lookup(batches, 1) is None


def test_model_that_is_not_llama_falls_back_to_the_full_forward() -> None:
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=256))
    assert llama_parts(model) is None
    assert start_layer(model, dict(model.named_parameters())) is None
    batches = _tokens(64, 1)
    base = compute_baseline(model, batches, [])
    assert base.prefix is None
    assert base.heldout_page_losses == tuple(page_losses(model, batches))


def test_recording_bound_counts_every_kept_tensor() -> None:
    """An eager causal mask is kept with the hidden states: over the bound, nothing is kept (full forward)."""
    batches = _tokens(2048, 1)
    hidden = 4 * 128 * 128 * 4
    rotary = 2 * 128 * 32 * 4 + 128 * 8  # cos, sin and position ids
    bound = hidden + rotary + 1024
    sdpa = build_model("tiny", seed=3)
    assert len(_page_losses(sdpa, batches, record=[2], max_bytes=bound)[1][2]) == 1  # sdpa: no mask tensor kept
    eager = build_model("tiny", seed=3)
    eager.set_attn_implementation("eager")
    full, rec = _page_losses(eager, batches, record=[2], max_bytes=bound)
    assert rec[2] == [] and PrefixCache(batches, rec).lookup(batches, 2) is None
    assert full == page_losses(eager, batches)
    assert len(_page_losses(eager, batches, record=[2], max_bytes=10 * bound)[1][2]) == 1


def test_8b_window_cache_fits_the_default_bound_deepest_first() -> None:
    """Shapes only (meta device): 16 held-out + control pages of an 8b model cost 2 MiB each per boundary."""
    model = build_model("8b", device="meta")
    per_page = page_bytes(model, 129)
    assert per_page == 128 * 4096 * 4
    batches = [torch.zeros(8, 129, dtype=torch.long)] * 2
    layers = affordable(model, batches, list(range(32, 0, -1)), DEFAULT_MAX_BYTES)
    assert layers == list(range(32, 24, -1))  # 8 boundaries x 16 pages x 2 MiB = the 256 MiB bound
    assert len(layers) * 16 * per_page <= DEFAULT_MAX_BYTES
