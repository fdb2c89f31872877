"""Each broken-file adversary's bytes are refused by `read_artifact` with the expected typed error.

Fast and in-process: the files come from the real behaviour code
(subnet.adversary.behaviours) with a real tiny global model and a real sr25519
hotkey, and are read back with the validator's own checks (the same
keyword arguments the validator loop pins). The network runs that check the
same outcomes end to end are in test_adversaries.py.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from bittensor.sp_core import Keypair

from subnet.adversary import behaviours as B
from subnet.adversary.config import AdversaryNeuronConfig
from subnet.codec.errors import (
    ArtifactError,
    BadIndex,
    BadShape,
    BadSignature,
    HeaderMismatch,
    Malformed,
    NonFinite,
    TooLarge,
    Truncated,
    WrongHotkey,
)
from subnet.codec.sparseloco import Encoder
from subnet.codec.wire import ArtifactHeader, read_artifact, write_artifact
from subnet.node.globalmodel import build_global_model
from subnet.validator.copydetect import Submission, find_copies

torch.set_num_threads(1)

KP = Keypair.create_from_uri("//tessera-adversary-test")
MAX_BYTES = 1 << 20
UID, FRAG, WINDOW = 3, 1, 12


@dataclass
class _Wallet:
    hotkey: Keypair


@dataclass
class _Rt:
    """The NodeRuntime fields the behaviours read (a real model and config, no chain)."""

    gm: object
    codec: object
    cfg: AdversaryNeuronConfig
    uid: int
    wallet: _Wallet
    state_dir: Path
    netuid: int = 1


@dataclass(frozen=True)
class _Peer:
    uid: int


@pytest.fixture(scope="module")
def gm():
    return build_global_model("tiny", 2, 0)


@pytest.fixture
def rt(gm, tmp_path):
    cfg = AdversaryNeuronConfig()
    return _Rt(gm=gm, codec=cfg.codec, cfg=cfg, uid=UID, wallet=_Wallet(KP), state_dir=tmp_path)


def _header(w: int = WINDOW) -> ArtifactHeader:
    return ArtifactHeader(netuid=1, window=w, uid=UID, hotkey=KP.ss58_address, fragment=FRAG, base_version=4)


def _read(rt, data: bytes, w: int = WINDOW, max_bytes: int = MAX_BYTES):
    return read_artifact(data, expected_hotkey=KP.ss58_address, max_bytes=max_bytes, shapes=rt.gm.shapes(FRAG),
                         netuid=1, window=w, fragment=FRAG, uid=UID, codec=rt.codec)


def _broken(rt, behaviour: str, w: int = WINDOW) -> bytes:
    frag = rt.gm.fragment(FRAG)
    return B.broken_artifact(behaviour, rt, w, frag, _header(w), lambda: B._cheap_encoded(rt, frag, w),
                             [_Peer(u) for u in range(6)])


def test_control_an_honest_looking_file_is_accepted(rt) -> None:
    enc = B._cheap_encoded(rt, rt.gm.fragment(FRAG), WINDOW)
    assert _read(rt, write_artifact(enc, _header(), KP)).header == _header()


@pytest.mark.parametrize(("behaviour", "error"), [
    ("nan", NonFinite), ("truncated", Truncated), ("wrong_shape", BadShape), ("bad_index", BadIndex),
    ("pickle", Malformed), ("lying_header", HeaderMismatch),
])
def test_broken_file_refused_with_its_error(rt, behaviour: str, error: type[ArtifactError]) -> None:
    for w in (WINDOW, WINDOW + 1, WINDOW + 2):  # behaviours that rotate per window are covered on every branch
        with pytest.raises(error):
            _read(rt, _broken(rt, behaviour, w), w)
        expected = B.EXPECTED_OUTCOME[behaviour]
        assert any(e.endswith(error.__name__) for e in expected), expected


def test_nan_file_is_validly_signed_and_has_non_finite_bf16_scales(rt) -> None:
    from subnet.codec.container import parse_container

    for w in (WINDOW, WINDOW + 1):
        data = _broken(rt, "nan", w)
        c = parse_container(data, max_header_bytes=1 << 20)
        raw = bytes(memoryview(data)[c.tensors["scale"].start:c.tensors["scale"].end])
        scales = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float()
        assert not bool(torch.isfinite(scales).all())
        # the signature is fine: only the non-finite check stops it
        with pytest.raises(NonFinite):
            _read(rt, data, w)


def test_lying_header_rotates_window_fragment_uid(rt) -> None:
    messages = set()
    for w in (WINDOW, WINDOW + 1, WINDOW + 2):
        with pytest.raises(HeaderMismatch) as info:
            _read(rt, _broken(rt, "lying_header", w), w)
        messages.add(str(info.value).split()[1])
    assert messages == {"window", "fragment", "uid"}


def test_impersonation_bad_signature_or_wrong_hotkey(rt) -> None:
    with pytest.raises(BadSignature):
        _read(rt, _broken(rt, "impersonate", 12), 12)
    with pytest.raises(WrongHotkey):
        _read(rt, _broken(rt, "impersonate", 13), 13)


def test_oversized_file_exceeds_the_configured_cap(rt) -> None:
    data = _broken(rt, "oversized")
    assert len(data) == rt.cfg.store.max_artifact_bytes + 1
    with pytest.raises(TooLarge):
        _read(rt, data, max_bytes=rt.cfg.store.max_artifact_bytes)


def test_pickle_bomb_is_live_but_never_loaded(rt, tmp_path: Path) -> None:
    data = _broken(rt, "pickle")
    marker = rt.state_dir / B.PICKLE_MARKER
    with pytest.raises(Malformed, match="pickle"):
        _read(rt, data)
    assert not marker.exists()
    # prove the payload is a real attack: unpickling OUR OWN test bytes creates the marker
    loaded = pickle.loads(data)  # noqa: S301 - our own bytes, to show the bomb works
    loaded["idx"].close()
    assert marker.exists()


def test_noisy_copy_is_caught_by_copy_detection(rt) -> None:
    shapes = rt.gm.shapes(FRAG)
    g = torch.Generator().manual_seed(7)
    honest = Encoder(shapes, rt.codec).encode({n: torch.randn(s, generator=g) * 1e-3 for n, s in shapes.items()})
    copy = B.noisy_copy(honest, shapes, rt.codec, seed=1)
    assert not torch.equal(copy.val, honest.val) or not torch.equal(copy.idx, honest.idx)
    subs = [Submission(uid=2, hotkey="a", fragment=FRAG, first_seen=1.0, commit_block=0, update=honest),
            Submission(uid=UID, hotkey="b", fragment=FRAG, first_seen=2.0, commit_block=0, update=copy)]
    assert find_copies(subs, 0.5) == {UID: 2}
    # control: an independent update of the same size is not a copy
    other = Encoder(shapes, rt.codec).encode({n: torch.randn(s, generator=g) * 1e-3 for n, s in shapes.items()})
    subs[1] = Submission(uid=UID, hotkey="b", fragment=FRAG, first_seen=2.0, commit_block=0, update=other)
    assert find_copies(subs, 0.5) == {}


def test_behaviour_names_match_the_config_literal() -> None:
    from typing import get_args

    from subnet.adversary.config import Behaviour

    assert set(get_args(Behaviour)) == set(B.BEHAVIOURS)
