"""Suite-wide fixtures: keep bittensor's on-disk caches out of the real home.

`Client.connect` caches token symbols (and the CLI its config) under
`~/.bittensor`; every test gets its own directory for them through the
`BTCLI_*` variables the SDK reads at call time, and spawned processes inherit
them. HOME itself is left alone so other packages' caches (corpus, HF hub)
stay shared. `validator_tests/` is put on sys.path so `import harness` works.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

_BTCLI_FILES = {
    "BTCLI_CONFIG": "btcli.json",
    "BTCLI_PROXIES_PATH": "btcli_proxies.json",
    "BTCLI_ADDRESSES_PATH": "btcli_addresses.json",
    "BTCLI_MULTISIGS_PATH": "btcli_multisigs.json",
    "BTCLI_MULTISIG_CACHE": "btcli_multisig_cache.json",
    "BTCLI_SUBNET_NAMES_CACHE": "btcli_subnet_names.json",
    "BTCLI_TOKEN_SYMBOLS_CACHE": "btcli_token_symbols.json",
}


@pytest.fixture(autouse=True)
def _isolated_bittensor_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("bittensor-home")
    for var, name in _BTCLI_FILES.items():
        monkeypatch.setenv(var, str(home / name))
    monkeypatch.setenv("BT_WALLET_PATH", str(home / "wallets"))
    return home
