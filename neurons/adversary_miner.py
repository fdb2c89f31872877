"""Tessera ADVERSARY miner entry point: for tests, benches and the demo only, never for operators.

    python neurons/adversary_miner.py --adversary.behaviour noise ...(the flags of neurons/miner.py)

A miner that attacks the validator on purpose (subnet/adversary/behaviours.py lists
the attacks); `--adversary.behaviour` <- TESSERA_ADVERSARY_BEHAVIOUR. The production
neurons/miner.py has none of this code or these flags.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from subnet.adversary.config import AdversaryNeuronConfig  # noqa: E402
from subnet.node.entry import run_neuron  # noqa: E402


def _loop() -> type:
    from subnet.adversary.miner import AdversaryMiner

    return AdversaryMiner


if __name__ == "__main__":
    raise SystemExit(run_neuron(AdversaryNeuronConfig, "miner", loop=_loop, prog="neurons/adversary_miner.py"))
