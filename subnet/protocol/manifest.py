"""Per-window manifest: which artifacts the lead validator merged, and how.

Every miner and validator applies the same manifest to reach the same model
version, so its bytes must be canonical: JSON with sorted keys, no whitespace,
no NaN/Infinity, entries sorted by (fragment, uid, hotkey). `sha256` is over
those bytes. `from_json` re-validates everything: a manifest is peer input.

Schema 2 manifests carry the lead's hotkey (`signer`) and its sr25519
`signature` over SIGNING_DOMAIN + the canonical JSON of every other field
(signer and model_hash included), so authority is the lead's key, not write
access to its store. `sign` makes the signed copy; checking it against the
hotkey the chain names as lead is `subnet.sync.signing.verify_manifest_signature`.

Optional fields (absent from a manifest that does not set them, so older
manifests keep their bytes and signatures): `consensus`, the lead's consensus
settings (subnet/consensus.py), and `spec_version`, the lead's
`subnet.SPEC_VERSION`; followers check both (subnet/sync/bounds.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from subnet.errors import ProtocolError
from subnet.protocol.keys import check_hotkey, parse_artifact_key

SCHEMA_VERSION = 2
SIGNING_DOMAIN = b"tessera.manifest.v2/sign\n"
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{128}", re.ASCII)
Scalar = str | int | float | bool
OPTIONAL_FIELDS = frozenset({"consensus", "spec_version"})
"""Manifest fields a lead may leave out (older manifests have none of them)."""


class Signer(Protocol):
    """What `Manifest.sign` needs from a key (a `bittensor.sp_core.Keypair`)."""

    @property
    def ss58_address(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def _int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProtocolError(f"manifest field {name!r} must be an int >= {minimum}, got {value!r}")
    return value


def _float(name: str, value: Any, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError(f"manifest field {name!r} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ProtocolError(f"manifest field {name!r} must be >= {minimum}, got {value!r}")
    return float(value)


def _sha(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ProtocolError(f"manifest field {name!r} must be 64 lowercase hex chars, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class ManifestEntry:
    """One selected artifact: who, where, its payload hash, and its aggregation weight."""

    fragment: int
    uid: int
    hotkey: str
    key: str
    sha256: str
    weight: float

    def __post_init__(self) -> None:
        _int("fragment", self.fragment)
        _int("uid", self.uid)
        try:
            check_hotkey(self.hotkey)
        except ProtocolError as exc:
            raise ProtocolError(f"manifest entry: {exc}") from exc
        if not isinstance(self.key, str):
            raise ProtocolError(f"manifest entry key must be a string, got {self.key!r}")
        _, _, key_hotkey, key_fragment = parse_artifact_key(self.key)
        if key_hotkey != self.hotkey or key_fragment != self.fragment:
            raise ProtocolError(f"manifest entry key {self.key!r} does not match hotkey/fragment")
        _sha("sha256", self.sha256)
        object.__setattr__(self, "weight", _float("weight", self.weight, minimum=0.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fragment": self.fragment,
            "uid": self.uid,
            "hotkey": self.hotkey,
            "key": self.key,
            "sha256": self.sha256,
            "weight": self.weight,
        }


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The outer step of one window.

    netuid/window: which window's artifacts were merged.
    base_version -> new_version: model version before and after applying it.
    entries: selected artifacts (any number per fragment; none = no change to that fragment).
    outer_lr: outer learning rate the merged pseudo-gradient is applied with.
    aggregation: free-form scalar parameters of the aggregation rule (e.g. top_g, clip).
    model_hash: optional `model.state.model_hash` after applying, so followers can verify.
    signer / signature: the lead's ss58 hotkey and its hex sr25519 signature over
        `signing_message()`; signature None on an unsigned manifest (which followers refuse).
    """

    netuid: int
    window: int
    base_version: int
    new_version: int
    entries: tuple[ManifestEntry, ...] = ()
    outer_lr: float = 1.0
    aggregation: Mapping[str, Scalar] = field(default_factory=dict)
    model_hash: str | None = None
    signer: str | None = None
    signature: str | None = None
    schema: int = SCHEMA_VERSION
    consensus: Mapping[str, Any] | None = None
    """The lead's consensus settings {dotted flag: value} (subnet/consensus.py); None: not published."""
    spec_version: int | None = None
    """The lead's `subnet.SPEC_VERSION`; None: not published."""

    def __post_init__(self) -> None:
        _int("netuid", self.netuid)
        _int("window", self.window)
        _int("base_version", self.base_version)
        _int("new_version", self.new_version)
        if self.new_version <= self.base_version:
            raise ProtocolError(f"new_version {self.new_version} must exceed base_version {self.base_version}")
        if self.schema != SCHEMA_VERSION:
            raise ProtocolError(f"unsupported manifest schema {self.schema!r} (expected {SCHEMA_VERSION})")
        object.__setattr__(self, "outer_lr", _float("outer_lr", self.outer_lr, minimum=0.0))
        if self.model_hash is not None:
            _sha("model_hash", self.model_hash)
        if self.signature is not None and self.signer is None:
            raise ProtocolError("manifest has a signature but no signer")
        if self.signer is not None:
            try:
                check_hotkey(self.signer)
            except ProtocolError as exc:
                raise ProtocolError(f"manifest signer: {exc}") from exc
        if self.signature is not None and (not isinstance(self.signature, str)
                                           or not _SIGNATURE.fullmatch(self.signature)):
            raise ProtocolError("manifest signature must be 128 lowercase hex chars (64 bytes)")
        entries = tuple(self.entries)
        seen: set[tuple[int, str]] = set()
        for e in entries:
            if not isinstance(e, ManifestEntry):
                raise ProtocolError(f"manifest entries must be ManifestEntry, got {type(e).__name__}")
            ident = (e.fragment, e.hotkey)
            if ident in seen:
                raise ProtocolError(f"duplicate manifest entry for fragment {e.fragment} hotkey {e.hotkey}")
            seen.add(ident)
            key_netuid, key_window, _, _ = parse_artifact_key(e.key)
            if (key_netuid, key_window) != (self.netuid, self.window):
                raise ProtocolError(f"entry key {e.key!r} is not for netuid {self.netuid} window {self.window}")
        object.__setattr__(self, "entries", tuple(sorted(entries, key=lambda e: (e.fragment, e.uid, e.hotkey))))
        if not isinstance(self.aggregation, Mapping):
            raise ProtocolError("manifest aggregation must be a mapping")
        agg: dict[str, Scalar] = {}
        for k, v in self.aggregation.items():
            if not isinstance(k, str) or not isinstance(v, (str, int, float, bool)):
                raise ProtocolError(f"aggregation params must map str to scalar, got {k!r}: {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ProtocolError(f"aggregation param {k!r} is not finite")
            agg[k] = v
        object.__setattr__(self, "aggregation", dict(sorted(agg.items())))
        if self.spec_version is not None:
            _int("spec_version", self.spec_version)
        if self.consensus is not None:
            from subnet.consensus import check_wire_values

            try:
                object.__setattr__(self, "consensus", check_wire_values(self.consensus))
            except ValueError as exc:
                raise ProtocolError(f"manifest {exc}") from exc

    def by_fragment(self) -> dict[int, tuple[ManifestEntry, ...]]:
        """Entries grouped by fragment, in canonical order."""
        out: dict[int, list[ManifestEntry]] = {}
        for e in self.entries:
            out.setdefault(e.fragment, []).append(e)
        return {f: tuple(v) for f, v in out.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "netuid": self.netuid,
            "window": self.window,
            "base_version": self.base_version,
            "new_version": self.new_version,
            "outer_lr": self.outer_lr,
            "aggregation": dict(self.aggregation),
            "model_hash": self.model_hash,
            "entries": [e.to_dict() for e in self.entries],
            "signer": self.signer,
            "signature": self.signature,
            **({"consensus": dict(self.consensus)} if self.consensus is not None else {}),
            **({"spec_version": self.spec_version} if self.spec_version is not None else {}),
        }

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, no whitespace, ASCII)."""
        return _canonical(self.to_dict())

    def signing_message(self) -> bytes:
        """What the signature covers: the domain + canonical JSON of every field but `signature`."""
        body = self.to_dict()
        del body["signature"]
        return SIGNING_DOMAIN + _canonical(body).encode("ascii")

    def sign(self, keypair: Signer) -> Manifest:
        """A copy signed by `keypair` (its ss58 address becomes `signer`)."""
        unsigned = replace(self, signer=keypair.ss58_address, signature=None)
        return replace(unsigned, signature=bytes(keypair.sign(unsigned.signing_message())).hex())

    def canonical_bytes(self) -> bytes:
        return self.to_json().encode("ascii")

    @property
    def sha256(self) -> str:
        """Hex sha256 of the canonical bytes: what a signature or a follower checks."""
        import hashlib

        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate; any malformed input raises ProtocolError."""
        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            data = json.loads(text, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ProtocolError(f"manifest is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        if not isinstance(data, dict):
            raise ProtocolError("manifest must be a JSON object")
        expected = {"schema", "netuid", "window", "base_version", "new_version", "outer_lr",
                    "aggregation", "model_hash", "entries", "signer", "signature"}
        _exact_keys("manifest", data, expected, optional=OPTIONAL_FIELDS)
        raw_entries = data["entries"]
        if not isinstance(raw_entries, list):
            raise ProtocolError("manifest field 'entries' must be a list")
        entries = []
        for raw in raw_entries:
            if not isinstance(raw, dict):
                raise ProtocolError("manifest entry must be a JSON object")
            _exact_keys("manifest entry", raw, {"fragment", "uid", "hotkey", "key", "sha256", "weight"})
            entries.append(ManifestEntry(**raw))
        if not isinstance(data["aggregation"], dict):
            raise ProtocolError("manifest field 'aggregation' must be an object")
        try:
            return cls(
                schema=data["schema"],
                netuid=data["netuid"],
                window=data["window"],
                base_version=data["base_version"],
                new_version=data["new_version"],
                outer_lr=data["outer_lr"],
                aggregation=data["aggregation"],
                model_hash=data["model_hash"],
                entries=tuple(entries),
                signer=data["signer"],
                signature=data["signature"],
                consensus=data.get("consensus"),
                spec_version=data.get("spec_version"),
            )
        except TypeError as exc:  # pragma: no cover - keys are checked above
            raise ProtocolError(f"malformed manifest: {exc}") from exc


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def _exact_keys(what: str, data: dict[str, Any], expected: set[str], optional: frozenset[str] = frozenset()) -> None:
    missing = expected - data.keys()
    extra = data.keys() - expected - optional
    if missing or extra:
        raise ProtocolError(f"{what} fields wrong: missing {sorted(missing)}, unexpected {sorted(extra)}")
