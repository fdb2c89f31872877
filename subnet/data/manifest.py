"""The shard manifest: what a pre-tokenized dataset is, as canonical JSON pinned by its sha256.

Store layout (one prefix of an S3 bucket or a directory; content-addressed):

    shards/<sha256>.tok        raw little-endian token ids, uint16 or uint32,
                               C order [n_pages, page_len]; no header, no pickle
    manifests/<sha256>.json    this manifest; <sha256> is that of its bytes
    manifest.json              a copy of the latest manifest (for people; nodes
                               read only the pinned, content-addressed one)

Page index -> shard and offset: the train split's page i lives in shard
`train_shards[i // pages_per_shard]`, at byte offset
`(i % pages_per_shard) * page_len * itemsize`; held-out page j likewise in
`heldout_shards`. Every shard holds `pages_per_shard` pages except the last of
each split, which holds the rest. Train and held-out pages never share a
shard, so a miner never downloads held-out bytes to train.

Manifest fields: format, version, source (what was tokenized), tokenizer
(name, fingerprint, vocab_size, eos_id), dtype, page_len, pages_per_shard,
heldout_fraction, n_tokens (tokens tokenized; the tail that fills no page is
dropped), n_train / n_heldout (pages, by subnet.data.split.split_sizes), and
the two shard hash lists. No timestamps: the same source, tokenizer and
settings always give the same manifest hash, so anyone can rebuild and check
what the subnet owner published. This module is pure (no I/O).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from subnet.data.errors import ManifestError
from subnet.data.split import split_sizes
from subnet.errors import DataError

FORMAT = "tessera-shards"
VERSION = 1
MAX_MANIFEST_BYTES = 64 << 20  # ~3.5M shard hashes: 10^11 tokens at 256 pages of 129 tokens per shard
LATEST_KEY = "manifest.json"
DTYPES = {"uint16": 2, "uint32": 4}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
SPLITS = ("train", "heldout")


def shard_key(sha256: str) -> str:
    """Store key of the shard with this content hash."""
    return f"shards/{sha256}.tok"


def manifest_key(sha256: str) -> str:
    """Store key of the manifest with this content hash."""
    return f"manifests/{sha256}.json"


def is_sha256(text: object) -> bool:
    return isinstance(text, str) and bool(_HEX64.match(text))


@dataclass(frozen=True, kw_only=True)
class TokenizerIdentity:
    """Which tokenizer produced the ids: nodes check name and vocab against their model preset."""

    name: str
    fingerprint: str
    vocab_size: int
    eos_id: int | None


@dataclass(frozen=True, kw_only=True)
class ShardManifest:
    """A pre-tokenized dataset: split sizes, page geometry and the content hash of every shard."""

    source: dict[str, Any]
    tokenizer: TokenizerIdentity
    dtype: str
    page_len: int
    pages_per_shard: int
    heldout_fraction: float
    n_tokens: int
    n_train: int
    n_heldout: int
    train_shards: tuple[str, ...]
    heldout_shards: tuple[str, ...]
    sha256: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ManifestError(f"manifest dtype {self.dtype!r} is not one of {sorted(DTYPES)}")
        for name in ("page_len", "pages_per_shard", "n_tokens", "n_train", "n_heldout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ManifestError(f"manifest {name} must be an int >= 1, got {value!r}")
        if self.page_len < 2:
            raise ManifestError("manifest page_len must be >= 2")
        if self.tokenizer.vocab_size > 1 << (8 * DTYPES[self.dtype]):
            raise ManifestError(f"vocab {self.tokenizer.vocab_size} does not fit {self.dtype}")
        n_pages = self.n_train + self.n_heldout
        if not n_pages * self.page_len <= self.n_tokens < (n_pages + 1) * self.page_len:
            raise ManifestError(f"{n_pages} pages of {self.page_len} do not match {self.n_tokens} tokens")
        try:
            expected = split_sizes(n_pages, float(self.heldout_fraction))
        except DataError as exc:
            raise ManifestError(f"manifest split: {exc}") from exc
        if expected != (self.n_train, self.n_heldout):
            raise ManifestError(f"split {self.n_train}/{self.n_heldout} is not the rule's {expected[0]}/{expected[1]}")
        for split in SPLITS:
            hashes = self.shards(split)
            want = math.ceil(self.split_pages(split) / self.pages_per_shard)
            if len(hashes) != want:
                raise ManifestError(f"{split}: {len(hashes)} shards listed, {want} expected")
            if not all(is_sha256(h) for h in hashes):
                raise ManifestError(f"{split}: shard hashes must be 64 lower-case hex digits")
        object.__setattr__(self, "sha256", hashlib.sha256(self.to_bytes()).hexdigest())

    # -- geometry ---------------------------------------------------------------------------------
    @property
    def itemsize(self) -> int:
        return DTYPES[self.dtype]

    @property
    def page_bytes(self) -> int:
        return self.page_len * self.itemsize

    def split_pages(self, split: str) -> int:
        if split == "train":
            return self.n_train
        if split == "heldout":
            return self.n_heldout
        raise DataError(f"unknown split {split!r} (use 'train' or 'heldout')")

    def shards(self, split: str) -> tuple[str, ...]:
        self.split_pages(split)  # validates the name
        return self.train_shards if split == "train" else self.heldout_shards

    def shard_pages(self, split: str, k: int) -> int:
        """Pages held by shard k of `split`."""
        return min(self.pages_per_shard, self.split_pages(split) - k * self.pages_per_shard)

    def shard_bytes(self, split: str, k: int) -> int:
        return self.shard_pages(split, k) * self.page_bytes

    def locate(self, split: str, i: int) -> tuple[int, int]:
        """(shard number within `split`, row within that shard) of page i; DataError when out of range."""
        limit = self.split_pages(split)
        try:
            ok = not isinstance(i, bool) and int(i) == i and 0 <= int(i) < limit
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise DataError(f"{split} page index {i!r} out of range [0, {limit})")
        k, row = divmod(int(i), self.pages_per_shard)
        return k, row

    @property
    def total_bytes(self) -> int:
        return (self.n_train + self.n_heldout) * self.page_bytes

    # -- canonical bytes ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "source": self.source,
            "tokenizer": {"name": self.tokenizer.name, "fingerprint": self.tokenizer.fingerprint,
                          "vocab_size": self.tokenizer.vocab_size, "eos_id": self.tokenizer.eos_id},
            "dtype": self.dtype, "byteorder": "little", "page_len": self.page_len,
            "pages_per_shard": self.pages_per_shard, "heldout_fraction": self.heldout_fraction,
            "n_tokens": self.n_tokens, "n_train": self.n_train, "n_heldout": self.n_heldout,
            "train_shards": list(self.train_shards), "heldout_shards": list(self.heldout_shards),
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces, ASCII): the bytes whose sha256 nodes pin."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ShardManifest:
        """Parse and validate; ManifestError on anything malformed (the caller checks the pin)."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"manifest is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit")
        try:
            raw = json.loads(data.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ManifestError(f"manifest is not ASCII JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("version") != VERSION:
            raise ManifestError(f"not a {FORMAT} v{VERSION} manifest")
        if raw.get("byteorder") != "little":
            raise ManifestError("manifest byteorder must be 'little'")
        try:
            tok = raw["tokenizer"]
            manifest = cls(
                source=dict(raw["source"]),
                tokenizer=TokenizerIdentity(name=str(tok["name"]), fingerprint=str(tok["fingerprint"]),
                                            vocab_size=int(tok["vocab_size"]),
                                            eos_id=None if tok["eos_id"] is None else int(tok["eos_id"])),
                dtype=raw["dtype"], page_len=raw["page_len"], pages_per_shard=raw["pages_per_shard"],
                heldout_fraction=float(raw["heldout_fraction"]), n_tokens=raw["n_tokens"],
                n_train=raw["n_train"], n_heldout=raw["n_heldout"],
                train_shards=tuple(raw["train_shards"]), heldout_shards=tuple(raw["heldout_shards"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"manifest field missing or malformed: {exc!r}") from exc
        if manifest.to_bytes() != data:
            raise ManifestError("manifest is not in canonical form (sorted keys, no spaces)")
        return manifest
