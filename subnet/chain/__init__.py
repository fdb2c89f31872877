"""One factory for the chain client: real networks or the local devnet.

`make_subtensor("finney" | "test" | "local" | "ws://...")` is the real
`bt.Subtensor`; `make_subtensor("devnet")` or `"devnet+ws://127.0.0.1:PORT"`
is the same plain SDK client on the devnet's Substrate face (PORT + 1), or,
with TESSERA_DEVNET_TRANSPORT=json, the SDK client with `DevnetSubstrate`
in its `Substrate` seam. Neurons use only the returned client, so the same
code runs on every network.
`chain_call` translates SDK/chain failures into `subnet.errors.ChainError`.
"""

from __future__ import annotations

from subnet.chain.commitments import DEFAULT_MAX_FIELDS, commitment_call, commitment_capacity
from subnet.chain.factory import DEVNET_DEFAULT_URL, chain_call, devnet_url, make_subtensor

__all__ = [
    "DEFAULT_MAX_FIELDS",
    "DEVNET_DEFAULT_URL",
    "chain_call",
    "commitment_call",
    "commitment_capacity",
    "devnet_url",
    "make_subtensor",
]
