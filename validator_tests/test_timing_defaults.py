"""Timing: the neurons' defaults fit 12 s blocks; the devnet's fast windows are devnet-only flags."""

from __future__ import annotations

from pathlib import Path

from harness.network import FAST_FLAGS

from subnet.config import parse_config
from subnet.demo import Bootstrap, Neuron, neuron_argv
from subnet.node.config import MinerNeuronConfig, ValidatorNeuronConfig, ValidatorOptions
from subnet.protocol.config import ProtocolConfig


def test_defaults_fit_finney_blocks() -> None:
    window_s = ProtocolConfig().window_blocks * 12.0
    assert window_s == 600.0  # 10 minutes: scoring a full subnet of small-preset updates fits one window
    assert ValidatorOptions().poll_interval == 6.0  # half a block: first sightings at most a block late


def _argv(role: str) -> list[str]:
    boot = Bootstrap(netuid=1, wallet_path=Path("/w"), validator=Neuron(name="validator", hotkey="default", uid=1),
                     miners=(), raw={})
    who = Neuron(name=role, hotkey="default", uid=2)
    return neuron_argv("python", role, who, boot=boot, network="devnet", run_dir=Path("/r"), preset="tiny",
                       debug=False, extra=["--protocol.window_blocks", "7"] if role == "miner" else [])


def test_demo_passes_fast_devnet_timing_and_neuron_args_still_win() -> None:
    v = parse_config(ValidatorNeuronConfig, _argv("validator")[2:], {})
    assert (v.protocol.window_blocks, v.validator.poll_interval) == (20, 1.0)
    m = parse_config(MinerNeuronConfig, _argv("miner")[2:], {})  # the miner accepts every flag it is given
    assert m.protocol.window_blocks == 7  # --neuron-arg comes last and wins


def test_test_harness_sets_its_own_fast_timing() -> None:
    assert FAST_FLAGS["--protocol.window_blocks"] == "16" and float(FAST_FLAGS["--validator.poll_interval"]) <= 1
