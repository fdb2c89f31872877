"""Where flag values come from: YAML file, BT_* and TESSERA_* variables, the command line (subnet.config).

Precedence: command line > TESSERA_* > BT_* > --config FILE > default; the
neurons refuse a missing --netuid on a real network and key their state dir by
wallet, hotkey and netuid.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from subnet.config import (
    add_dataclass_flags,
    config_from_args,
    flag_specs,
    load_config_file,
    parse_config,
    to_dict,
)
from subnet.errors import ConfigError
from subnet.node.config import MinerNeuronConfig, ValidatorNeuronConfig

ROOT = Path(__file__).resolve().parents[1]
DEVNET = ["--subtensor.network", "devnet"]


def _yaml(tmp_path: Path, text: str, name: str = "node.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_nested_and_dotted_keys_with_types(tmp_path: Path) -> None:
    path = _yaml(tmp_path, """
netuid: 7
wallet:
  name: cold
  hotkey: hot
subtensor.network: test
train: {lr: 0.01, inner_steps: 3}
logging.debug: true
data.shards: null
protocol:
  window_blocks: 25
""")
    cfg = parse_config(MinerNeuronConfig, ["--config", str(path)], {})
    assert (cfg.netuid, cfg.wallet.name, cfg.wallet.hotkey, cfg.subtensor.network) == (7, "cold", "hot", "test")
    assert cfg.train.lr == 0.01 and cfg.train.inner_steps == 3 and cfg.logging.debug is True
    assert cfg.protocol.window_blocks == 25 and cfg.data.shards is None
    assert cfg.state_dir == "~/.tessera/cold/hot/netuid7/miner"


def test_precedence_cli_tessera_bt_file_default(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "netuid: 3\nwallet: {name: file, hotkey: file, path: /file}\n"
                           "subtensor: {network: test}\n")
    argv = ["--config", str(path)]
    assert parse_config(MinerNeuronConfig, argv, {}).wallet.name == "file"
    env = {"BT_WALLET_NAME": "bt", "BT_WALLET_HOTKEY": "bt-hk", "BT_SUBTENSOR_NETWORK": "local"}
    cfg = parse_config(MinerNeuronConfig, argv, env)
    assert (cfg.wallet.name, cfg.wallet.hotkey, cfg.wallet.path, cfg.subtensor.network) == (
        "bt", "bt-hk", "/file", "local")
    env |= {"TESSERA_WALLET_NAME": "tessera"}
    cfg = parse_config(MinerNeuronConfig, argv, env)
    assert cfg.wallet.name == "tessera" and cfg.wallet.hotkey == "bt-hk"
    cfg = parse_config(MinerNeuronConfig, [*argv, "--wallet.name", "cli"], env)
    assert cfg.wallet.name == "cli"
    assert cfg.train == MinerNeuronConfig().train  # untouched groups keep their defaults
    # The file may also come from TESSERA_CONFIG; --config beats it.
    other = _yaml(tmp_path, "netuid: 9\nsubtensor.network: test\n", "other.yaml")
    assert parse_config(MinerNeuronConfig, [], {"TESSERA_CONFIG": str(other)}).netuid == 9
    assert parse_config(MinerNeuronConfig, argv, {"TESSERA_CONFIG": str(other)}).netuid == 3


def test_bittensor_11_names_and_chain_endpoint() -> None:
    env = {"BT_WALLET": "w11", "BT_NETWORK": "test", "BT_CHAIN_ENDPOINT": "wss://node.example:443",
           "TESSERA_NETUID": "2"}
    cfg = parse_config(ValidatorNeuronConfig, [], env)
    assert cfg.wallet.name == "w11" and cfg.subtensor.network == "test"
    assert cfg.subtensor.chain_endpoint == "wss://node.example:443"
    assert cfg.subtensor.target == "wss://node.example:443"  # what make_subtensor gets
    # The older SDK spelling wins over the 11.x one when both are set.
    env |= {"BT_WALLET_NAME": "old-style"}
    assert parse_config(ValidatorNeuronConfig, [], env).wallet.name == "old-style"
    cfg = parse_config(MinerNeuronConfig, [*DEVNET, "--subtensor.chain_endpoint", "ws://127.0.0.1:9999"], {})
    assert cfg.subtensor.target == "devnet+ws://127.0.0.1:9999" and cfg.netuid == 1
    assert parse_config(MinerNeuronConfig, DEVNET, {}).subtensor.target == "devnet"


@pytest.mark.parametrize("argv, env, needle", [
    ([], {}, "--netuid is required on finney"),
    (["--subtensor.network", "test"], {}, "--netuid is required on test"),
    (["--subtensor.network", "ws://10.0.0.5:9944"], {}, "--netuid is required on ws://10.0.0.5:9944"),
    (["--subtensor.chain_endpoint", "wss://x.example:443"], {}, "--netuid is required on wss://x.example:443"),
    ([], {"BT_NETWORK": "local"}, "--netuid is required on local"),
])
def test_missing_netuid_refused_on_real_networks(capsys, argv, env, needle) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_config(ValidatorNeuronConfig, argv, env)
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_netuid_defaults_only_on_the_devnet_and_state_dirs_never_collide() -> None:
    m = parse_config(MinerNeuronConfig, DEVNET, {})
    v = parse_config(ValidatorNeuronConfig, ["--subtensor.network", "devnet+ws://127.0.0.1:9950"], {})
    assert m.netuid == v.netuid == 1
    assert m.state_dir == "~/.tessera/default/default/netuid1/miner"
    assert v.state_dir == "~/.tessera/default/default/netuid1/validator"
    dirs = {parse_config(MinerNeuronConfig, ["--netuid", str(n), "--wallet.name", w, "--wallet.hotkey", h],
                         {}).state_dir for n in (1, 2) for w in ("a", "b") for h in ("x", "y")}
    assert len(dirs) == 8
    explicit = parse_config(MinerNeuronConfig, ["--netuid", "4", "--state_dir", "/srv/m"], {})
    assert explicit.state_dir == "/srv/m"
    # finalize is idempotent: to_dict -> flags gives the same config back
    flat = to_dict(m)
    argv = [x for k, val in flat.items() for x in (f"--{k}", "none" if val is None else str(val))]
    assert parse_config(MinerNeuronConfig, argv, {}) == m


@pytest.mark.parametrize("text, needles", [
    ("wallet:\n  nmae: x\n", ["unknown key", "wallet.nmae", "did you mean wallet.name"]),
    ("trian.lr: 0.1\n", ["trian.lr", "train.lr"]),
    ("bogus: 1\n", ["unknown key", "bogus"]),
    ("train.inner_steps: many\n", ["train.inner_steps", "integer"]),
    ("train.inner_steps: 1.5\n", ["train.inner_steps"]),
    ("wallet.name: null\n", ["wallet.name", "null"]),
    ("wallet.name: yes\n", ["wallet.name", "boolean"]),
    ("train: 3\n", ["unknown key", "train"]),
    ("- a\n- b\n", ["mapping"]),
    ("wallet: {name: [\n", ["not valid YAML"]),
    ("netuid: 1\nnetuid.x: 2\n", ["netuid.x"]),
])
def test_bad_config_files_exit_2_with_a_clear_message(tmp_path: Path, capsys, text, needles) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(SystemExit) as exc:
        parse_config(MinerNeuronConfig, ["--config", str(path), "--netuid", "1"], {})
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    for needle in needles:
        assert needle in err, (needle, err)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    specs = flag_specs(MinerNeuronConfig)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config_file(tmp_path / "absent.yaml", specs)
    assert load_config_file(_yaml(tmp_path, "# nothing\n"), specs) == {}


@dataclass(frozen=True, kw_only=True)
class Tagged:
    """Append and tuple fields."""

    tags: tuple[int, ...] = ()
    """Comma-separated tags."""
    extra: tuple[str, ...] = field(default=(), metadata={"append": True, "aliases": ("--extra-arg",)})
    """Repeatable, no comma split."""


def test_tuples_lists_and_repeatable_flags(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, Tagged)
    path = _yaml(tmp_path, "tags: [1, 2, 3]\nextra: [a]\n")
    args = parser.parse_args(["--config", str(path), "--extra-arg=--x=1,2", "--extra", "y"])
    cfg = config_from_args(Tagged, args, {})
    assert cfg.tags == (1, 2, 3) and cfg.extra == ("--x=1,2", "y")
    assert config_from_args(Tagged, parser.parse_args([]), {"TESSERA_TAGS": "4,5"}).tags == (4, 5)


def test_neuron_process_reads_config_file_and_bt_env(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "netuid: 11\nsubtensor.network: test\n")
    code = ("from subnet.config import parse_config; from subnet.node.config import ValidatorNeuronConfig as V;"
            "c = parse_config(V); print(c.wallet.name, c.netuid, c.subtensor.network, c.state_dir)")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "BT_WALLET_NAME": "ops", "HOME": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-c", code, "--config", str(path)], env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["ops", "11", "test", "~/.tessera/ops/default/netuid11/validator"]
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--netuid is required on finney" in bad.stderr
