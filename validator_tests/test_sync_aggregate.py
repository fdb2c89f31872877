"""Robust aggregation math and manifest building (subnet.sync.aggregate)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from harness.threads import digests_across_thread_counts

from subnet.protocol.keys import artifact_key
from subnet.protocol.manifest import Manifest
from subnet.sync.aggregate import (
    DEFAULT_RULE,
    Contribution,
    build_manifest,
    combine,
    delta_norm,
    robust_coefficients,
    select_top,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SHA = "ab" * 32


def _delta(scale: float, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(8, 4, generator=g)
    b = torch.randn(5, generator=g)
    n = math.sqrt(float((a.double() ** 2).sum() + (b.double() ** 2).sum()))
    return {"a": a * (scale / n), "b": b * (scale / n)}


def test_norm_clip_to_median_then_mean() -> None:
    deltas = [_delta(s, i) for i, s in enumerate([1.0, 2.0, 3.0, 100.0])]
    comb = robust_coefficients(deltas)
    assert comb.median_norm == pytest.approx(2.5)
    want = [1 / 4, 1 / 4, (2.5 / 3) / 4, (2.5 / 100) / 4]
    assert comb.coefs == pytest.approx(want, rel=1e-6)  # deltas are fp32
    # Every clipped contribution ends at the median norm: no single one can dominate.
    for d, c in zip(deltas, comb.coefs):
        assert delta_norm(d) * c * 4 <= comb.median_norm * (1 + 1e-12)
    agg = combine(deltas, comb.coefs)
    assert delta_norm(agg) <= 2.5 + 1e-6


def test_attacker_scaling_is_bounded() -> None:
    honest = [_delta(1.0, i) for i in range(4)]
    attack = {k: -1e6 * v for k, v in honest[0].items()}
    comb = robust_coefficients(honest + [attack])
    agg = combine(honest + [attack], comb.coefs)
    assert delta_norm(agg) <= comb.median_norm + 1e-6


def test_non_finite_contributions_are_dropped_and_not_counted() -> None:
    good = [_delta(1.0, 1), _delta(3.0, 2)]
    bad = _delta(1.0, 3)
    bad["a"][0, 0] = float("nan")
    inf = _delta(1.0, 4)
    inf["b"][2] = float("inf")
    comb = robust_coefficients([good[0], bad, good[1], inf])
    assert comb.coefs[1] is None and comb.coefs[3] is None
    assert comb.kept == 2
    assert comb.median_norm == pytest.approx(2.0)
    assert comb.coefs[0] == pytest.approx(0.5) and comb.coefs[2] == pytest.approx((2 / 3) / 2)
    assert robust_coefficients([bad]).coefs == (None,)


def test_combine_is_elementwise_in_order() -> None:
    deltas = [_delta(1.0, i) for i in range(3)]
    coefs = [0.3, 0.2, 0.1]
    out = combine(deltas, coefs)
    manual = (deltas[0]["a"] * 0.3 + deltas[1]["a"] * 0.2) + deltas[2]["a"] * 0.1
    assert torch.equal(out["a"], manual)
    assert combine([], [], names=["a"]) == {}
    with pytest.raises(ValueError):
        combine(deltas, coefs[:2])


@dataclass
class _S:
    score: float
    uid: int
    hotkey: str


def test_select_top_orders_by_score_then_uid_and_skips_nan() -> None:
    items = [_S(0.5, 3, "c"), _S(float("nan"), 0, "z"), _S(0.9, 2, "b"), _S(0.5, 1, "a"), _S(-1.0, 4, "d"),
             _S(float("inf"), 9, "i")]
    assert [s.uid for s in select_top(items, 3)] == [2, 1, 3]
    assert [s.uid for s in select_top(items, 10)] == [2, 1, 3, 4]
    assert select_top(items, 0) == []
    with pytest.raises(ValueError):
        select_top(items, -1)


def _contrib(fragment: int, uid: int, scale: float, seed: int, window: int = 5) -> Contribution:
    hotkey = f"hk{uid}"
    return Contribution(fragment=fragment, uid=uid, hotkey=hotkey, key=artifact_key(1, window, hotkey, fragment),
                        sha256=SHA, score=1.0, delta=_delta(scale, seed))


def test_build_manifest_per_fragment_and_json_round_trip() -> None:
    cs = [_contrib(1, 7, 4.0, 1), _contrib(0, 3, 1.0, 2), _contrib(1, 2, 1.0, 3), _contrib(0, 9, 2.0, 4)]
    bad = _contrib(0, 5, 1.0, 5)
    bad.delta["a"][0, 0] = float("inf")
    m = build_manifest(netuid=1, window=5, base_version=4, contributions=cs + [bad], outer_lr=0.7, top_g=8)
    assert m.new_version == 5 and m.outer_lr == 0.7
    assert [(e.fragment, e.uid) for e in m.entries] == [(0, 3), (0, 9), (1, 2), (1, 7)]
    # fragment 0: norms 1, 2 -> median 1.5; fragment 1: norms 1, 4 -> median 2.5
    assert [e.weight for e in m.entries] == pytest.approx([0.5, (1.5 / 2) / 2, 0.5, (2.5 / 4) / 2], rel=1e-6)
    assert m.aggregation["kept.0"] == 2 and m.aggregation["rule"] == DEFAULT_RULE
    back = Manifest.from_json(m.to_json())
    assert back == m and back.sha256 == m.sha256
    assert [e.weight for e in back.entries] == [e.weight for e in m.entries]  # exact float round trip


def test_empty_window_still_advances_version() -> None:
    m = build_manifest(netuid=1, window=9, base_version=3, contributions=[], outer_lr=1.0)
    assert m.entries == () and (m.base_version, m.new_version) == (3, 4)


_THREADS_SCRIPT = """
import sys, hashlib, torch
torch.set_num_threads(int(sys.argv[1]))
from subnet.sync.aggregate import combine
g = torch.Generator().manual_seed(0)
deltas = [{"w": torch.randn(513, 1031, generator=g)} for _ in range(5)]
coefs = [0.2, 0.13, 0.07, 0.31, 0.05]
p = torch.randn(513, 1031, generator=g)
step = combine(deltas, coefs)["w"]
p = torch.sub(p, torch.mul(step, 0.7))
print(hashlib.sha256(p.numpy().tobytes()).hexdigest())
"""


def test_apply_math_is_bitwise_identical_across_thread_counts() -> None:
    outs = digests_across_thread_counts(_THREADS_SCRIPT)
    assert len(outs[0]) == 64 and outs[0] == outs[1]
