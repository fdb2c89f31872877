"""`--subtensor.devnet_transport` (env TESSERA_DEVNET_TRANSPORT) picks the devnet face the neurons talk to."""

from __future__ import annotations

import pytest

from subnet.chain.config import SubtensorConfig
from subnet.chain.factory import devnet_transport
from subnet.config import parse_config
from subnet.errors import ChainError, ConfigError
from subnet.node.config import ValidatorNeuronConfig


def test_flag_env_and_default():
    assert parse_config(ValidatorNeuronConfig, ["--subtensor.network", "devnet"], env={}).subtensor.devnet_transport \
        == "substrate"
    env = {"TESSERA_DEVNET_TRANSPORT": "json"}
    cfg = parse_config(ValidatorNeuronConfig, ["--subtensor.network", "devnet"], env=env)
    assert cfg.subtensor.devnet_transport == "json"
    cfg = parse_config(ValidatorNeuronConfig, ["--subtensor.network", "devnet", "--subtensor.devnet_transport",
                                               "substrate"], env={"TESSERA_DEVNET_TRANSPORT": "json"})
    assert cfg.subtensor.devnet_transport == "substrate"  # the command line wins
    with pytest.raises(ConfigError, match="devnet_transport"):
        SubtensorConfig(devnet_transport="carrier-pigeon")


def test_the_given_transport_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("TESSERA_DEVNET_TRANSPORT", "json")
    assert devnet_transport() == "json"
    assert devnet_transport("substrate") == "substrate"
    with pytest.raises(ChainError):
        devnet_transport("smoke-signals")
