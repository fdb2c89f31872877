"""Every flag of every entry point has help text (the issue found codec and score flags with none).

Walks the argparse trees themselves: `tessera` with every command group and
subcommand, and the three neuron entry points, so a flag added anywhere
without a docstring or help= fails here.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from subnet.adversary.config import AdversaryNeuronConfig
from subnet.cli import GROUPS, build_parser
from subnet.config import config_parser
from subnet.node.config import MinerNeuronConfig, ValidatorNeuronConfig

ROOT = Path(__file__).resolve().parents[1]
_TAIL = re.compile(r"\s*\(env [^)]*\)\s*$")  # the engine's "(env X; default Y)" alone is no help


def _walk(parser: argparse.ArgumentParser, where: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{where} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield where, action


def _entry_points() -> list[tuple[str, argparse.ArgumentParser]]:
    parser, _ = build_parser()
    return [("tessera", parser)] + [
        (f"neurons/{name}.py", config_parser(cls))
        for name, cls in (("miner", MinerNeuronConfig), ("validator", ValidatorNeuronConfig),
                          ("adversary_miner", AdversaryNeuronConfig))]


def test_every_flag_of_every_entry_point_has_help() -> None:
    missing, seen = [], 0
    for name, parser in _entry_points():
        for where, action in _walk(parser, name):
            seen += 1
            text = _TAIL.sub("", (action.help or "").replace("%%", "%")).strip()
            if len(text) < 4:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    assert seen > 150  # the walk reached the neurons and every command group
    assert not missing, "flags without help text:\n" + "\n".join(missing)


def test_every_group_and_subcommand_is_reachable() -> None:
    parser, modules = build_parser()
    assert set(modules) == set(GROUPS)
    names = {where for name, p in _entry_points()[:1] for where, _ in _walk(p, name)}
    for sub in ("devnet start", "devnet stop", "devnet status", "devnet bootstrap", "data prepare", "data info",
                "data build", "version update", "demo", "status", "export"):
        assert f"tessera {sub}" in names, sub


def test_operator_flags_exist_on_the_neurons() -> None:
    for _, parser in _entry_points()[1:]:
        flags = {s for a in parser._actions for s in a.option_strings}
        assert {"--config", "--netuid", "--state_dir", "--subtensor.chain_endpoint", "--subtensor.devnet_timeout_s",
                "--torch_threads", "--version.check", "--version.autoupdate"} <= flags


@pytest.mark.parametrize("script", ["neurons/miner.py", "neurons/validator.py"])
def test_neuron_help_runs(script: str) -> None:
    res = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert "--config FILE.yaml" in out and "BT_WALLET_NAME" in out and "--netuid is required" not in out
