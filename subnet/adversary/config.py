"""The adversary miner's config: the production miner's flags plus the `adversary` group.

Flags follow the flag engine (`--adversary.behaviour` <- `TESSERA_ADVERSARY_BEHAVIOUR`);
they exist only on neurons/adversary_miner.py, never on neurons/miner.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from subnet.node.config import MinerNeuronConfig

Behaviour = Literal["honest", "noise", "zero", "wrong_pages", "scaled", "sign_flip", "copier", "late", "copier_noisy",
                    "sybil", "nan", "truncated", "oversized", "wrong_shape", "bad_index", "pickle", "lying_header",
                    "impersonate", "steal_key", "replay"]


@dataclass(frozen=True, kw_only=True)
class AdversaryOptions:
    """Which attack this miner runs (see subnet/adversary/behaviours.py for each)."""

    behaviour: Behaviour = "honest"
    """honest, or one of the adversaries (subnet/adversary/behaviours.py describes each)."""
    poison_scale: float = 100.0
    """Multiplier of the `scaled` (poisoning) behaviour."""


@dataclass(frozen=True, kw_only=True)
class AdversaryNeuronConfig(MinerNeuronConfig):
    """Tessera adversary miner (tests, benches and the demo only): a miner that attacks the validator on purpose."""

    adversary: AdversaryOptions = field(default_factory=AdversaryOptions)
