"""Neuron start-up refusals: clear messages and exit codes, nothing half-started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from harness.devnet import bootstrap, running_devnet

from subnet.devnet.bootstrap import ensure_wallet

ROOT = Path(__file__).resolve().parents[1]


def _run(role: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "neurons" / f"{role}.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_bad_flag_exits_2_naming_flag_and_env():
    res = _run("miner", "--netuid", "one")
    assert res.returncode == 2
    assert "--netuid" in res.stderr and "TESSERA_NETUID" in res.stderr


def test_missing_wallet_is_a_clear_refusal(tmp_path):
    res = _run("validator", "--wallet.name", "nobody", "--wallet.path", str(tmp_path), "--subtensor.network",
               "devnet+ws://127.0.0.1:9")
    assert res.returncode == 1
    assert "cannot open hotkey" in res.stderr and "nobody" in res.stderr


@pytest.mark.slow
def test_unregistered_hotkey_refuses_to_start(tmp_path):
    with running_devnet(tmp_path, block_ms=0) as devnet:
        boot = bootstrap(devnet, tmp_path / "wallets", miners=1)
        ensure_wallet("stranger", tmp_path / "wallets")  # real keys on disk, never registered
        res = _run("miner", "--netuid", str(boot.netuid), "--wallet.name", "stranger", "--wallet.path",
                   str(tmp_path / "wallets"), "--subtensor.network", devnet.network,
                   "--store.location", str(tmp_path / "store"), "--state_dir", str(tmp_path / "state"))
    assert res.returncode == 1
    assert "is not registered on netuid" in res.stderr and "register it first" in res.stderr
    assert not (tmp_path / "store").exists()  # refused before committing or writing anything
