"""JSON codec shared by the devnet server and `DevnetSubstrate`.

The devnet speaks JSON, not SCALE. SDK calls carry a few values JSON cannot
hold as-is (bytes such as the MEV-shield ciphertext, composed calls nested in
`Sudo.sudo`), so they are tagged here, and `canonical()` fixes the exact bytes
an extrinsic signature covers (sorted keys, no whitespace).
"""

from __future__ import annotations

import json
from hashlib import blake2b
from typing import Any

BYTES_TAG = "__bytes__"
CALL_TAG = "__call__"


def to_wire(value: Any) -> Any:
    """Python value (bytes, tuples, composed calls) -> JSON-safe value."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {BYTES_TAG: bytes(value).hex()}
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if _is_call(value):
            module, function, params = value
            return {CALL_TAG: [module, function, to_wire(dict(params))]}
        return [to_wire(v) for v in value]
    if hasattr(value, "module") and hasattr(value, "function") and hasattr(value, "params"):
        return {CALL_TAG: [value.module, value.function, to_wire(dict(value.params))]}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"devnet codec cannot encode {type(value).__name__}")


def _is_call(value: Any) -> bool:
    # A generated `Call` is a NamedTuple (module, function, params).
    return (
        hasattr(value, "_fields")
        and tuple(getattr(value, "_fields", ())) == ("module", "function", "params")
    )


def from_wire(value: Any) -> Any:
    """JSON value -> Python value (tagged bytes back to bytes, calls to dicts)."""
    if isinstance(value, dict):
        if len(value) == 1 and BYTES_TAG in value:
            return bytes.fromhex(value[BYTES_TAG])
        if len(value) == 1 and CALL_TAG in value:
            module, function, params = value[CALL_TAG]
            return {"module": module, "function": function, "params": from_wire(params)}
        return {k: from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """The one byte encoding signatures and hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def hash_hex(data: bytes) -> str:
    """0x-prefixed blake2b-256, the chain's hash everywhere in the devnet."""
    return "0x" + blake2b(data, digest_size=32).hexdigest()
