"""Devnet admin RPC is opt-in, and bootstrap's test wallets stay out of the real wallet folder.

`devnet_produceBlocks` is unauthenticated: anything on the machine could
fast-forward epochs and rate limits, so the devnet refuses it unless started
with `--devnet.allow_admin` / `TESSERA_DEVNET_ALLOW_ADMIN=1`. Bootstrap then
waits for timer blocks instead, and says what to do in manual mode.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest
from harness.devnet import bootstrap, rpc, running_devnet

from subnet.devnet import cli
from subnet.devnet.bootstrap import DEFAULT_WALLET_PATH, default_wallet_path, is_bittensor_wallet_dir
from subnet.devnet.config import DevnetConfig
from subnet.devnet.node import Node
from subnet.devnet.server import ADMIN_DISABLED, DevnetServer, RpcError
from subnet.errors import ChainError


def _server(tmp_path: Path, *, allow_admin: bool) -> DevnetServer:
    cfg = DevnetConfig(dir=tmp_path, block_ms=0, allow_admin=allow_admin)
    return DevnetServer(Node(cfg))


def test_produce_blocks_refused_without_the_flag_in_process(tmp_path: Path) -> None:
    server = _server(tmp_path, allow_admin=False)
    try:
        with pytest.raises(RpcError) as info:
            asyncio.run(server.call("devnet_produceBlocks", [3], None))
        assert info.value.code == ADMIN_DISABLED
        assert "--devnet.allow_admin" in info.value.message
        assert info.value.data == {"name": "AdminDisabled"}
        assert server.node.head.number == 0
        assert asyncio.run(server.call("devnet_head", [], None))["admin"] is False
    finally:
        server.node.close()


def test_produce_blocks_accepted_with_the_flag_in_process(tmp_path: Path) -> None:
    server = _server(tmp_path, allow_admin=True)
    try:
        head = asyncio.run(server.call("devnet_produceBlocks", [3], None))
        assert head["number"] == 3 and head["admin"] is True
    finally:
        server.node.close()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def _devnet_cfg(args: argparse.Namespace):  # noqa: ANN202 - DevnetConfig
    return cli.devnet_config(cli._command(args).devnet)


def test_allow_admin_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TESSERA_DEVNET_ALLOW_ADMIN", raising=False)
    assert _devnet_cfg(_parse(["start"])).allow_admin is False
    assert _devnet_cfg(_parse(["start", "--devnet.allow_admin"])).allow_admin is True
    monkeypatch.setenv("TESSERA_DEVNET_ALLOW_ADMIN", "1")
    assert _devnet_cfg(_parse(["start"])).allow_admin is True
    assert _devnet_cfg(_parse(["start", "--devnet.allow_admin", "0"])).allow_admin is False  # flag beats env


def test_bootstrap_wallet_path_default_is_tessera_owned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TESSERA_WALLET_PATH", raising=False)
    monkeypatch.delenv("BT_WALLET_PATH", raising=False)
    assert default_wallet_path() == DEFAULT_WALLET_PATH == "~/.tessera/devnet-wallets"
    assert cli._command(_parse(["bootstrap"])).wallet.path == DEFAULT_WALLET_PATH
    assert not is_bittensor_wallet_dir(Path(DEFAULT_WALLET_PATH))
    monkeypatch.setenv("BT_WALLET_PATH", str(tmp_path / "bt"))
    assert default_wallet_path() == str(tmp_path / "bt")
    monkeypatch.setenv("TESSERA_WALLET_PATH", str(tmp_path / "tessera"))
    assert default_wallet_path() == str(tmp_path / "tessera")  # TESSERA_ first
    assert cli._command(_parse(["bootstrap"])).wallet.path == str(tmp_path / "tessera")  # the flag engine, too
    given = cli._command(_parse(["bootstrap", "--wallet.path", "~/.bittensor/wallets"]))
    assert given.wallet.path == "~/.bittensor/wallets"
    assert is_bittensor_wallet_dir(Path("~/.bittensor/wallets/x"))


@pytest.mark.slow
def test_devnet_process_refuses_admin_rpc_unless_started_with_the_flag(tmp_path: Path) -> None:
    with running_devnet(tmp_path / "plain", block_ms=0, allow_admin=False) as handle:
        assert handle.head()["admin"] is False
        with pytest.raises(RuntimeError, match="--devnet.allow_admin"):
            handle.produce_blocks(3)
        # Manual mode without admin: bootstrap cannot reach the epoch, and says which flag helps.
        with pytest.raises(ChainError, match="--devnet.allow_admin"):
            bootstrap(handle, tmp_path / "wallets", miners=0)
    with running_devnet(tmp_path / "admin", block_ms=0, allow_admin=True) as handle:
        before = handle.head()["number"]
        assert rpc(handle.url, "devnet_produceBlocks", 3)["number"] == before + 3
        assert handle.head()["admin"] is True
