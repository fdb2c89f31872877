"""Object keys: exact format, round trips, refusal of path-like input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subnet.errors import ProtocolError
from subnet.protocol.keys import (
    artifact_key,
    checkpoint_key,
    manifest_key,
    parse_artifact_key,
    parse_checkpoint_key,
    parse_manifest_key,
)

HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


def test_format() -> None:
    assert artifact_key(3, 120, HOTKEY, 2) == f"3/120/{HOTKEY}.2.safetensors"
    assert manifest_key(3, 120) == "3/manifests/120.json"
    assert checkpoint_key(3, 7) == "3/checkpoints/7.safetensors"


@given(netuid=st.integers(0, 65535), window=st.integers(0, 10**9), fragment=st.integers(0, 1000),
       hotkey=st.text(alphabet="abcXYZ0123456789", min_size=1, max_size=64))
def test_round_trip(netuid: int, window: int, fragment: int, hotkey: str) -> None:
    assert parse_artifact_key(artifact_key(netuid, window, hotkey, fragment)) == (netuid, window, hotkey, fragment)
    assert parse_manifest_key(manifest_key(netuid, window)) == (netuid, window)
    assert parse_checkpoint_key(checkpoint_key(netuid, window)) == (netuid, window)


@pytest.mark.parametrize("hotkey", ["", "../x", "a/b", "a.b", "x" * 129, "ключ", "a b"])
def test_bad_hotkey(hotkey: str) -> None:
    with pytest.raises(ProtocolError):
        artifact_key(1, 1, hotkey, 0)


@pytest.mark.parametrize("key", [
    "1/2/abc.0.safetensors\n", "01/2/abc.0.safetensors", "1/2/abc.0.pt", "../1/2/abc.0.safetensors",
    "1/2/a.b.0.safetensors", "1/٣/abc.0.safetensors", "",
])
def test_bad_keys_refused(key: str) -> None:
    with pytest.raises(ProtocolError):
        parse_artifact_key(key)


def test_negative_numbers_refused() -> None:
    for call in (lambda: artifact_key(-1, 0, "a", 0), lambda: manifest_key(0, -1), lambda: checkpoint_key(0, True)):
        with pytest.raises(ProtocolError):
            call()
