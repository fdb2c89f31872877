"""The few SCALE writers the metadata and runtime-call framing need.

Values inside storage, events and runtime APIs are encoded by the SDK's own
codec (`bittensor_core`, built from the metadata this package produces); no
library encodes *metadata itself* from a description, so this module writes
the V15 structure's primitives: compact integers, strings, vectors, options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def compact(value: int) -> bytes:
    """SCALE compact (1/2/4-byte modes, big-integer mode above 2**30)."""
    if value < 0:
        raise ValueError("compact integers are unsigned")
    if value < 1 << 6:
        return bytes([value << 2])
    if value < 1 << 14:
        return ((value << 2) | 1).to_bytes(2, "little")
    if value < 1 << 30:
        return ((value << 2) | 2).to_bytes(4, "little")
    raw = value.to_bytes((value.bit_length() + 7) // 8, "little")
    return bytes([((len(raw) - 4) << 2) | 3]) + raw


def read_compact(data: bytes, offset: int = 0) -> tuple[int, int]:
    """(value, next offset) of the compact integer at `offset`."""
    mode = data[offset] & 3
    if mode == 0:
        return data[offset] >> 2, offset + 1
    if mode == 1:
        return int.from_bytes(data[offset:offset + 2], "little") >> 2, offset + 2
    if mode == 2:
        return int.from_bytes(data[offset:offset + 4], "little") >> 2, offset + 4
    size = (data[offset] >> 2) + 4
    return int.from_bytes(data[offset + 1:offset + 1 + size], "little"), offset + 1 + size


def text(value: str) -> bytes:
    raw = value.encode()
    return compact(len(raw)) + raw


def blob(value: bytes) -> bytes:
    return compact(len(value)) + value


def vec(items: Iterable[T], enc: Callable[[T], bytes]) -> bytes:
    parts = [enc(item) for item in items]
    return compact(len(parts)) + b"".join(parts)


def option(value: T | None, enc: Callable[[T], bytes]) -> bytes:
    return b"\x00" if value is None else b"\x01" + enc(value)


def u8(value: int) -> bytes:
    return bytes([value])


def u32(value: int) -> bytes:
    return int(value).to_bytes(4, "little")
