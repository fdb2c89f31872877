"""Flags and environment variables built from config dataclasses (subnet.config)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from subnet.chain.config import WalletConfig
from subnet.config import add_dataclass_flags, config_from_args, env_name, flag_specs, parse_config, to_dict
from subnet.errors import ConfigError
from subnet.node.config import MinerNeuronConfig, ValidatorNeuronConfig
from subnet.telemetry.logs import LoggingConfig, setup_logging

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, kw_only=True)
class Inner:
    """A sub-config."""

    mode: Literal["fast", "safe"] = "safe"
    """How to run."""
    limit: int | None = None
    ratio: float = field(default=0.5, metadata={"help": "fraction kept"})
    tags: tuple[int, ...] = (1, 2)
    flag: bool = False
    where: Path = Path("/tmp")
    custom: str = field(default="x", metadata={"env": "MY_CUSTOM"})


@dataclass(frozen=True, kw_only=True)
class Root:
    """Root config for tests."""

    netuid: int
    """Subnet id."""
    inner: Inner = field(default_factory=Inner)
    wallet: WalletConfig = field(default_factory=WalletConfig)


def test_dotted_flag_and_env_names() -> None:
    specs = {s.flag: s for s in flag_specs(MinerNeuronConfig)}
    for flag in (
        "--netuid",
        "--wallet.name",
        "--wallet.hotkey",
        "--wallet.path",
        "--subtensor.network",
        "--logging.debug",
        "--store.location",
        "--store.max_artifact_bytes",
        "--model.preset",
        "--train.inner_steps",
        "--protocol.window_blocks",
    ):
        assert flag in specs, flag
    assert specs["--wallet.name"].env == "TESSERA_WALLET_NAME"
    assert specs["--subtensor.network"].env == "TESSERA_SUBTENSOR_NETWORK"
    assert specs["--netuid"].env == "TESSERA_NETUID"
    assert env_name("store.max_artifact_bytes") == "TESSERA_STORE_MAX_ARTIFACT_BYTES"
    assert {s.flag for s in flag_specs(ValidatorNeuronConfig)} >= {"--sync.outer_lr", "--sync.top_g", "--codec.topk"}
    assert specs["--data.cache_dir"].env == "TESSERA_CACHE_DIR"  # contract name (ARCHITECTURE.md)
    cfg = parse_config(MinerNeuronConfig, [], {"TESSERA_CACHE_DIR": "/tmp/tc", "TESSERA_CODEC_TOPK": "32",
                                               "TESSERA_NETUID": "1"})
    assert Path(cfg.data.cache_dir) == Path("/tmp/tc") and cfg.codec.topk == 32


def test_precedence_cli_over_env_over_default() -> None:
    env = {"TESSERA_WALLET_NAME": "from-env", "TESSERA_WALLET_HOTKEY": "hk-env", "TESSERA_NETUID": "7"}
    cfg = parse_config(MinerNeuronConfig, ["--wallet.name", "from-cli"], env)
    assert cfg.wallet.name == "from-cli"
    assert cfg.wallet.hotkey == "hk-env"
    assert cfg.netuid == 7
    assert cfg.wallet.path == WalletConfig().path  # default
    assert cfg.train == MinerNeuronConfig().train


def test_type_conversion_all_kinds() -> None:
    argv = [
        "--netuid", "3",
        "--inner.mode", "fast",
        "--inner.limit", "none",
        "--inner.ratio", "0.25",
        "--inner.tags", "4,5,6",
        "--inner.flag",
        "--inner.where", "/var/x",
    ]
    cfg = parse_config(Root, argv, {"MY_CUSTOM": "y"})
    assert cfg.netuid == 3
    assert cfg.inner.mode == "fast"
    assert cfg.inner.limit is None
    assert cfg.inner.ratio == 0.25
    assert cfg.inner.tags == (4, 5, 6)
    assert cfg.inner.flag is True
    assert cfg.inner.where == Path("/var/x")
    assert cfg.inner.custom == "y"
    env = {"TESSERA_NETUID": "0x10", "TESSERA_INNER_LIMIT": "12", "TESSERA_INNER_FLAG": "off"}
    cfg = parse_config(Root, ["--inner.flag", "yes"], env)
    assert cfg.netuid == 16 and cfg.inner.limit == 12 and cfg.inner.flag is True
    cfg = parse_config(Root, [], env)
    assert cfg.inner.flag is False


@pytest.mark.parametrize(
    "argv, env, needles",
    [
        (["--netuid", "abc"], {}, ["--netuid", "TESSERA_NETUID", "integer"]),
        (["--netuid", "1", "--inner.mode", "slow"], {}, ["--inner.mode", "TESSERA_INNER_MODE", "slow"]),
        ([], {"TESSERA_NETUID": "x1"}, ["--netuid", "TESSERA_NETUID"]),
        (["--netuid", "1"], {"TESSERA_INNER_MODE": "turbo"}, ["--inner.mode", "TESSERA_INNER_MODE", "turbo"]),
        (["--netuid", "1"], {"TESSERA_INNER_FLAG": "maybe"}, ["TESSERA_INNER_FLAG", "boolean"]),
        ([], {}, ["missing required --netuid", "TESSERA_NETUID"]),
        (["--netuid", "1", "--bogus", "2"], {}, ["unrecognized", "--bogus"]),
    ],
)
def test_bad_values_exit_2_naming_flag_and_env(capsys, argv, env, needles) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_config(Root, argv, env)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, (needle, err)


def test_post_init_validation_becomes_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_config(MinerNeuronConfig, ["--train.inner_steps", "0"], {})
    assert exc.value.code == 2
    assert "inner_steps" in capsys.readouterr().err


def test_without_parser_errors_raise_config_error() -> None:
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, Root)
    args = parser.parse_args([])
    with pytest.raises(ConfigError, match="TESSERA_NETUID"):
        config_from_args(Root, args, {})
    with pytest.raises(ConfigError, match="TESSERA_INNER_RATIO"):
        config_from_args(Root, args, {"TESSERA_NETUID": "1", "TESSERA_INNER_RATIO": "lots"})


def test_prefix_mounts_a_config_under_a_name() -> None:
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, WalletConfig, prefix="wallet")
    args = parser.parse_args(["--wallet.hotkey", "m1"])
    cfg = config_from_args(WalletConfig, args, {"TESSERA_WALLET_NAME": "cold"}, prefix="wallet")
    assert cfg == WalletConfig(name="cold", hotkey="m1")


def test_help_uses_docstrings_metadata_and_env(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_config(Root, ["--help"], {})
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "How to run." in out
    assert "fraction kept" in out
    assert "env TESSERA_INNER_MODE" in out
    assert "Subnet id. (env TESSERA_NETUID; required)" in out
    assert "env MY_CUSTOM; default x" in out


def test_unsupported_field_type_fails_at_build_time() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Bad:
        x: dict[str, int] = field(default_factory=dict)

    with pytest.raises(ConfigError, match="unsupported"):
        flag_specs(Bad)


def test_to_dict_round_trips_through_flags() -> None:
    cfg = parse_config(MinerNeuronConfig, ["--netuid", "2", "--train.lr", "0.01", "--logging.debug"], {})
    flat = to_dict(cfg)
    assert flat["train.lr"] == 0.01 and flat["logging.debug"] is True
    argv = []
    for key, value in flat.items():
        argv += [f"--{key}", str(value) if value is not None else "none"]
    assert parse_config(MinerNeuronConfig, argv, {}) == cfg


def test_setup_logging_levels(tmp_path, capfd) -> None:
    from loguru import logger

    setup_logging(LoggingConfig(debug=True, logging_dir=str(tmp_path)), "miner")
    logger.debug("dbg-line")
    logger.trace("trace-line")
    logger.complete()
    err = capfd.readouterr().err
    assert "dbg-line" in err and "| miner |" in err and "trace-line" not in err
    setup_logging(LoggingConfig(), "validator")
    logger.debug("hidden")
    logger.info("shown")
    err = capfd.readouterr().err
    assert "hidden" not in err and "shown" in err
    assert "dbg-line" in (tmp_path / "miner.log").read_text()


def test_real_process_env_and_exit_code(tmp_path) -> None:
    code = (
        "import sys; from subnet.config import parse_config; from subnet.node.config import MinerNeuronConfig;"
        "c = parse_config(MinerNeuronConfig); print(c.wallet.name, c.netuid, c.subtensor.network)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TESSERA_WALLET_NAME": "w9", "TESSERA_NETUID": "5"}
    ok = subprocess.run([sys.executable, "-c", code, "--subtensor.network", "devnet"], env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["w9", "5", "devnet"]
    bad = subprocess.run([sys.executable, "-c", code], env={**env, "TESSERA_NETUID": "five"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "TESSERA_NETUID" in bad.stderr and "--netuid" in bad.stderr
