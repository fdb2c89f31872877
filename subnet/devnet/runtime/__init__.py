"""The devnet runtime: subtensor's rules, one pallet concern per module.

Importing this package registers every dispatchable (`base.CALLS`).
"""

from subnet.devnet.runtime import (  # noqa: F401  (registration side effects)
    commit_reveal,
    commitments,
    mevshield,
    registration,
    serving,
    staking,
    subnets,
    weights,
)
from subnet.devnet.runtime.base import CALLS, DispatchError
from subnet.devnet.runtime.chain import NEURON_FIELDS, Runtime, dev_address

__all__ = ["CALLS", "DispatchError", "NEURON_FIELDS", "Runtime", "dev_address"]
