"""Tessera miner entry point: parse flags, build, run, close (see README for the flags).

    python neurons/miner.py --netuid 1 --wallet.name NAME --wallet.hotkey HOTKEY --subtensor.network finney

Every flag is also an environment variable (`--wallet.name` <- TESSERA_WALLET_NAME).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from subnet.node.config import MinerNeuronConfig  # noqa: E402
from subnet.node.entry import run_neuron  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run_neuron(MinerNeuronConfig, "miner"))
