"""Tests for copy detection: real miners' SparseLoCo payloads, real signed re-uploads."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from bittensor.sp_core import Keypair

from subnet.codec.sparseloco import CodecConfig, EncodedUpdate, Encoder, decode, decode_sparse
from subnet.codec.wire import ArtifactHeader, expected_max_bytes, read_artifact, write_artifact
from subnet.data.config import DataConfig
from subnet.data.pages import load_pages
from subnet.errors import ConfigError
from subnet.model.fragments import fragment_shapes, fragment_state, partition
from subnet.model.presets import build_model
from subnet.validator.copydetect import (
    DEFAULT_THRESHOLD,
    Submission,
    find_copies,
    overlap,
    support_of,
    support_overlap,
)

torch.set_num_threads(1)
B = 8
CODEC = CodecConfig()


class Miners:
    """A briefly trained base model and honest miners' encoded updates on disjoint pages."""

    def __init__(self, n: int = 4) -> None:
        pages = load_pages(DataConfig(vocab_size=2048))
        model = build_model("tiny", seed=0)

        def step(opt: torch.optim.Optimizer, batch: torch.Tensor) -> None:
            logits = model(input_ids=batch[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()

        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for s in range(20):
            step(opt, pages.batch(range(s * B, s * B + B)))
        base = {k: v.clone() for k, v in model.state_dict().items()}
        self.frag = partition(model, 1)[0]
        self.shapes = fragment_shapes(model, self.frag)
        self.encoded: list[EncodedUpdate] = []
        for m in range(n):
            model.load_state_dict(base)
            start = fragment_state(model, self.frag)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            for h in range(4):
                first = 2000 + 300 * m + h * B
                step(opt, pages.batch(range(first, first + B)))
            end = fragment_state(model, self.frag)
            self.encoded.append(Encoder(self.shapes, CODEC).encode({k: start[k] - end[k] for k in start}))


@pytest.fixture(scope="module")
def miners() -> Miners:
    return Miners()


def _sub(uid: int, update, t: float, block: int = 10, fragment: int = 0) -> Submission:
    return Submission(uid=uid, hotkey=f"hk{uid}", fragment=fragment, first_seen=t, commit_block=block, update=update)


def test_honest_miners_on_different_pages_are_not_flagged(miners: Miners) -> None:
    sims = [overlap(a, b) for a, b in itertools.combinations(miners.encoded, 2)]
    assert max(sims) < DEFAULT_THRESHOLD / 2, sims
    subs = [_sub(uid, enc, t=float(uid)) for uid, enc in enumerate(miners.encoded)]
    assert find_copies(subs) == {}


def test_exact_reupload_resigned_by_another_hotkey_is_charged(miners: Miners) -> None:
    alice, bob = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
    max_bytes = expected_max_bytes(miners.shapes, CODEC)
    hdr = dict(netuid=1, window=7, fragment=0, base_version=3)
    original = write_artifact(miners.encoded[0], ArtifactHeader(uid=1, hotkey=alice.ss58_address, **hdr), alice)
    stolen = read_artifact(original, expected_hotkey=alice.ss58_address, max_bytes=max_bytes, shapes=miners.shapes)
    resigned = write_artifact(stolen.encoded, ArtifactHeader(uid=9, hotkey=bob.ss58_address, **hdr), bob)
    assert resigned != original
    got = read_artifact(resigned, expected_hotkey=bob.ss58_address, max_bytes=max_bytes, shapes=miners.shapes)
    assert overlap(got.encoded, miners.encoded[0]) == pytest.approx(1.0)
    subs = [_sub(1, miners.encoded[0], t=100.0), _sub(9, got.encoded, t=101.0)]
    subs += [_sub(u, miners.encoded[u - 1], t=50.0) for u in (2, 3)]
    assert find_copies(subs) == {9: 1}


@pytest.mark.parametrize("rel", [0.0, 0.1, 0.3])
def test_copy_with_noise_or_rescaling_is_charged(miners: Miners, rel: float) -> None:
    dense = decode(miners.encoded[1])
    gen = torch.Generator().manual_seed(1)
    noisy = {}
    for k, v in dense.items():
        scale = v[v != 0].abs().mean() if bool((v != 0).any()) else torch.tensor(0.0)
        noisy[k] = 1.5 * (v + rel * scale * torch.randn(v.shape, generator=gen))  # dense noise, then re-encode
    copy = Encoder(miners.shapes, CODEC).encode(noisy)
    assert overlap(miners.encoded[1], copy) >= DEFAULT_THRESHOLD
    subs = [_sub(5, copy, t=20.0), _sub(2, miners.encoded[1], t=10.0), _sub(3, miners.encoded[2], t=15.0)]
    assert find_copies(subs) == {5: 2}


def test_later_is_charged_by_first_seen_then_block_then_uid(miners: Miners) -> None:
    e = miners.encoded[0]
    assert find_copies([_sub(1, e, t=5.0), _sub(2, e, t=4.0)]) == {1: 2}
    assert find_copies([_sub(1, e, t=5.0, block=9), _sub(2, e, t=5.0, block=8)]) == {1: 2}
    assert find_copies([_sub(4, e, t=5.0), _sub(3, e, t=5.0)]) == {4: 3}
    # a chain of copies is charged to the earliest original
    assert find_copies([_sub(1, e, t=1.0), _sub(2, e, t=2.0), _sub(3, e, t=3.0)]) == {2: 1, 3: 1}


def test_only_same_fragment_is_compared(miners: Miners) -> None:
    e = miners.encoded[0]
    assert find_copies([_sub(1, e, t=1.0, fragment=0), _sub(2, e, t=2.0, fragment=1)]) == {}


def test_support_overlap_on_dense_tensors(miners: Miners) -> None:
    dense = decode(miners.encoded[0])
    assert support_overlap(dense, dense) == pytest.approx(1.0)
    assert support_overlap(dense, {k: -v for k, v in dense.items()}) == 0.0  # opposite values
    shifted = {k: torch.roll(v.reshape(-1), 1).reshape(v.shape) * (v.reshape(-1) == 0).reshape(v.shape)
               for k, v in dense.items()}
    assert support_overlap(dense, shifted) < 0.05
    # a copier that sends only half of the entries is still caught (overlap over the smaller set)
    half = decode_sparse(miners.encoded[0])
    half = [type(s)(name=s.name, shape=s.shape, index=s.index[::2], values=s.values[::2]) for s in half]
    assert overlap(half, miners.encoded[0]) == pytest.approx(1.0)
    assert support_of({}).index.size == 0
    assert overlap({}, dense) == 0.0


def test_bad_arguments(miners: Miners) -> None:
    e = miners.encoded[0]
    with pytest.raises(ConfigError):
        find_copies([_sub(1, e, t=1.0), _sub(1, e, t=2.0)])
    with pytest.raises(ConfigError):
        find_copies([_sub(1, e, t=1.0)], threshold=0.0)


# --------------------------------------------------------------------------------------------- sighting intervals

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from subnet.validator.copydetect import judge_copies  # noqa: E402

_G = torch.Generator().manual_seed(7)
_ENC = Encoder({"w": (64, 64)}, CodecConfig(chunk=512, topk=32)).encode({"w": torch.randn(64, 64, generator=_G)})


def _interval_sub(uid: int, seen_after: float, first_seen: float) -> Submission:
    return Submission(uid=uid, hotkey=f"hk{uid}", fragment=0, first_seen=first_seen, seen_after=seen_after,
                      commit_block=0, update=_ENC)


@settings(max_examples=200, deadline=None)
@given(upload=st.floats(0, 100), victim_absent_lag=st.floats(0.001, 5), victim_found_lag=st.floats(0, 5),
       copy_lag=st.floats(0.001, 5), copier_absent=st.floats(-10, 200), copier_found_lag=st.floats(0, 5))
def test_an_honest_original_is_never_charged_whatever_the_copier_claims(upload, victim_absent_lag, victim_found_lag,
                                                                        copy_lag, copier_absent, copier_found_lag):
    """The victim's store said "absent" before its upload and we had its bytes after; the copier's bytes exist only
    after the upload (copy_lag), and its store may claim "absent" at any time it likes. The victim is never charged."""
    victim = _interval_sub(1, upload - victim_absent_lag, upload + victim_found_lag)
    copier = _interval_sub(2, min(copier_absent, upload + copy_lag), upload + copy_lag + copier_found_lag)
    verdict = judge_copies([victim, copier])
    assert 1 not in verdict.charged
    assert 2 in verdict.charged or (verdict.tied.get(1) == 2 and verdict.tied.get(2) == 1)


def test_disjoint_intervals_charge_the_later_and_overlaps_tie():
    early, late = _interval_sub(1, 0.0, 1.0), _interval_sub(2, 2.0, 3.0)
    assert judge_copies([late, early]).charged == {2: 1}
    a, b = _interval_sub(1, 0.0, 2.0), _interval_sub(2, 1.0, 3.0)
    v = judge_copies([a, b])
    assert v.charged == {} and v.tied == {1: 2, 2: 1}
    never_absent = _interval_sub(3, float("-inf"), 0.5)  # first poll already found bytes: its start is unknown
    v = judge_copies([_interval_sub(1, 0.0, 0.2), never_absent])
    assert v.charged == {} and set(v.tied) == {1, 3}


def test_a_tie_is_resolved_by_whose_assigned_pages_the_update_fits():
    """Near-duplicates with overlapping sightings: the copy's update does not fit the copier's own pages."""
    from subnet.validator.pipeline import resolve_ties
    from subnet.validator.submission import Outcome
    from subnet.validator.submission import Submission as Judged

    def scored(uid: int, assigned: float | None, control: float | None, score: float | None) -> Judged:
        detail = {} if assigned is None else {"assigned_improvement": assigned, "random_improvement": control}
        outcome = Outcome.SCORED if score else Outcome.VERIFIED
        return Judged(uid=uid, hotkey=f"hk{uid}", fragment=0, outcome=outcome, reason="ok" if score else "verified",
                      score=score, detail=detail, sparse=())

    original, copy = resolve_ties([scored(1, 0.05, 0.01, 0.02), scored(2, 0.012, 0.011, 0.02)], {1: 2, 2: 1})
    assert original.score == 0.02 and original.sparse is not None
    assert copy.score == 0.0 and copy.sparse is None and copy.outcome is Outcome.COPY_TIE
    assert copy.reason.startswith("copy tie uid 1")
    # neither evaluated: nothing tells them apart
    a, b = resolve_ties([scored(3, None, None, None), scored(4, None, None, None)], {3: 4, 4: 3})
    assert a.score == b.score == 0.0 and a.outcome is b.outcome is Outcome.COPY_TIE
