"""Helpers for the one commitment each neuron publishes (plain text, <=128 bytes).

The chain stores `Commitments.CommitmentOf[netuid][hotkey]` as a list of
`Data` fields; the SDK's metagraph decodes `Raw*` fields (0x-hex) back to
text as `neuron.commitment.value`. Building the call here keeps the field
shape identical on the devnet and on a real chain.
"""

from __future__ import annotations

import bittensor as bt

from subnet.errors import ChainError

MAX_RAW = 128


def commitment_call(netuid: int, text: str):
    """`Commitments.set_commitment` carrying `text` as one Raw field."""
    data = text.encode("utf-8")
    if len(data) > MAX_RAW:
        raise ChainError(f"commitment is {len(data)} bytes; at most {MAX_RAW} fit one Raw field")
    return bt.calls.Commitments.set_commitment(
        netuid=netuid, info={"fields": [{f"Raw{len(data)}": "0x" + data.hex()}]}
    )
