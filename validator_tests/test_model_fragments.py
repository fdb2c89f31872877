"""Fragments: exact cover for every preset and several F, layer contiguity, freezing."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from subnet.errors import ModelError
from subnet.model.fragments import fragment_shapes, freeze_all_but, partition, trainable_parameters
from subnet.model.presets import PRESETS, build_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def meta_models() -> dict[str, torch.nn.Module]:
    return {name: build_model(name, device="meta") for name in PRESETS}


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("f", [1, 2, 3, 4, 6])
def test_exact_cover(meta_models: dict[str, torch.nn.Module], name: str, f: int) -> None:
    model = meta_models[name]
    n_layers = PRESETS[name].n_layers
    if f > n_layers:
        with pytest.raises(ModelError):
            partition(model, f)
        return
    frags = partition(model, f)
    names = [n for n, _ in model.named_parameters()]
    counts = Counter(n for fr in frags for n in fr.param_names)
    assert set(counts) == set(names) and set(counts.values()) == {1}
    assert [fr.index for fr in frags] == list(range(f))
    assert "model.embed_tokens.weight" in frags[0].param_names
    assert {"lm_head.weight", "model.norm.weight"} <= set(frags[-1].param_names)
    # contiguous layer ranges that tile [0, n_layers), sizes within one
    assert frags[0].layers[0] == 0 and frags[-1].layers[1] == n_layers
    assert all(a.layers[1] == b.layers[0] for a, b in zip(frags, frags[1:]))
    sizes = [b - a for a, b in (fr.layers for fr in frags)]
    assert max(sizes) - min(sizes) <= 1
    for fr in frags:
        for n in fr.param_names:
            if ".layers." in n:
                assert fr.layers[0] <= int(n.split(".")[2]) < fr.layers[1]
    assert len({fr.name for fr in frags}) == f


def test_full_fragment_and_names_input() -> None:
    m = build_model("tiny", device="meta")
    (full,) = partition(m, 1)
    assert full.name == "full" and len(full.param_names) == len(list(m.parameters()))
    assert partition([n for n, _ in m.named_parameters()], 2) == partition(m, 2)
    with pytest.raises(ModelError):
        partition(["model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight", "mystery.bias"], 1)
    with pytest.raises(ModelError):
        partition(m, 0)


def test_freeze_all_but_trains_only_the_fragment() -> None:
    m = build_model("tiny", seed=0)
    frags = partition(m, 3)
    frag = frags[1]
    params = freeze_all_but(m, frag)
    own = set(frag.param_names)
    for n, p in m.named_parameters():
        assert p.requires_grad == (n in own)
    assert len(params) == len(own)
    assert fragment_shapes(m, frag) == {n: p.shape for n, p in trainable_parameters(m, frag).items()}
    opt = torch.optim.AdamW(params, lr=1e-3)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    x = torch.randint(0, 2048, (2, 16))
    m(input_ids=x, labels=x).loss.backward()
    opt.step()
    assert len(opt.state) == len(own)  # no optimizer state for frozen params
    for n, p in m.named_parameters():
        assert (p.grad is not None) == (n in own)
        assert torch.equal(p, before[n]) != (n in own)
