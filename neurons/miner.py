"""Tessera miner entry point: parse flags, build, run, close (see README for the flags).

    python neurons/miner.py --netuid 1 --wallet.name NAME --wallet.hotkey HOTKEY --subtensor.network finney
    torchrun --nproc_per_node=4 neurons/miner.py --device cuda ...   # data-parallel over 4 local GPUs

Every flag is also an environment variable (`--wallet.name` <- TESSERA_WALLET_NAME, `--device` <- TESSERA_DEVICE).
Under torchrun rank 0 is the miner (wallet, chain, store); the other ranks train its windows with it
(subnet/miner/distributed.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from subnet.miner.distributed import launched_by_torchrun, run_ranked_miner  # noqa: E402
from subnet.node.config import MinerNeuronConfig  # noqa: E402
from subnet.node.entry import run_neuron  # noqa: E402

if __name__ == "__main__":
    if launched_by_torchrun():
        raise SystemExit(run_ranked_miner())
    raise SystemExit(run_neuron(MinerNeuronConfig, "miner"))
