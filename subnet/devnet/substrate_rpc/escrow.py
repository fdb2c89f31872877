"""Commit-reveal escrows for timelocked weight commits sent over the Substrate face.

The devnet cannot open a drand timelock (runtime/commit_reveal.py), so a
client that wants its commit revealed hands the plaintext over beside the
commit. On the JSON face it rides inside the signed call (`devnet_reveal`);
a SCALE call has no room for it, so the SDK-side hook
(`subnet.devnet.substrate.install_commit_escrow`) posts it first with
`devnet_commitEscrow(commit, escrow)` and the face attaches it to the commit
extrinsic when that arrives, as the same `devnet_reveal` parameter: the
runtime's rules (and its check that the escrow's hotkey is the committer) are
the one source of truth for both faces.

Binding without a signature: the ciphertext is fresh randomness nobody else
knows before its extrinsic is submitted, the first escrow for a commit wins,
and an escrow is consumed when its commit is admitted to the pool, so no other process
can substitute weights for someone else's commit. Pending escrows are kept in
memory, bounded, oldest dropped first.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

from subnet.devnet.codec import from_wire, to_wire
from subnet.devnet.substrate_rpc.extrinsics import ScaleExtrinsic

TIMELOCKED_COMMITS = frozenset({
    "commit_timelocked_mechanism_weights", "commit_timelocked_weights", "commit_crv3_mechanism_weights"})
MAX_PENDING = 1024
MAX_COMMIT_HEX = 2 + 2 * 5000  # MAX_CRV3_COMMIT_SIZE_BYTES
MAX_ESCROW_UIDS = 65_536


class EscrowRefused(ValueError):
    """An escrow offer that is malformed or names a commit that already has one."""


def _normalise(commit: Any, escrow: Any) -> tuple[str, dict]:
    if not isinstance(commit, str) or not commit.startswith("0x") or len(commit) > MAX_COMMIT_HEX:
        raise EscrowRefused("commit must be 0x-hex of at most 5000 bytes")
    try:
        bytes.fromhex(commit[2:])
    except ValueError:
        raise EscrowRefused("commit is not valid hex") from None
    if not isinstance(escrow, dict):
        raise EscrowRefused("escrow must be an object {hotkey, uids, values, version_key}")
    try:
        payload = {"hotkey": str(escrow["hotkey"]), "uids": [int(u) for u in escrow["uids"]],
                   "values": [int(v) for v in escrow["values"]], "version_key": int(escrow["version_key"])}
    except (KeyError, TypeError, ValueError):
        raise EscrowRefused("escrow must be an object {hotkey, uids, values, version_key}") from None
    if len(payload["uids"]) != len(payload["values"]) or len(payload["uids"]) > MAX_ESCROW_UIDS:
        raise EscrowRefused("escrow uids and values must be equal-length lists")
    return commit.lower(), payload


class EscrowBook:
    """Escrows offered for commits not yet submitted, keyed by the commit's hex."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._pending: OrderedDict[str, dict] = OrderedDict()
        self._max = max_pending

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, commit: Any, escrow: Any) -> None:
        """Hold `escrow` for `commit`; the first offer for a commit wins."""
        key, payload = _normalise(commit, escrow)
        if key in self._pending:
            raise EscrowRefused("this commit already has an escrow")
        self._pending[key] = payload
        while len(self._pending) > self._max:
            self._pending.popitem(last=False)

    def attach(self, ext: ScaleExtrinsic) -> ScaleExtrinsic:
        """A timelocked commit with its commit as bytes and its escrow as `devnet_reveal` (see `consume`)."""
        commit = commit_bytes(ext)
        if commit is None:
            return ext
        params = {**ext.params, "commit": to_wire(commit)}  # params are in the devnet codec's wire form
        payload = self._pending.get("0x" + commit.hex())
        if payload is not None:  # else stored, never revealed: a ciphertext the chain cannot open
            params["devnet_reveal"] = payload
        return dataclasses.replace(ext, params=params)

    def consume(self, ext: ScaleExtrinsic) -> None:
        """Drop the escrow of an admitted commit (a refused one keeps it for a resubmission)."""
        commit = commit_bytes(ext)
        if commit is not None:
            self._pending.pop("0x" + commit.hex(), None)


def commit_bytes(ext: ScaleExtrinsic) -> bytes | None:
    """The `commit` of a timelocked commit call as bytes (None for other calls).

    The SDK's codec decodes `Vec<u8>` as text when the bytes are valid UTF-8
    and as 0x-hex otherwise; this undoes either.
    """
    if ext.module != "SubtensorModule" or ext.function not in TIMELOCKED_COMMITS:
        return None
    value = ext.params.get("commit")
    if isinstance(value, dict):
        value = from_wire(value)  # already normalised by `attach`
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value)
    if not isinstance(value, str):
        return None
    if value.startswith("0x"):
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raw = None
        if raw is not None:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw  # hex is what the codec writes for bytes that are not UTF-8
    return value.encode("utf-8")
