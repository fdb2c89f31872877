"""SCALE extrinsics in, the devnet's runtime behind them, Substrate's outcomes out.

A submitted extrinsic is decoded with the SDK's codec from this runtime's
metadata, its call recomposed to bytes, and its sr25519 signature checked over
the payload Substrate signs: call ++ extra (era, nonce, tip, metadata-hash mode)
++ additional-signed (spec and transaction versions, genesis hash, the era's
birth block hash). It then becomes an `Extrinsic` for the same `Node` pool as
the JSON face (nonce, era and genesis checked there, dispatched by the same
`Runtime.apply`), carrying its raw bytes so the block body (`chain_getBlock`)
and `System.Events` (ExtrinsicSuccess / ExtrinsicFailed with module errors by
pallet and error index) describe it as a node would.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import bittensor_core
from bittensor._generated.errors import ERRORS
from bittensor._transport.codec import RuntimeCodec

from subnet.devnet.extrinsic import Extrinsic
from subnet.devnet.state import BlockRecord
from subnet.devnet.substrate_rpc import mev_shield
from subnet.devnet.substrate_rpc.metadata import PALLET_INDEX, SUBTENSOR_EVENTS

_ERROR_INDEX = {(info.pallet, info.name): error for (_, error), info in ERRORS.items()}
_SUBTENSOR_EVENT_FIELDS = {name: tuple(attr for attr, _ in fields) for name, _, fields in SUBTENSOR_EVENTS}
_NO_WEIGHT = {"weight": {"ref_time": 0, "proof_size": 0}, "class": "Normal", "pays_fee": "Yes"}


class BadExtrinsic(ValueError):
    """Bytes that do not decode as this runtime's signed extrinsic, or whose signature does not verify."""


@dataclass(frozen=True, kw_only=True)
class ScaleExtrinsic(Extrinsic):
    """A devnet `Extrinsic` whose proof is a Substrate sr25519 signature over `payload`."""

    raw: bytes
    payload: bytes

    def verify_signature(self) -> bool:
        try:
            return bool(bittensor_core.verify(self.payload, bytes.fromhex(self.signature.removeprefix("0x")),
                                              self.signer))
        except Exception:  # malformed signature bytes are a bad proof, never a crash
            return False

    @property
    def hash(self) -> str:
        return "0x" + blake2b(self.raw, digest_size=32).hexdigest()

    def to_wire(self) -> dict[str, Any]:
        return {**super().to_wire(), "scale": "0x" + self.raw.hex()}


def _plain_call(call: dict) -> dict:
    """A decoded call as the runtime's `{module, function, params}` (nested calls too)."""
    params = {}
    for arg in call.get("call_args") or []:
        value = arg["value"]
        if isinstance(value, dict) and "call_module" in value:
            value = _plain_call(value)
        params[arg["name"]] = value
    return {"module": call["call_module"], "function": call["call_function"], "params": params}


def _compose(codec: RuntimeCodec, call: dict) -> Any:
    """Re-encode a decoded call (the bytes the signer signed)."""
    params = {}
    for arg in call.get("call_args") or []:
        value = arg["value"]
        params[arg["name"]] = _compose(codec, value) if isinstance(value, dict) and "call_module" in value else value
    return codec.compose_call(call["call_module"], call["call_function"], params)


def era_birth(period: int, phase: int, head: int) -> int:
    """The one block ≤ `head` congruent to `phase` mod `period`: where a live mortal era began."""
    return head - ((head - phase) % period)


