"""Signed artifact files: one safetensors file per (window, hotkey, fragment).

Layout of a file:

    tensors   idx (U8, packed index offsets), occ (U8, packed sub-block occupancy bits),
              val (U8, packed values), scale (BF16, chunks x S)   -- see sparseloco.py / indexcode.py
    metadata  schema, netuid, window, uid, hotkey, fragment, base_version,
              chunk, topk, value_bits, min_tail_k, layout (JSON [[name, shape], ...]),
              payload_sha256, signature

`payload_sha256` hashes the four tensors (name, length, bytes; fixed order);
`signature` is the hotkey's sr25519 signature over SIGNING_DOMAIN + the
canonical JSON of every other metadata field, so header and payload are both
covered. `read_artifact` checks size before parsing, parses the container
defensively (container.py), then identity, signature, payload hash, expected
header values, shapes, index ranges and scale values, refusing anything else
with a typed `ArtifactError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from bittensor.sp_core import Keypair
from safetensors.torch import save as st_save

from subnet.codec.config import CodecConfig, validate_params
from subnet.codec.container import check_size, parse_container
from subnet.codec.errors import (
    BadPayloadHash,
    BadShape,
    BadSignature,
    HeaderMismatch,
    Malformed,
    NonFinite,
    ValueOutOfRange,
    WrongHotkey,
)
from subnet.codec.layout import build_layout
from subnet.codec.sparseloco import EncodedUpdate, unpack_indices

SCHEMA = "tessera.artifact.v1"
SIGNING_DOMAIN = b"tessera.artifact.v1/sign\n"
TENSOR_ORDER = ("idx", "occ", "val", "scale")
TENSOR_DTYPES = {"idx": "U8", "occ": "U8", "val": "U8", "scale": "BF16"}
MAX_HEADER_BYTES = 4 << 20
DEFAULT_MAX_ABS_VALUE = 16.0
_INT_FIELDS = ("netuid", "window", "uid", "fragment", "base_version", "chunk", "topk", "value_bits", "min_tail_k")
_META_KEYS = frozenset((*_INT_FIELDS, "schema", "hotkey", "layout", "payload_sha256", "signature"))
_INT_RE = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_HEX_RE = re.compile(r"^[0-9a-f]*$")


@dataclass(frozen=True, kw_only=True)
class ArtifactHeader:
    """Who made an artifact, for which window / fragment / model version."""

    netuid: int
    window: int
    uid: int
    hotkey: str  # ss58
    fragment: int
    base_version: int


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """A verified artifact: its header, the encoded update, and hashes for manifests."""

    header: ArtifactHeader
    encoded: EncodedUpdate
    sha256: str  # of the whole file
    payload_sha256: str
    nbytes: int


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().view(torch.uint8).numpy().tobytes()


def payload_digest(parts: Mapping[str, bytes | memoryview]) -> str:
    """sha256 over (name, 8-byte length, bytes) of idx, occ, val, scale in that order."""
    h = hashlib.sha256()
    for name in TENSOR_ORDER:
        b = parts[name]
        h.update(name.encode() + b"\0" + len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def signing_message(metadata: Mapping[str, str]) -> bytes:
    """The bytes a hotkey signs: domain tag + canonical JSON of all fields but the signature."""
    fields = {k: v for k, v in metadata.items() if k != "signature"}
    return SIGNING_DOMAIN + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_and_pack(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str], keypair: Keypair) -> bytes:
    """Fill payload_sha256 + signature and serialise. No content checks: also used to build hostile test files."""
    meta = dict(metadata)
    meta["payload_sha256"] = payload_digest({n: _tensor_bytes(tensors[n]) for n in TENSOR_ORDER})
    meta.pop("signature", None)
    meta["signature"] = keypair.sign(signing_message(meta)).hex()
    return st_save({n: tensors[n].contiguous() for n in TENSOR_ORDER}, metadata=meta)


def header_metadata(encoded: EncodedUpdate, header: ArtifactHeader) -> dict[str, str]:
    """Unsigned metadata fields for `encoded` made by `header`."""
    cfg = encoded.cfg
    layout = json.dumps([[n, list(s)] for n, s in zip(encoded.names, encoded.shapes)], separators=(",", ":"))
    return {
        "schema": SCHEMA,
        "netuid": str(header.netuid),
        "window": str(header.window),
        "uid": str(header.uid),
        "hotkey": header.hotkey,
        "fragment": str(header.fragment),
        "base_version": str(header.base_version),
        "chunk": str(cfg.chunk),
        "topk": str(cfg.topk),
        "value_bits": str(cfg.value_bits),
        "min_tail_k": str(cfg.min_tail_k),
        "layout": layout,
    }


def write_artifact(encoded: EncodedUpdate, header: ArtifactHeader, keypair: Keypair) -> bytes:
    """Serialise and sign an encoded update; the keypair must be the header's hotkey."""
    if keypair.ss58_address != header.hotkey:
        raise WrongHotkey(f"signing keypair {keypair.ss58_address} is not the header hotkey {header.hotkey}")
    tensors = {"idx": encoded.idx, "occ": encoded.occ, "val": encoded.val, "scale": encoded.scales.to(torch.bfloat16)}
    return sign_and_pack(tensors, header_metadata(encoded, header), keypair)


