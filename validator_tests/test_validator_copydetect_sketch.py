"""Sketch-filtered copy detection gives the all-pairs verdicts, and checks only a few pairs exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.codec.sparseloco import SparseTensor
from subnet.errors import ConfigError
from subnet.validator.copydetect import (
    DEFAULT_THRESHOLD,
    SKETCH_SIZE,
    Submission,
    candidate_pairs,
    judge_copies,
    judge_copies_all_pairs,
    min_hits,
    support_of,
)

SPACE = 200_000  # flat positions of the synthetic fragment
K = 2_000  # entries per honest upload (above SKETCH_SIZE, so the sampled path runs)


def _sparse(index: np.ndarray, values: np.ndarray) -> list[SparseTensor]:
    order = np.argsort(index)
    return [SparseTensor(name="w", shape=(SPACE,), index=torch.from_numpy(index[order].astype(np.int64)),
                         values=torch.from_numpy(values[order].astype(np.float32)))]


def _honest(rng: np.random.Generator, shared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An honest-looking support: ~20 % from a common pool of large coordinates, the rest its own."""
    own = rng.choice(SPACE, size=K, replace=False)
    common = rng.choice(shared, size=K // 5, replace=False)
    idx = np.unique(np.concatenate([common, own]))[:K]
    return idx, rng.standard_normal(len(idx))


def _copy(rng: np.random.Generator, idx: np.ndarray, val: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "exact":
        return idx, val * 1.7
    if kind == "subset":  # sends a third of the victim's entries
        keep = rng.choice(len(idx), size=len(idx) // 3, replace=False)
        return idx[keep], val[keep]
    if kind == "padded":  # 60 % of the victim's entries, the rest junk of its own
        keep = rng.choice(len(idx), size=int(0.6 * len(idx)), replace=False)
        junk = np.setdiff1d(rng.choice(SPACE, size=len(idx), replace=False), idx)[: len(idx) - len(keep)]
        return np.concatenate([idx[keep], junk]), np.concatenate([val[keep], rng.standard_normal(len(junk))])
    noisy = val + 0.3 * rng.standard_normal(len(val))
    return idx, noisy


def _world(seed: int, n_honest: int, copies: list[tuple[int, str]], fragments: int = 1) -> list[Submission]:
    rng = np.random.default_rng(seed)
    shared = rng.choice(SPACE, size=4 * K, replace=False)
    subs, supports = [], []
    for uid in range(n_honest):
        idx, val = _honest(rng, shared)
        supports.append((idx, val))
        subs.append(Submission(uid=uid, hotkey=f"hk{uid}", fragment=uid % fragments, first_seen=float(uid),
                               seen_after=uid - 0.5, commit_block=1, update=_sparse(idx, val)))
    for n, (victim, kind) in enumerate(copies):
        idx, val = _copy(rng, *supports[victim % n_honest], kind)
        uid = n_honest + n
        t = float(rng.uniform(-2, n_honest + 2))
        subs.append(Submission(uid=uid, hotkey=f"hk{uid}", fragment=(victim % n_honest) % fragments, first_seen=t,
                               seen_after=t - float(rng.uniform(0, 3)), commit_block=1, update=_sparse(idx, val)))
    return subs


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_honest=st.integers(2, 12), fragments=st.integers(1, 3),
       copies=st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["exact", "subset", "padded", "noisy"])),
                       max_size=6),
       key=st.integers(0, 2**64 - 1))
def test_verdicts_equal_the_all_pairs_scan(seed, n_honest, fragments, copies, key):
    subs = _world(seed, n_honest, copies, fragments)
    assert judge_copies(subs, key=key) == judge_copies_all_pairs(subs)


def test_every_planted_copy_is_a_candidate_and_honest_pairs_mostly_are_not():
    subs = _world(3, 40, [(v, k) for v in range(0, 40, 5) for k in ("exact", "subset", "padded", "noisy")])
    supports = {s.uid: support_of(s.update) for s in subs}
    pairs = candidate_pairs(supports, {0: [s.uid for s in subs]}, DEFAULT_THRESHOLD, key=12345)
    for n, s in enumerate(subs[40:]):
        victim = [v for v in range(0, 40, 5) for _ in range(4)][n]
        assert frozenset((victim, s.uid)) in pairs, s.uid
    n_all = len(subs) * (len(subs) - 1) // 2
    assert len(pairs) < 0.05 * n_all, (len(pairs), n_all)  # exact checks: copies and their kin, not all pairs


def test_small_supports_are_sampled_whole_and_judged_exactly():
    rng = np.random.default_rng(0)
    idx = rng.choice(SPACE, size=SKETCH_SIZE // 4, replace=False)
    val = rng.standard_normal(len(idx))
    half = idx[: len(idx) // 2]
    a = Submission(uid=1, hotkey="a", fragment=0, first_seen=1.0, commit_block=1, update=_sparse(idx, val))
    b = Submission(uid=2, hotkey="b", fragment=0, first_seen=5.0, seen_after=4.0, commit_block=1,
                   update=_sparse(half, val[: len(half)]))
    for key in range(20):
        assert judge_copies([a, b], key=key).charged == {2: 1}


def test_the_hit_bound_leaves_room_below_the_threshold():
    m = min_hits(SKETCH_SIZE, DEFAULT_THRESHOLD)
    assert 0.3 * SKETCH_SIZE < m < DEFAULT_THRESHOLD * SKETCH_SIZE
    assert min_hits(0, DEFAULT_THRESHOLD) == 0
    with pytest.raises(ConfigError):
        judge_copies(_world(0, 2, []), threshold=1.5)


def test_a_prepared_support_is_accepted_as_the_update():
    subs = _world(5, 6, [(1, "exact"), (2, "subset")])
    prepared = [Submission(uid=s.uid, hotkey=s.hotkey, fragment=s.fragment, first_seen=s.first_seen,
                           seen_after=s.seen_after, commit_block=s.commit_block, update=support_of(s.update))
                for s in subs]
    assert judge_copies(prepared, key=1) == judge_copies(subs, key=1) == judge_copies_all_pairs(subs)
