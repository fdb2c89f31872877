"""A defensive reader for the safetensors container.

We parse the container ourselves instead of handing peer bytes to a library:
every length is bounds-checked before anything is allocated, the JSON header
is size-capped and duplicate keys are refused, and the tensors must tile the
data section exactly (no gaps, overlaps or trailing bytes). The result only
points into the caller's buffer; nothing is copied or executed. Pickle and
zip (torch.save) payloads are recognised and refused by their magic bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from subnet.codec.errors import Malformed, TooLarge, Truncated

# safetensors dtype name -> item size in bytes (only what an artifact may contain)
DTYPE_SIZES = {"U8": 1, "I8": 1, "BF16": 2, "F16": 2, "F32": 4, "I32": 4, "I64": 8, "F64": 8, "BOOL": 1, "U16": 2,
               "I16": 2}
MAX_DIMS = 8


@dataclass(frozen=True, kw_only=True)
class RawTensor:
    """One tensor entry: dtype name, shape and its byte range inside the file."""

    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    end: int


@dataclass(frozen=True, kw_only=True)
class Container:
    metadata: dict[str, str]
    tensors: dict[str, RawTensor]
    header_len: int


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise Malformed(f"duplicate key {k!r} in safetensors header")
        out[k] = v
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _sniff(data: bytes) -> None:
    if data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5:
        raise Malformed("payload is a Python pickle; only safetensors are accepted")
    if data[:4] == b"PK\x03\x04":
        raise Malformed("payload is a zip archive (torch.save?); only safetensors are accepted")


def parse_container(data: bytes | bytearray | memoryview, *, max_header_bytes: int,
                    max_tensors: int | None = None) -> Container:
    """Parse and validate the safetensors framing of `data` (no tensor bytes are read).

    `max_tensors` refuses a header naming more tensors before its JSON is
    parsed (a byte count, no allocation), so an unsigned header of 50k entries
    costs microseconds, not a JSON parse of megabytes.
    """
    data = memoryview(data)
    total = len(data)
    if total < 8:
        raise Truncated(f"file is {total} bytes, shorter than the 8-byte safetensors length prefix")
    head = bytes(data[:8])
    n = int.from_bytes(head, "little")
    if n > max_header_bytes or 8 + n > total or bytes(data[8:9]) != b"{":
        _sniff(head)  # only on a bad frame: a valid length prefix may start with any byte
    if n > max_header_bytes:
        raise Malformed(f"safetensors header claims {n} bytes, over the {max_header_bytes}-byte limit")
    if 8 + n > total:
        raise Truncated(f"safetensors header claims {n} bytes but only {total - 8} follow")
    raw = bytes(data[8 : 8 + n])
    if not raw.startswith(b"{"):
        raise Malformed("safetensors header is not a JSON object")
    if max_tensors is not None and raw.count(b"data_offsets") > max_tensors:
        raise Malformed(f"safetensors header names more than {max_tensors} tensors")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_dupes)
    except Malformed:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Malformed(f"safetensors header is not valid JSON: {type(e).__name__}") from None
    if not isinstance(header, dict):
        raise Malformed("safetensors header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise Malformed("__metadata__ must map strings to strings")
    data_start = 8 + n
    data_len = total - data_start
    tensors: dict[str, RawTensor] = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise Malformed(f"tensor entry {name!r} must have exactly dtype, shape, data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_SIZES:
            raise Malformed(f"tensor {name!r} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_int(d) and d >= 0 for d in shape):
            raise Malformed(f"tensor {name!r} has an invalid shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise Malformed(f"tensor {name!r} has invalid data_offsets")
        a, b = offsets
        if not 0 <= a <= b:
            raise Malformed(f"tensor {name!r} has data_offsets out of order [{a}, {b}]")
        if b > data_len:
            raise Truncated(f"tensor {name!r} ends at byte {b} of a {data_len}-byte data section")
        if math.prod(shape) * DTYPE_SIZES[dtype] != b - a:
            raise Malformed(f"tensor {name!r}: shape {shape} x {dtype} does not fill its {b - a} bytes")
        tensors[name] = RawTensor(dtype=dtype, shape=tuple(shape), start=data_start + a, end=data_start + b)
    pos = data_start
    for t in sorted(tensors.values(), key=lambda t: (t.start, t.end)):
        if t.start != pos:
            raise Malformed("tensor byte ranges overlap or leave gaps")
        pos = t.end
    if pos != total:
        raise Malformed(f"{total - pos} trailing bytes after the last tensor")
    return Container(metadata=meta, tensors=tensors, header_len=n)


def check_size(total: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise TooLarge(f"artifact is {total} bytes, over the {max_bytes}-byte limit")
