"""`build_shards`: tokenize a source once into content-addressed shards plus a manifest.

The subnet owner's job (`tessera data build`), done once per dataset: stream
the source through the same tokenizer path as the local array
(pages.iter_tokens), spool the ids to a local file (2 or 4 bytes a token:
2 GB per 10^9 tokens with a 16-bit vocab), then cut the spooled stream into
pages, split them by the one rule (split.py), and write the train and
held-out splits as separate runs of shards of `pages_per_shard` pages
(manifest.py has the format). Shards go to OUR store (subnet.storage
.open_store: a directory or any S3-compatible bucket) through a few upload
threads; one already present under its content hash is skipped, so an
interrupted build resumes. The manifest is written last, under its own hash
and as `manifest.json`; its hash is what every node pins.

The spool is needed because the split is the last ceil(5%) of ALL pages: the
total is known only at the end of the stream.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from subnet.data.config import DataConfig
from subnet.data.manifest import LATEST_KEY, ShardManifest, TokenizerIdentity, manifest_key, shard_key
from subnet.data.pages import iter_tokens, source_identity, token_dtype
from subnet.data.split import split_sizes
from subnet.data.tokenizer import TextTokenizer, get_tokenizer
from subnet.errors import ConfigError, DataError
from subnet.storage.base import ArtifactStore


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """What a build produced and how long each part took."""

    manifest: ShardManifest
    location: str
    tokenize_seconds: float  # source -> token spool
    shard_seconds: float  # spool -> hashed shards -> store, manifest included
    uploaded: int  # shards written
    skipped: int  # shards already in the store under their hash
    bytes_written: int

    @property
    def seconds(self) -> float:
        return self.tokenize_seconds + self.shard_seconds

    @property
    def tokens_per_s(self) -> float:
        return self.manifest.n_tokens / self.seconds if self.seconds > 0 else float("inf")


def _public_identity(ident: dict[str, Any], cfg: DataConfig) -> dict[str, Any]:
    """The source as the manifest records it: content hashes and names, never this machine's paths."""
    out = dict(ident)
    if "files" in out:
        out["files"] = [[Path(path).name, digest] for path, digest in out["files"]]
    out["max_tokens"] = cfg.max_tokens
    return out


def _spool(tokens: Iterator[np.ndarray], dtype: np.dtype, directory: Path) -> tuple[Path, int]:
    """Write the token stream to a temp file; (path, token count)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".spool-", suffix=".tok", dir=directory)
    n = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in tokens:
                fh.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())
                n += len(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), n


class _Uploader:
    """Bounded parallel puts into our store, skipping content already present."""

    def __init__(self, store: ArtifactStore, workers: int) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shard-upload")
        self._slots = threading.Semaphore(2 * workers)  # bounds the shard bytes held in memory
        self._futures: list[Future[bool]] = []
        self.bytes_written = 0
        self._lock = threading.Lock()

    def submit(self, key: str, data: bytes) -> None:
        self._slots.acquire()
        fut = self._pool.submit(self._put, key, data)
        fut.add_done_callback(lambda _f: self._slots.release())
        self._futures.append(fut)

    def _put(self, key: str, data: bytes) -> bool:
        if self.store.exists(key):
            return False
        self.store.put(key, data)
        with self._lock:
            self.bytes_written += len(data)
        return True

    def finish(self) -> tuple[int, int]:
        """(uploaded, skipped); re-raises the first upload error."""
        try:
            done = [f.result() for f in self._futures]
        finally:
            self._pool.shutdown(wait=True)
        return sum(done), len(done) - sum(done)


def build_shards(cfg: DataConfig, store: ArtifactStore, *, pages_per_shard: int = 256, workers: int = 4,
                 tok: TextTokenizer | None = None, spool_dir: Path | None = None) -> BuildResult:
    """Tokenize `cfg.source` into shards in `store`; return the manifest (see the module docstring)."""
    if pages_per_shard < 1:
        raise ConfigError("pages_per_shard must be >= 1")
    tok = tok or get_tokenizer(cfg.tokenizer, cfg.cache_dir, cfg.vocab_size)
    ident, open_records, field = source_identity(cfg)
    dtype = np.dtype(token_dtype(tok)).newbyteorder("<")
    t0 = time.perf_counter()
    logger.info("build: tokenising {} with {}", cfg.source, tok.name)
    spool, n_tokens = _spool(iter_tokens(open_records(), field, tok, cfg.max_tokens), dtype,
                             spool_dir or cfg.cache_dir / "build")
    t1 = time.perf_counter()
    try:
        if n_tokens == 0:
            raise DataError("data source produced no tokens")
        L = cfg.page_len
        n_pages = n_tokens // L
        n_train, n_heldout = split_sizes(n_pages, cfg.heldout_fraction)
        tokens = np.memmap(spool, dtype=dtype, mode="r", shape=(n_tokens,))
        up = _Uploader(store, workers)
        hashes: dict[str, list[str]] = {"train": [], "heldout": []}
        for split, start, count in (("train", 0, n_train), ("heldout", n_train, n_heldout)):
            for k in range(math.ceil(count / pages_per_shard)):
                a = start + k * pages_per_shard
                b = min(start + count, a + pages_per_shard)
                data = tokens[a * L:b * L].tobytes()  # [pages, page_len] little-endian, C order
                sha = hashlib.sha256(data).hexdigest()
                hashes[split].append(sha)
                up.submit(shard_key(sha), data)
        del tokens
        uploaded, skipped = up.finish()
        manifest = ShardManifest(
            source=_public_identity(ident, cfg),
            tokenizer=TokenizerIdentity(name=tok.name, fingerprint=tok.fingerprint, vocab_size=tok.vocab_size,
                                        eos_id=tok.eos_id),
            dtype=str(np.dtype(token_dtype(tok))), page_len=L, pages_per_shard=pages_per_shard,
            heldout_fraction=float(cfg.heldout_fraction), n_tokens=n_tokens, n_train=n_train, n_heldout=n_heldout,
            train_shards=tuple(hashes["train"]), heldout_shards=tuple(hashes["heldout"]),
        )
        body = manifest.to_bytes()
        store.put(manifest_key(manifest.sha256), body)
        store.put(LATEST_KEY, body)
    finally:
        spool.unlink(missing_ok=True)
    t2 = time.perf_counter()
    logger.info("build: {} tokens -> {} + {} shards in {:.1f}s (+{:.1f}s tokenising); manifest {}", n_tokens,
                len(manifest.train_shards), len(manifest.heldout_shards), t2 - t1, t1 - t0, manifest.sha256)
    return BuildResult(manifest=manifest, location=store.location, tokenize_seconds=t1 - t0, shard_seconds=t2 - t1,
                       uploaded=uploaded, skipped=skipped, bytes_written=up.bytes_written + 2 * len(body))