def decode(codec: RuntimeCodec, raw: bytes, *, head: int, genesis_hash: str, block_hash_at) -> ScaleExtrinsic:
    """Decode and bind a signed extrinsic; `block_hash_at(n)` gives the hash the era's birth refers to."""
    try:
        decoded = codec.decode_extrinsic(raw)
    except Exception as exc:  # the codec's own error types
        raise BadExtrinsic(f"not a signed extrinsic of this runtime: {exc}") from None
    signature = decoded.get("signature")
    if not decoded.get("address") or not isinstance(signature, dict) or "Sr25519" not in signature:
        raise BadExtrinsic("only sr25519-signed extrinsics are served")
    era = decoded.get("era")
    if isinstance(era, (tuple, list)) and len(era) == 2:
        period, phase = int(era[0]), int(era[1])
        birth = era_birth(period, phase, head)
        era_arg: Any = {"period": period, "phase": phase}
        era_hash = block_hash_at(birth)
        if era_hash is None:
            raise BadExtrinsic("the era's birth block is unknown")
    else:
        period, birth, era_arg, era_hash = 0, 0, "00", genesis_hash
    call = decoded["call"]
    try:
        composed = _compose(codec, call)
        payload = codec.signature_payload(
            composed, era=era_arg if period == 0 else {"period": period, "current": birth}, nonce=int(decoded["nonce"]),
            tip=int(decoded.get("tip") or 0), tip_asset_id=None, genesis_hash=genesis_hash, era_block_hash=era_hash)
    except Exception as exc:
        raise BadExtrinsic(f"cannot rebuild the signed payload: {exc}") from None
    plain = _plain_call(call)
    return ScaleExtrinsic(
        module=plain["module"], function=plain["function"], params=plain["params"], signer=decoded["address"],
        nonce=int(decoded["nonce"]), era_birth=birth, era_period=period, genesis_hash=genesis_hash,
        signature=signature["Sr25519"], raw=bytes(raw), payload=payload)


def block_body(record: BlockRecord) -> list[str]:
    """The block's SCALE extrinsics, in block order (JSON-face extrinsics have no SCALE form)."""
    return [r["extrinsic"]["scale"] for r in record.extrinsics if "scale" in (r.get("extrinsic") or {})]


def block_events(record: BlockRecord) -> list[dict]:
    """`System.Events` for the block's SCALE extrinsics, phase = their index in `block_body`."""
    events = []
    index = 0
    for receipt in record.extrinsics:
        if "scale" not in (receipt.get("extrinsic") or {}):
            continue
        events.extend({"phase": {"ApplyExtrinsic": index}, "event": ev, "topics": []}
                      for ev in _pallet_events(receipt.get("events") or []))
        shielded = mev_shield.submitted_event(receipt)
        if shielded is not None:
            events.append({"phase": {"ApplyExtrinsic": index}, "event": shielded, "topics": []})
        if receipt.get("success"):
            event = {"ExtrinsicSuccess": {"dispatch_info": _NO_WEIGHT}}
        else:
            event = {"ExtrinsicFailed": {"dispatch_error": dispatch_error(receipt.get("error") or {}),
                                         "dispatch_info": _NO_WEIGHT}}
        events.append({"phase": {"ApplyExtrinsic": index}, "event": {"System": event}, "topics": []})
        index += 1
    return events


def _pallet_events(records: list[dict]) -> list[dict]:
    """The runtime's events of one extrinsic that this face's metadata declares (`SUBTENSOR_EVENTS`)."""
    out = []
    for record in records:
        ev = record.get("event") or {}
        fields = _SUBTENSOR_EVENT_FIELDS.get(ev.get("event_id")) if ev.get("module_id") == "SubtensorModule" else None
        attrs = ev.get("attributes")
        if fields is not None and isinstance(attrs, dict):
            out.append({"SubtensorModule": {ev["event_id"]: tuple(attrs.get(name) for name in fields)}})
    return out


def dispatch_error(error: dict) -> Any:
    """A devnet error `{name, pallet}` as Substrate's `DispatchError` (Module by pallet and error index)."""
    pallet, name = error.get("pallet"), error.get("name")
    if name == "BadOrigin":
        return "BadOrigin"
    index = _ERROR_INDEX.get((pallet, name))
    if pallet in PALLET_INDEX and index is not None:
        return {"Module": {"index": PALLET_INDEX[pallet], "error": "0x" + bytes([index, 0, 0, 0]).hex()}}
    return "Other"
