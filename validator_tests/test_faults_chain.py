"""Chain endpoint faults: the SDK client talks to a real devnet process through a faulty wire.

harness.faultproxy sits between the client `make_subtensor` builds and the
devnet's face it speaks (each test runs on both: the SDK's own RpcSubstrate on
the Substrate face, and `DevnetSubstrate` on the JSON face). ChainView's reads (block number, metagraph) must survive a
connection dropped mid-call (retry + reconnect, same answer as without the
fault) and, when the endpoint is dead, end in subnet.errors.ChainError with
a message naming the read and a hint, in bounded time, never a hang.
"""

from __future__ import annotations

import threading
import time

import pytest
from bittensor._transport import rpc as _sdk_rpc
from harness.devnet import bootstrap, running_devnet
from harness.faultproxy import Fault, FaultProxy

from subnet.chain import make_subtensor
from subnet.devnet.config import SUBSTRATE_PORT_ENV, TRANSPORT_ENV
from subnet.errors import ChainError
from subnet.node.chain import ChainView
from subnet.protocol.windows import WindowParams

_SDK_HANDSHAKE_TIMEOUT_S = _sdk_rpc._HANDSHAKE_TIMEOUT
pytestmark = pytest.mark.slow  # a devnet process + the SDK client


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chain-faults")
    with running_devnet(tmp, block_ms=50) as handle:
        result = bootstrap(handle, tmp / "wallets", miners=2)
        yield handle, result


@pytest.fixture(params=["substrate", "json"])
def proxied(chain, request, monkeypatch):
    """The proxy in front of the face the client speaks: the SDK's RpcSubstrate on the Substrate face, or json."""
    handle, result = chain
    substrate = request.param == "substrate"
    with FaultProxy("127.0.0.1", handle.port + 1 if substrate else handle.port) as proxy:
        with monkeypatch.context() as env:  # read when the client is built
            env.setenv(TRANSPORT_ENV, request.param)
            if substrate:
                env.setenv(SUBSTRATE_PORT_ENV, str(proxy.port))
            sub = make_subtensor(f"devnet+ws://127.0.0.1:{handle.port if substrate else proxy.port}")
        view = ChainView(sub, result.netuid, WindowParams(window_blocks=10))
        try:
            yield proxy, view, handle, result
        finally:
            sub.close()


def _cut_after(proxy: FaultProxy, seconds: float) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(seconds), proxy.cut_all()), daemon=True)
    t.start()
    return t


def test_block_read_recovers_from_connection_dropped_mid_call(proxied, request) -> None:
    proxy, view, handle, _ = proxied
    # The SDK's own transport waits out its WebSocket handshake timeout (10 s, `_transport.rpc`) on the
    # connection whose handshake reply was held; the JSON client notices the reset sooner.
    bound = 10 if request.node.callspec.params["proxied"] == "json" else _SDK_HANDSHAKE_TIMEOUT_S + 5
    before = handle.head()["number"]
    proxy.schedule(Fault(kind="delay", delay_s=1.0))  # replies on the first connection are held...
    cutter = _cut_after(proxy, 0.4)  # ...and the connection is reset while the call waits
    t0 = time.monotonic()
    block = view.block()
    elapsed = time.monotonic() - t0
    cutter.join()
    assert block >= before
    assert proxy.connections >= 2, "the client must have reconnected"
    assert proxy.faults_applied[0] == "delay"
    assert elapsed < bound, elapsed


def test_metagraph_recovers_from_dropped_request(proxied) -> None:
    proxy, view, handle, result = proxied
    direct = make_subtensor(handle.network)
    try:
        want = direct.subnets.metagraph(result.netuid).hotkeys
    finally:
        direct.close()
    # The first connection carries the handshake and one request, then dies as the next request is sent.
    proxy.schedule(Fault(kind="drop_on_request", after_requests=2))
    mg = view.metagraph()
    assert mg.hotkeys == want
    assert proxy.connections >= 2
    peers = view.peers(mg)
    assert {p.hotkey for p in peers} == set(want)


def test_network_blip_between_calls_is_invisible(proxied) -> None:
    proxy, view, _, _ = proxied
    first = view.block()
    proxy.cut_all()
    assert view.block() >= first
    proxy.cut_all()
    assert len(view.metagraph().neurons) >= 3


def test_dead_chain_is_chain_error_in_bounded_time(proxied) -> None:
    proxy, view, _, _ = proxied
    view.block()
    proxy.set_default(Fault(kind="refuse"))  # every new connection is reset at once
    proxy.cut_all()  # and the live one dies
    t0 = time.monotonic()
    with pytest.raises(ChainError) as info:
        view.block()
    elapsed = time.monotonic() - t0
    msg = str(info.value)
    assert "read block number failed after 5 attempts" in msg and "hint:" in msg
    assert 0.5 + 1 + 2 + 4 <= elapsed < 30, elapsed  # backed off between attempts, did not hang
    assert proxy.connections >= 5
    # The endpoint comes back: the same view works again without being rebuilt.
    proxy.set_default(Fault(kind="pass"))
    assert view.block() > 0