# -- reading ---------------------------------------------------------------------------------------


def _ints(meta: Mapping[str, str]) -> dict[str, int]:
    out = {}
    for k in _INT_FIELDS:
        v = meta[k]
        if not _INT_RE.match(v):
            raise Malformed(f"header field {k!r} is not a non-negative decimal integer")
        out[k] = int(v)
    return out


def _parse_layout(text: str, shapes: Mapping[str, Sequence[int]]) -> list[tuple[str, tuple[int, ...]]]:
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):
        raise Malformed("header layout is not valid JSON") from None
    if not isinstance(items, list):
        raise Malformed("header layout must be a JSON list")
    if len(items) != len(shapes):
        raise BadShape(f"layout lists {len(items)} tensors, the fragment has {len(shapes)}")
    out: list[tuple[str, tuple[int, ...]]] = []
    for item in items:
        ok = (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], list)
              and all(isinstance(d, int) and not isinstance(d, bool) for d in item[1]))
        if not ok:
            raise Malformed("header layout entries must be [name, [dims...]]")
        name, dims = item[0], tuple(item[1])
        if name not in shapes:
            raise BadShape(f"layout names unexpected tensor {name!r}")
        want = tuple(int(d) for d in shapes[name])
        if dims != want:
            raise BadShape(f"layout gives {name!r} shape {dims}, expected {want}")
        out.append((name, dims))
    if len({n for n, _ in out}) != len(out):
        raise BadShape("layout repeats a tensor name")
    return out


def _expect(field: str, got: object, want: object | None) -> None:
    if want is not None and got != want:
        raise HeaderMismatch(f"header {field} is {got!r}, expected {want!r}")


def _check_scales(scales: torch.Tensor, max_abs_value: float) -> None:
    s = scales.float()
    if not bool(torch.isfinite(s).all()):
        raise NonFinite(f"{int((~torch.isfinite(s)).sum())} scale(s) are NaN or infinite")
    if bool((s < 0).any()):
        raise ValueOutOfRange("a scale is negative")
    peak = float(s.max()) if s.numel() else 0.0
    if peak > max_abs_value:
        raise ValueOutOfRange(f"scale {peak:.4g} exceeds the magnitude bound {max_abs_value}")
    if s.shape[1] == 2 and bool((s[:, 0] > s[:, 1]).any()):
        raise ValueOutOfRange("a chunk's low scale exceeds its high scale")


