"""A devnet whose block production crashes exits loudly instead of serving a chain that never moves."""

from __future__ import annotations

import asyncio
import socket

import pytest

from subnet.devnet import node as node_mod
from subnet.devnet.config import DevnetConfig
from subnet.devnet.server import DevnetHalted, serve_forever


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_crashing_block_producer_stops_the_devnet_with_an_error(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = node_mod.Node.produce_block

    def produce_then_break(self):  # injected fault: the third block raises
        calls["n"] += 1
        if calls["n"] >= 3:
            raise RuntimeError("injected: block encoding failed")
        return real(self)

    monkeypatch.setattr(node_mod.Node, "produce_block", produce_then_break)
    cfg = DevnetConfig(dir=tmp_path, port=_free_port(), block_ms=50, substrate_port=0)
    with pytest.raises(DevnetHalted, match="block production failed") as info:
        asyncio.run(asyncio.wait_for(serve_forever(cfg), timeout=60))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not cfg.pid_path.exists()  # the pidfile no longer claims a live devnet
