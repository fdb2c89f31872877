"""`subnet.chain.make_subtensor`: network strings to SDK clients, and the error seam."""

from __future__ import annotations

import bittensor as bt
import pytest

from subnet.chain import chain_call, commitment_call, devnet_url, make_subtensor
from subnet.devnet.substrate import DevnetSubstrate
from subnet.errors import ChainError


def test_devnet_urls(monkeypatch):
    monkeypatch.delenv("TESSERA_DEVNET_PORT", raising=False)
    assert devnet_url("devnet") == "ws://127.0.0.1:9946"
    monkeypatch.setenv("TESSERA_DEVNET_PORT", "12345")
    assert devnet_url("devnet") == "ws://127.0.0.1:12345"
    assert devnet_url("devnet+ws://127.0.0.1:7000") == "ws://127.0.0.1:7000"
    assert devnet_url("finney") is None
    assert devnet_url("ws://127.0.0.1:9944") is None


@pytest.mark.parametrize("bad", ["devnet+ws://10.0.0.1:9946", "devnet+http://127.0.0.1:1", "devnet+ws://127.0.0.1"])
def test_devnet_must_be_loopback_ws(bad):
    with pytest.raises(ChainError):
        devnet_url(bad)


def test_make_subtensor_picks_backend(monkeypatch):
    monkeypatch.delenv("TESSERA_DEVNET_TRANSPORT", raising=False)
    monkeypatch.delenv("TESSERA_DEVNET_SUBSTRATE_PORT", raising=False)
    dev = make_subtensor("devnet+ws://127.0.0.1:7001")  # default: the plain SDK client on the Substrate face
    assert isinstance(dev, bt.Subtensor)
    assert isinstance(dev._client._substrate, bt.RpcSubstrate)
    assert dev._client._substrate.endpoint == "ws://127.0.0.1:7002"
    assert dev._client._substrate.fallback_endpoints == [] and dev._client._substrate.archive_endpoints == []
    monkeypatch.setenv("TESSERA_DEVNET_SUBSTRATE_PORT", "7100")
    assert make_subtensor("devnet+ws://127.0.0.1:7001")._client._substrate.endpoint == "ws://127.0.0.1:7100"
    monkeypatch.setenv("TESSERA_DEVNET_TRANSPORT", "json")
    assert isinstance(make_subtensor("devnet+ws://127.0.0.1:7001")._client._substrate, DevnetSubstrate)
    monkeypatch.setenv("TESSERA_DEVNET_TRANSPORT", "carrier-pigeon")
    with pytest.raises(ChainError, match="TESSERA_DEVNET_TRANSPORT"):
        make_subtensor("devnet")
    real = make_subtensor("test")  # construction is cold: no connection is opened
    assert isinstance(real, bt.Subtensor)
    assert not isinstance(real._client._substrate, DevnetSubstrate)
    with pytest.raises(ChainError):
        make_subtensor("")


def test_unreachable_devnet_becomes_chain_error(monkeypatch):
    from harness.devnet import free_port

    monkeypatch.setenv("TESSERA_DEVNET_TRANSPORT", "json")
    sub = make_subtensor(f"devnet+ws://127.0.0.1:{free_port()}")
    sub._client._substrate._rpc.connect_retries = 1
    with pytest.raises(ChainError):
        chain_call(lambda: sub.block)


def test_unreachable_devnet_substrate_face_becomes_chain_error(monkeypatch):
    from harness.devnet import free_port_pair

    monkeypatch.delenv("TESSERA_DEVNET_TRANSPORT", raising=False)
    monkeypatch.delenv("TESSERA_DEVNET_SUBSTRATE_PORT", raising=False)
    sub = make_subtensor(f"devnet+ws://127.0.0.1:{free_port_pair()}", timeout_s=2)
    with pytest.raises(ChainError):
        chain_call(lambda: sub.block)


def test_commitment_call_shape_and_limit():
    call = commitment_call(3, "hello")
    assert call.module == "Commitments" and call.function == "set_commitment"
    assert call.params["info"] == {"fields": [{"Raw5": "0x68656c6c6f"}]}
    long = commitment_call(3, "x" * 129)  # over one Raw field: split, read back whole by the SDK
    assert [next(iter(f)) for f in long.params["info"]["fields"]] == ["Raw128", "Raw1"]
    with pytest.raises(ChainError):
        commitment_call(3, "x" * 385)  # 3 fields x 128 bytes is all the chain holds
