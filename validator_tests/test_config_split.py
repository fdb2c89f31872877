"""subnet/config.py is the flag engine only; each sub-config lives with its package; bootstrap is on the engine."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import subnet.config as engine
from subnet.devnet import cli as devnet_cli
from subnet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
OWNERS = {
    "WalletConfig": "subnet.chain.config", "SubtensorConfig": "subnet.chain.config",
    "LoggingConfig": "subnet.telemetry.logs", "setup_logging": "subnet.telemetry.logs",
    "StoreConfig": "subnet.storage.config", "ModelConfig": "subnet.model.config",
    "TrainConfig": "subnet.miner.config", "ProtocolConfig": "subnet.protocol.config",
    "SyncConfig": "subnet.sync.config",
}


def test_each_sub_config_lives_in_its_package_and_nothing_imports_it_from_the_engine() -> None:
    tree = ast.parse((ROOT / "subnet" / "config.py").read_text())
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes == {"FlagSpec"}, classes  # the engine defines no sub-config
    for name, module in OWNERS.items():
        owned = getattr(importlib.import_module(module), name)
        assert owned.__module__ == module, name
        assert not hasattr(engine, name), name  # one home: no re-export left behind
        if isinstance(owned, type):
            assert dataclasses.is_dataclass(owned) and owned.__dataclass_params__.frozen, name
    stale = []
    for folder in ("subnet", "neurons", "bench", "scripts", "validator_tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "subnet.config":
                    stale += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if a.name in OWNERS]
    assert not stale, stale


def test_the_engine_and_the_owner_modules_import_neither_torch_nor_bittensor() -> None:
    code = ("import sys, subnet.config, subnet.consensus, subnet.devnet.cli, subnet.sync.config, "
            "subnet.protocol.config, subnet.model.config, subnet.miner.config, subnet.storage.config, "
            "subnet.telemetry.logs; print(sorted(m for m in ('torch', 'bittensor') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]


def test_moved_configs_still_validate_and_name_themselves() -> None:
    from subnet.sync.config import SyncConfig
    from subnet.telemetry.logs import LoggingConfig

    with pytest.raises(ConfigError, match="SyncConfig.top_g must be > 0"):
        SyncConfig(top_g=0)
    specs = {s.dest: s for s in engine.flag_specs(LoggingConfig, "logging")}
    assert specs["logging.debug"].bt_env == ("BT_LOGGING_DEBUG",) and "DEBUG level" in specs["logging.debug"].help


def _bootstrap(argv: list[str], env: dict[str, str]):
    parser = argparse.ArgumentParser(prog="devnet")
    devnet_cli.add_arguments(parser)
    args = parser.parse_args(["bootstrap", *argv])
    return devnet_cli.config_from_args(args.devnet_cls, args, env, parser=args.devnet_parser)


def test_bootstrap_flags_come_from_the_engine_with_config_file_env_and_old_spellings(tmp_path: Path) -> None:
    from subnet.devnet.bootstrap import bootstrap_config

    yaml = tmp_path / "boot.yaml"
    yaml.write_text("miners: 2\nwallet: {path: /tmp/from-file}\ntempo: 30\ndevnet.port: 9999\n")
    env = {"TESSERA_BOOTSTRAP_TEMPO": "40", "TESSERA_NETUID": "7"}  # a neuron's netuid must not leak in
    opts = _bootstrap(["--config", str(yaml), "--weights-rate-limit", "5", "--validator_stake", "12.5", "--json"], env)
    assert (opts.miners, opts.wallet.path, opts.tempo, opts.netuid) == (2, "/tmp/from-file", 40, None)
    assert (opts.weights_rate_limit, opts.validator_stake, opts.json, opts.devnet.port) == (5, 12.5, True, 9999)
    cfg = bootstrap_config(opts)
    assert (cfg.wallet_path, cfg.miners, cfg.tempo, cfg.weights_rate_limit, cfg.validator_stake_tao) == (
        Path("/tmp/from-file"), 2, 40, 5, 12.5)
    assert _bootstrap([], {"BT_WALLET_PATH": "/tmp/bt"}).wallet.path == "/tmp/bt"
    with pytest.raises(SystemExit) as exc:  # bad values exit 2 through the parser, naming the rule
        _bootstrap(["--miners", "-1"], {})
    assert exc.value.code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("minrs: 2\n")
    with pytest.raises(SystemExit):
        _bootstrap(["--config", str(bad)], {})
