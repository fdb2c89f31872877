"""Commitments.set_commitment: per-hotkey data on a subnet, space-limited per interval.

Ported from subtensor `pallets/commitments/src/lib.rs::set_commitment`:
registered hotkeys only, at most MaxFields (3) fields, Raw0..Raw128 /
BigRaw (<=512) / 32-byte hashes / unit variants, and a per-interval space
budget (MaxSpace 3100 bytes, at least 100 charged per call) that resets each
tempo. Values are stored as 0x-hex strings, the shape the SDK decodes.
Deposits are zero, as on chain (commitments are free).
"""

from __future__ import annotations

from typing import Any

from subnet.devnet.runtime.base import DispatchError, call
from subnet.devnet.runtime.chain import Runtime

MAX_FIELDS = 3
MAX_SPACE = 3100
MIN_CHARGE = 100
_HASHES = {"BlakeTwo256", "Sha256", "Keccak256", "ShaThree256"}
_UNITS = {"None", "ResetBondsFlag"}


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        if value.startswith("0x"):
            try:
                return bytes.fromhex(value[2:])
            except ValueError:
                raise DispatchError("InvalidValue", "bad hex in commitment field") from None
        return value.encode()
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value)
    raise DispatchError("InvalidValue", f"unsupported commitment value {type(value).__name__}")


def normalize_fields(info: Any) -> list:
    """Commitment fields in the chain's decoded shape, validating each variant."""
    fields = info.get("fields") if isinstance(info, dict) else None
    if not isinstance(fields, list):
        raise DispatchError("InvalidValue", "info must be {'fields': [...]}")
    if len(fields) == 1 and isinstance(fields[0], list):  # [[...]] as some clients send it
        fields = fields[0]
    if len(fields) > MAX_FIELDS:
        raise DispatchError("TooManyFieldsInCommitmentInfo")
    out = []
    for entry in fields:
        if isinstance(entry, str) and entry in _UNITS:
            out.append(entry)
            continue
        if not isinstance(entry, dict) or len(entry) != 1:
            raise DispatchError("InvalidValue", "each field is one {variant: value}")
        variant, value = next(iter(entry.items()))
        data = _as_bytes(value)
        if variant.startswith("Raw"):
            if len(data) > 128:
                raise DispatchError("InvalidValue", "Raw fields hold at most 128 bytes")
            out.append({f"Raw{len(data)}": "0x" + data.hex()})
        elif variant == "BigRaw":
            if len(data) > 512:
                raise DispatchError("InvalidValue", "BigRaw holds at most 512 bytes")
            out.append({"BigRaw": "0x" + data.hex()})
        elif variant in _HASHES:
            if len(data) != 32:
                raise DispatchError("InvalidValue", f"{variant} must be 32 bytes")
            out.append({variant: "0x" + data.hex()})
        else:
            raise DispatchError("InvalidValue", f"unsupported commitment variant {variant}")
    return out


def _size(fields: list) -> int:
    total = 0
    for entry in fields:
        if isinstance(entry, dict):
            value = next(iter(entry.values()))
            total += (len(value) - 2) // 2
    return total


@call("Commitments", "set_commitment")
def set_commitment(rt: Runtime, origin: str, netuid: Any, info: Any) -> None:
    rec = rt.subnet(netuid)
    netuid = rec["netuid"]
    if origin not in rec["hotkeys"]:
        raise DispatchError("AccountNotAllowedCommit")
    fields = normalize_fields(info)
    cost = max(MIN_CHARGE, _size(fields))
    used = rt.store.get(f"cmspace:{netuid}:{origin}") or {"interval": -1, "used": 0}
    interval = int(rec["last_epoch_block"])
    already = int(used["used"]) if int(used["interval"]) == interval else 0
    if already + cost > MAX_SPACE:
        raise DispatchError("SpaceLimitExceeded", f"{already}+{cost} > {MAX_SPACE} bytes this interval")
    rt.store.put(f"cmspace:{netuid}:{origin}", {"interval": interval, "used": already + cost})
    rt.store.put(
        f"cm:{netuid}:{origin}", {"deposit": 0, "block": rt.block, "info": {"fields": fields}}
    )
    rt.store.put(f"cmlast:{netuid}:{origin}", rt.block)
    rt.deposit_event("Commitments", "Commitment", {"netuid": netuid, "who": origin})
