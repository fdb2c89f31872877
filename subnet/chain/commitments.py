"""Helpers for the one commitment each neuron publishes (plain text in Raw fields).

The chain stores `Commitments.CommitmentOf[netuid][hotkey]` as a list of at
most `MaxFields` `Data` fields (3 on subtensor: `MaxCommitFieldsInner`,
`runtime/src/lib.rs`); a `Raw` field holds 0..128 bytes
(`pallets/commitments/src/types.rs`). The SDK's metagraph concatenates the
bytes of every `Raw*` field, in order, and decodes them as text
(`neuron.commitment.data`), so text longer than one field is split across
consecutive Raw fields and reads back whole; a single-field commitment (all
that older Tessera versions wrote) reads the same way. `BigRaw` (512 bytes)
is not used: the pinned SDK renders it as `bigraw:0x...`, not as text.
Building the call here keeps the field shape identical on the devnet and on a
real chain.
"""

from __future__ import annotations

import bittensor as bt

from subnet.errors import ChainError

MAX_RAW = 128
DEFAULT_MAX_FIELDS = 3


def commitment_capacity(max_fields: int = DEFAULT_MAX_FIELDS) -> int:
    """Bytes of text one commitment can carry."""
    return MAX_RAW * max_fields


def commitment_fields(text: str, max_fields: int = DEFAULT_MAX_FIELDS) -> list[dict[str, str]]:
    """`text` as consecutive Raw fields of at most 128 bytes (one field when it fits)."""
    data = text.encode("utf-8")
    if len(data) > commitment_capacity(max_fields):
        raise ChainError(
            f"commitment is {len(data)} bytes; the chain holds at most {commitment_capacity(max_fields)} "
            f"({max_fields} Raw fields of {MAX_RAW} bytes)",
            remediation="use a shorter store location (bucket name, prefix or endpoint)")
    chunks = [data[i:i + MAX_RAW] for i in range(0, len(data), MAX_RAW)] or [b""]
    return [{f"Raw{len(c)}": "0x" + c.hex()} for c in chunks]


def commitment_call(netuid: int, text: str, *, max_fields: int = DEFAULT_MAX_FIELDS):
    """`Commitments.set_commitment` carrying `text` in as few Raw fields as it needs."""
    return bt.calls.Commitments.set_commitment(
        netuid=netuid, info={"fields": commitment_fields(text, max_fields)}
    )
