"""Encoder/decoder: exactness of what EF subtracts, EF delivery, layout accounting, state round trip."""

from __future__ import annotations

import math

import pytest
import torch

from subnet.codec import BadShape, CodecConfig, Encoder, NonFinite, apply_sparse, decode, decode_sparse
from subnet.codec.bitpack import pack_bits, packed_len, unpack_bits
from subnet.codec.errors import Malformed
from subnet.codec.indexcode import best_sub_block_bits, decode_group, encode_group, occupancy_bits
from subnet.codec.layout import build_layout

torch.set_num_threads(1)

SHAPES = {"layers.0.w": (96, 130), "layers.0.norm": (130,), "emb": (300, 64), "odd": (5000,)}


def _rand(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
@pytest.mark.parametrize("chunk,topk", [(4096, 64), (64, 2), (256, 17)])
def test_decoded_is_exactly_what_ef_subtracts(bits: int, chunk: int, topk: int) -> None:
    cfg = CodecConfig(chunk=chunk, topk=topk, value_bits=bits, ef_decay=0.9)
    enc = Encoder(SHAPES, cfg)
    for seed in range(3):
        pg = _rand(seed)
        before = {n: enc.ef[n] * cfg.ef_decay + pg[n] for n in SHAPES}
        dense = decode(enc.encode(pg), SHAPES)
        layout = build_layout(SHAPES, cfg)
        for t in layout.tensors:
            sent = dense[t.name] != 0
            assert int(sent.sum()) <= t.n_entries
            assert torch.equal(enc.ef[t.name][~sent], before[t.name][~sent])
            assert torch.equal(enc.ef[t.name][sent], before[t.name][sent] - dense[t.name][sent])


def test_selection_is_top_k_per_chunk_and_signs_kept() -> None:
    cfg = CodecConfig(chunk=64, topk=4, value_bits=2, ef_decay=1.0)
    x = torch.randn(64 * 10 + 20)
    enc = Encoder({"x": x.shape}, cfg)
    [s] = decode_sparse(enc.encode({"x": x.clone()}))
    for c in range(10):
        idx = s.index[(s.index >= c * 64) & (s.index < (c + 1) * 64)]
        top = x[c * 64 : (c + 1) * 64].abs().topk(4).indices + c * 64
        assert set(idx.tolist()) == set(top.tolist())
    tail = s.index[s.index >= 640]
    assert tail.numel() == math.ceil(4 * 20 / 64)  # proportional k for the partial chunk
    assert torch.equal(torch.sign(s.values), torch.sign(x[s.index]))


def test_constant_gradient_is_eventually_fully_transmitted() -> None:
    cfg = CodecConfig(chunk=64, topk=4, value_bits=2, ef_decay=1.0)
    g = torch.Generator().manual_seed(1)
    grad = {"w": torch.randn(8, 64, generator=g), "b": torch.randn(10, generator=g)}
    enc = Encoder({n: t.shape for n, t in grad.items()}, cfg)
    total = {n: torch.zeros_like(t) for n, t in grad.items()}
    resid_mid = 0.0
    rounds = 400
    for r in range(rounds):
        for n, d in decode(enc.encode(grad)).items():
            total[n] += d
        if r == rounds // 2 - 1:
            resid_mid = max(float(b.abs().max()) for b in enc.ef.values())
    resid_end = max(float(b.abs().max()) for b in enc.ef.values())
    # the residual does not grow with rounds (everything is delivered with bounded lag) ...
    assert resid_end < 1.5 * resid_mid
    for n in grad:
        assert torch.allclose(total[n] + enc.ef[n], rounds * grad[n], rtol=1e-4, atol=1e-2)
        # ... so the average delivered update converges to the gradient
        assert (total[n] / rounds - grad[n]).abs().max() < 0.05 * grad[n].abs().max()


def test_packed_sizes_are_bit_exact() -> None:
    cfg = CodecConfig(chunk=4096, topk=64, value_bits=2)
    enc = Encoder(SHAPES, cfg)
    e = enc.encode(_rand(0))
    layout = build_layout(SHAPES, cfg)
    # 64 of 4096: 5-bit offsets in 32-element sub-blocks + a 64+128-bit occupancy map = 512 bits/chunk (vs 768)
    assert cfg.offset_bits == 5
    full = sum(t.n_full for t in layout.tensors)
    tails = [t for t in layout.tensors if t.tail]
    assert layout.n_occ_bits == full * (64 + 128) + sum(t.k_tail + math.ceil(t.tail / 32) for t in tails)
    assert e.idx.numel() == math.ceil(layout.n_entries * 5 / 8)
    assert e.occ.numel() == math.ceil(layout.n_occ_bits / 8)
    assert e.val.numel() == math.ceil(layout.n_entries * 2 / 8)
    assert tuple(e.scales.shape) == (layout.n_chunks, 2)
    assert e.scales.dtype == torch.bfloat16


@pytest.mark.parametrize("nbits", [1, 2, 3, 5, 6, 7, 8, 11, 12, 13, 16, 20])
def test_bitpack_round_trip(nbits: int) -> None:
    for n in (0, 1, 9, 1001):
        codes = torch.randint(0, 1 << nbits, (n,))
        packed = pack_bits(codes, nbits)
        assert packed.numel() == packed_len(n, nbits)
        assert torch.equal(unpack_bits(packed, nbits, n), codes)


def test_bitpack_refuses_bad_parameters_with_typed_errors() -> None:
    for nbits in (0, -1, 25, True):
        with pytest.raises(Malformed):
            unpack_bits(torch.zeros(4, dtype=torch.uint8), nbits, 4)
        with pytest.raises(Malformed):
            pack_bits(torch.zeros(4, dtype=torch.int64), nbits)
    with pytest.raises(BadShape):
        unpack_bits(torch.zeros(3, dtype=torch.uint8), 8, 4)
    with pytest.raises(Malformed):
        unpack_bits(torch.zeros(4, dtype=torch.int64), 8, 4)


@pytest.mark.parametrize("chunk,topk", [(256, 256), (2, 2), (4096, 4096), (8, 7), (4096, 2048), (64, 0), (1, 1)])
def test_codec_refuses_dense_or_out_of_range_parameters(chunk: int, topk: int) -> None:
    """topk == chunk, or so dense that index offsets would be 0 bits: refused before bitpack sees them."""
    with pytest.raises(Malformed):
        CodecConfig(chunk=chunk, topk=topk)


@pytest.mark.parametrize("chunk,k", [(4096, 64), (4096, 256), (4096, 1), (64, 1), (64, 4), (100, 3), (256, 17), (2, 2)])
def test_index_coding_round_trip_and_is_never_worse_than_fixed_width(chunk: int, k: int) -> None:
    s = best_sub_block_bits(chunk, k)
    fixed = k * max(1, (chunk - 1).bit_length())
    assert occupancy_bits(1, k, chunk, s) + k * (fixed // k if s is None else s) <= fixed
    for row_len in {chunk, max(k, chunk // 3), k}:
        g = torch.Generator().manual_seed(row_len)
        ix = torch.stack([torch.randperm(row_len, generator=g)[:k] for _ in range(5)]).sort(1).values
        offsets, occ = encode_group(ix, row_len, s)
        assert occ.numel() == occupancy_bits(5, k, row_len, s)
        assert torch.equal(decode_group(offsets, occ, 5, k, row_len, s), ix)


def test_wrong_shapes_refused() -> None:
    enc = Encoder(SHAPES, CodecConfig())
    bad = _rand(0)
    bad["emb"] = torch.randn(301, 64)
    with pytest.raises(BadShape, match="emb"):
        enc.encode(bad)
    e = enc.encode(_rand(0))
    with pytest.raises(BadShape):
        decode(e, {**SHAPES, "extra": (3,)})


def test_non_finite_pseudo_gradient_refused_without_touching_ef() -> None:
    enc = Encoder(SHAPES, CodecConfig(chunk=256, topk=8))
    enc.encode(_rand(0))
    before = enc.state_dict()
    bad = _rand(1)
    bad["odd"][17] = float("inf")
    with pytest.raises(NonFinite, match="odd"):
        enc.encode(bad)
    assert all(torch.equal(before[n], enc.ef[n]) for n in SHAPES)


def test_state_round_trip_and_resume_is_identical(tmp_path) -> None:
    cfg = CodecConfig(chunk=256, topk=8)
    a = Encoder(SHAPES, cfg)
    a.encode(_rand(0))
    a.save(tmp_path / "ef.safetensors")
    b = Encoder(SHAPES, cfg)
    b.load(tmp_path / "ef.safetensors")
    ea, eb = a.encode(_rand(1)), b.encode(_rand(1))
    assert torch.equal(ea.idx, eb.idx) and torch.equal(ea.val, eb.val) and torch.equal(ea.scales, eb.scales)
    assert list(tmp_path.iterdir()) == [tmp_path / "ef.safetensors"]  # no temp file left behind


def test_apply_and_revert_is_bit_exact() -> None:
    params = {n: torch.randn(s) for n, s in SHAPES.items()}
    orig = {n: p.clone() for n, p in params.items()}
    enc = Encoder(SHAPES, CodecConfig(chunk=64, topk=8))
    sparse = decode_sparse(enc.encode(_rand(3)))
    undo = apply_sparse(params, sparse, scale=-0.7)
    dense = decode(enc.encode(_rand(3)))  # different update; only used to show params moved
    assert any(not torch.equal(params[n], orig[n]) for n in params)
    undo.revert()
    assert all(torch.equal(params[n], orig[n]) for n in params)
    del dense


def test_apply_is_all_or_nothing_when_a_later_tensor_is_bad() -> None:
    """A hostile update whose second tensor is wrong must leave no trace of its first one."""
    from subnet.codec.sparseloco import SparseTensor

    params = {n: torch.randn(s) for n, s in SHAPES.items()}
    orig = {n: p.clone() for n, p in params.items()}
    enc = Encoder(SHAPES, CodecConfig(chunk=64, topk=8))
    good = decode_sparse(enc.encode(_rand(4)))
    first = good[0]
    n = params[first.name].numel()
    bad_tails = [
        SparseTensor(name="no.such.param", shape=first.shape, index=first.index, values=first.values),
        SparseTensor(name=first.name, shape=first.shape, index=torch.tensor([0, n]), values=torch.ones(2)),
        SparseTensor(name=first.name, shape=first.shape, index=torch.tensor([-1]), values=torch.ones(1)),
        SparseTensor(name=first.name, shape=first.shape, index=torch.tensor([0, 1]), values=torch.ones(3)),
    ]
    for tail in bad_tails:
        with pytest.raises(BadShape):
            apply_sparse(params, [*good, tail], scale=-1.0)
        assert all(torch.equal(params[k], orig[k]) for k in params), tail
