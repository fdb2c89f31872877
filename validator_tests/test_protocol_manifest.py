"""Manifest: canonical bytes, sha256, signing message, strict parsing of peer input."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from bittensor.sp_core import Keypair
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.errors import ProtocolError
from subnet.protocol.keys import artifact_key
from subnet.protocol.manifest import SIGNING_DOMAIN, Manifest, ManifestEntry

ALICE = Keypair.create_from_uri("//Alice")


def entry(fragment: int, uid: int, hotkey: str = "hk", weight: float = 1.0) -> ManifestEntry:
    return ManifestEntry(fragment=fragment, uid=uid, hotkey=f"{hotkey}{uid}",
                         key=artifact_key(2, 9, f"{hotkey}{uid}", fragment), sha256=f"{uid:064x}", weight=weight)


def manifest(entries: tuple[ManifestEntry, ...]) -> Manifest:
    return Manifest(netuid=2, window=9, base_version=4, new_version=5, entries=entries, outer_lr=0.7,
                    aggregation={"top_g": 2, "clip": "median"}, model_hash="ab" * 32)


def test_canonical_and_golden_hash() -> None:
    m = manifest((entry(1, 3), entry(0, 5, weight=0.25)))
    text = m.to_json()
    assert " " not in text and "\n" not in text
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert [e.fragment for e in m.entries] == [0, 1]  # canonical order
    assert Manifest.from_json(text) == m
    assert Manifest.from_json(text.encode()).sha256 == m.sha256
    # Order of construction must not change the bytes.
    assert manifest((entry(0, 5, weight=0.25), entry(1, 3))).sha256 == m.sha256
    assert m.sha256 == "fd2b4fcad15a5910743adafc68b39c842f847080e352ca0a9e4d9b432f1d6db6"


def test_sign_covers_every_field_but_the_signature() -> None:
    m = manifest((entry(1, 3), entry(0, 5, weight=0.25)))
    assert m.signer is None and m.signature is None and m.schema == 2
    signed = m.sign(ALICE)
    assert signed.signer == ALICE.ss58_address and len(signed.signature) == 128
    assert dataclasses.replace(signed, signer=None, signature=None) == m  # a copy; content unchanged
    msg = signed.signing_message()
    assert msg.startswith(SIGNING_DOMAIN)
    body = json.loads(msg[len(SIGNING_DOMAIN):])
    assert "signature" not in body and body["signer"] == ALICE.ss58_address and body["model_hash"] == "ab" * 32
    # sr25519 signatures are randomised, so the golden value is the message, not the signed bytes.
    assert hashlib.sha256(msg).hexdigest() == "0f753b77b0edf85167dc4444d58214f1971c244d793caf87c21f6c4005a7aba3"
    assert Keypair(ss58_address=ALICE.ss58_address).verify(msg, bytes.fromhex(signed.signature))
    again = Manifest.from_json(signed.to_json())
    assert again == signed and again.signing_message() == msg
    # Changing any field changes what is signed.
    for change in ({"outer_lr": 0.8}, {"model_hash": "cd" * 32}, {"new_version": 6, "base_version": 5},
                   {"signer": Keypair.create_from_uri("//Bob").ss58_address}):
        assert dataclasses.replace(signed, **change).signing_message() != msg


@settings(max_examples=40, deadline=None)
@given(specs=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 255), st.floats(0, 10, allow_nan=False)),
                      max_size=12, unique_by=lambda t: (t[0], t[1])))
def test_round_trip_property(specs: list[tuple[int, int, float]]) -> None:
    m = manifest(tuple(entry(f, u, weight=w) for f, u, w in specs))
    again = Manifest.from_json(m.to_json())
    assert again == m and again.to_json() == m.to_json()
    assert sum(len(v) for v in m.by_fragment().values()) == len(specs)


def _mutated(**changes: object) -> str:
    data = json.loads(manifest((entry(0, 1),)).to_json())
    for k, v in changes.items():
        if k.startswith("entry_"):
            data["entries"][0][k[6:]] = v
        elif v is ...:
            del data[k]
        else:
            data[k] = v
    return json.dumps(data)


@pytest.mark.parametrize("text", [
    "", "[]", "{", "null", "NaN",
    _mutated(window=-1), _mutated(window="9"), _mutated(new_version=4), _mutated(schema=1), _mutated(schema=3),
    _mutated(signer=...), _mutated(signature=...), _mutated(signature="ab" * 64),  # a signature needs a signer
    _mutated(signer="../x"), _mutated(signer=7), _mutated(signer=ALICE.ss58_address, signature="AB" * 64),
    _mutated(signer=ALICE.ss58_address, signature="ab" * 63), _mutated(signer=ALICE.ss58_address, signature=5),
    _mutated(outer_lr=-1), _mutated(entries={}), _mutated(extra=1), _mutated(model_hash=...),
    _mutated(model_hash="xyz"), _mutated(aggregation={"a": [1]}), _mutated(aggregation=[]),
    _mutated(entry_sha256="A" * 64), _mutated(entry_weight=-0.5), _mutated(entry_hotkey="../x"),
    _mutated(entry_key="2/8/hk1.0.safetensors"), _mutated(entry_fragment=1), _mutated(entry_uid=True),
    _mutated(entries=[1]),
    '{"outer_lr": Infinity}',
])
def test_malformed_refused(text: str) -> None:
    with pytest.raises(ProtocolError):
        Manifest.from_json(text)


def test_duplicates_refused() -> None:
    with pytest.raises(ProtocolError):
        manifest((entry(0, 1), entry(0, 1, weight=2.0)))