def read_artifact(
    data: bytes | bytearray | memoryview,
    *,
    expected_hotkey: str,
    max_bytes: int,
    shapes: Mapping[str, Sequence[int]],
    netuid: int | None = None,
    window: int | None = None,
    fragment: int | None = None,
    base_version: int | None = None,
    uid: int | None = None,
    codec: CodecConfig | None = None,
    max_abs_value: float = DEFAULT_MAX_ABS_VALUE,
) -> Artifact:
    """Verify and decode-prepare a peer's artifact, or raise a typed `ArtifactError`.

    `shapes` is the fragment's expected name -> shape map; `codec`, if given,
    pins chunk/topk/value_bits/min_tail_k (so a peer cannot send a denser update);
    the other keyword arguments pin header fields when not None.
    """
    check_size(len(data), max_bytes)
    view = memoryview(data)
    c = parse_container(view, max_header_bytes=min(MAX_HEADER_BYTES, max_bytes), max_tensors=len(TENSOR_ORDER))
    meta = c.metadata
    if set(meta) != _META_KEYS:
        missing, extra = sorted(_META_KEYS - set(meta)), sorted(set(meta) - _META_KEYS)
        raise Malformed(f"header fields differ from {SCHEMA}: missing={missing} unexpected={extra[:5]}")
    if meta["schema"] != SCHEMA:
        raise Malformed(f"unsupported schema {meta['schema'][:40]!r}, expected {SCHEMA!r}")
    if set(c.tensors) != set(TENSOR_ORDER):
        raise Malformed(f"tensors must be exactly {TENSOR_ORDER}, got {sorted(c.tensors)[:5]}")
    for name, dt in TENSOR_DTYPES.items():
        if c.tensors[name].dtype != dt:
            raise Malformed(f"tensor {name!r} must be {dt}, got {c.tensors[name].dtype}")
    ints = _ints(meta)

    # identity, signature, payload integrity
    if meta["hotkey"] != expected_hotkey:
        raise WrongHotkey(f"artifact is from {meta['hotkey'][:64]!r}, expected {expected_hotkey}")
    sig_hex = meta["signature"]
    if len(sig_hex) != 128 or not _HEX_RE.match(sig_hex):
        raise BadSignature("signature is not 64 bytes of lowercase hex")
    try:
        verified = Keypair(ss58_address=expected_hotkey).verify(signing_message(meta), bytes.fromhex(sig_hex))
    except ValueError as e:
        raise BadSignature(f"signature check failed: {e}") from None
    if not verified:
        raise BadSignature(f"signature does not verify for hotkey {expected_hotkey}")
    raw = {n: view[c.tensors[n].start : c.tensors[n].end] for n in TENSOR_ORDER}
    if payload_digest(raw) != meta["payload_sha256"]:
        raise BadPayloadHash("tensor bytes do not match the signed payload_sha256")

    # expected header values
    _expect("netuid", ints["netuid"], netuid)
    _expect("window", ints["window"], window)
    _expect("fragment", ints["fragment"], fragment)
    _expect("base_version", ints["base_version"], base_version)
    _expect("uid", ints["uid"], uid)
    validate_params(ints["chunk"], ints["topk"], ints["value_bits"], ints["min_tail_k"])
    cfg = CodecConfig(chunk=ints["chunk"], topk=ints["topk"], value_bits=ints["value_bits"],
                      min_tail_k=ints["min_tail_k"], ef_decay=codec.ef_decay if codec else CodecConfig().ef_decay)
    if codec is not None:
        for f in ("chunk", "topk", "value_bits", "min_tail_k"):
            _expect(f, getattr(cfg, f), getattr(codec, f))

    # shapes and packed sizes
    items = _parse_layout(meta["layout"], shapes)
    layout = build_layout(items, cfg)
    sizes = layout.packed_sizes(cfg)
    want_shapes = {"idx": (sizes["idx"],), "occ": (sizes["occ"],), "val": (sizes["val"],),
                   "scale": (layout.n_chunks, cfg.scales_per_chunk)}
    for n in TENSOR_ORDER:
        if c.tensors[n].shape != want_shapes[n]:
            raise BadShape(f"tensor {n!r} has shape {c.tensors[n].shape}, the layout needs {want_shapes[n]}")

    # contents
    u8 = {n: torch.frombuffer(bytearray(raw[n]), dtype=torch.uint8) if len(raw[n])
          else torch.zeros(0, dtype=torch.uint8) for n in ("idx", "occ", "val")}
    scale_t = torch.frombuffer(bytearray(raw["scale"]), dtype=torch.bfloat16).view(want_shapes["scale"])
    _check_scales(scale_t, max_abs_value)
    encoded = EncodedUpdate(cfg=cfg, names=tuple(n for n, _ in items), shapes=tuple(s for _, s in items),
                            idx=u8["idx"], occ=u8["occ"], val=u8["val"], scales=scale_t)
    unpack_indices(encoded, layout)  # raises BadIndex on any position an honest encoder cannot produce

    header = ArtifactHeader(netuid=ints["netuid"], window=ints["window"], uid=ints["uid"], hotkey=meta["hotkey"],
                            fragment=ints["fragment"], base_version=ints["base_version"])
    return Artifact(header=header, encoded=encoded, sha256=hashlib.sha256(view).hexdigest(),
                    payload_sha256=meta["payload_sha256"], nbytes=len(data))


def expected_max_bytes(shapes: Mapping[str, Sequence[int]], cfg: CodecConfig, *, slack: int = 64 << 10) -> int:
    """A size limit for read_artifact: exact payload for this fragment + room for the header."""
    layout = build_layout(shapes, cfg)
    return sum(layout.packed_sizes(cfg).values()) + 8 + slack + 2 * sum(len(n) + 32 for n in shapes)
