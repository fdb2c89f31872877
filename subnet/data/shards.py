"""`ShardPages`: token pages on demand from a pre-tokenized shard store, pinned by manifest hash.

The `PageSource` backend for real datasets (10^9+ tokens): a node holds only
the shards its windows touch. For each page set it resolves page -> shard
(manifest.py), takes the shard from the local cache (cache.py) or fetches it
from the store, checks length and sha256 against the manifest BEFORE any
byte is used, and slices the rows. A shard that is absent, unreadable or
wrong raises ShardMissing / ShardUnavailable / ShardCorrupt (data/errors.py)
for the page set that needed it; it is never replaced by other data, and a
later call tries the store again.

Prefetch: `prefetch(indices, split)` queues the shards of those pages on a
small thread pool and returns at once, so downloads overlap training; a
`batch` that needs a shard already in flight waits for that download rather
than starting another. The miner prefetches its whole assignment when the
window starts (the first steps wait only for their own shards); the
validator prefetches a window's assigned and control pages when it begins
scoring it, while the held-out pages load. Next-window pages cannot be
fetched earlier: they depend on a seed that does not exist yet.

Other people's stores are read with the anonymous bounded reader
(subnet/storage/peer.py), so a slow owner bucket costs at most the reader's
per-request deadline per shard.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from loguru import logger

from subnet.atomic import write_bytes_atomic
from subnet.data.cache import CacheLimits, CacheStats, ShardCache
from subnet.data.errors import (
    ManifestError,
    ManifestMismatch,
    ShardCorrupt,
    ShardError,
    ShardMissing,
    ShardUnavailable,
)
from subnet.data.manifest import MAX_MANIFEST_BYTES, ShardManifest, is_sha256, manifest_key, shard_key
from subnet.data.pages import Split
from subnet.errors import ConfigError, DataError, StorageError


class ShardReader(Protocol):
    """What the shard path needs from a store: a bounded get (PeerReader and ArtifactStore both fit)."""

    location: str

    def get(self, key: str, max_bytes: int) -> bytes | None: ...


@dataclass(frozen=True, kw_only=True)
class FetchStats:
    """Store traffic of one ShardPages, plus its cache's counters."""

    fetches: int
    fetched_bytes: int
    fetch_seconds: float  # summed over downloads (they overlap, so this can exceed wall time)
    errors: int
    cache: CacheStats


def load_manifest(reader: ShardReader, manifest_sha256: str, cache_dir: Path | None = None) -> ShardManifest:
    """The pinned manifest: from the local copy if it still hashes right, else from the store."""
    if not is_sha256(manifest_sha256):
        raise ConfigError(f"manifest sha256 must be 64 lower-case hex digits, got {manifest_sha256!r}",
                          remediation="set --data.manifest_sha256 to the hash the subnet owner published")
    local = Path(cache_dir) / f"{manifest_sha256}.json" if cache_dir is not None else None
    data = None
    if local is not None and local.is_file():
        data = local.read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest_sha256:
            logger.warning("cached manifest {} is corrupt; fetching it again", local)
            data = None
    if data is None:
        try:
            data = reader.get(manifest_key(manifest_sha256), MAX_MANIFEST_BYTES)
        except StorageError as exc:
            raise ManifestError(f"cannot read manifest {manifest_sha256[:12]} from {reader.location}: {exc}") from exc
        if data is None:
            raise ManifestError(f"{reader.location} has no manifest {manifest_key(manifest_sha256)}",
                                remediation="check --data.shards and --data.manifest_sha256")
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest_sha256:
            raise ManifestMismatch(f"manifest from {reader.location} hashes to {digest}, not the pinned "
                                   f"{manifest_sha256}")
        if local is not None:
            write_bytes_atomic(local, data)
    return ShardManifest.from_bytes(data)


class ShardPages:
    """PageSource over shards of a pinned manifest (see the module docstring)."""

    def __init__(self, manifest: ShardManifest, reader: ShardReader, cache: ShardCache, *, workers: int = 8) -> None:
        if workers < 1:
            raise ConfigError("shard fetch workers must be >= 1")
        self.manifest = manifest
        self.reader = reader
        self.cache = cache
        self.page_len = manifest.page_len
        self.n_train = manifest.n_train
        self.n_heldout = manifest.n_heldout
        self.n_pages = manifest.n_train + manifest.n_heldout
        self.fingerprint = manifest.sha256
        self.meta: dict[str, Any] = {
            "key": manifest.sha256, "source": manifest.source, "tokenizer": manifest.tokenizer.name,
            "tokenizer_fingerprint": manifest.tokenizer.fingerprint, "vocab_size": manifest.tokenizer.vocab_size,
            "n_tokens": manifest.n_tokens, "dtype": manifest.dtype, "shards": reader.location,
        }
        self._dtype = np.dtype("<u2" if manifest.dtype == "uint16" else "<u4")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shard-fetch")
        self._inflight: dict[str, Future[bytes]] = {}
        self._lock = threading.Lock()
        self._fetches = self._fetched_bytes = self._errors = 0
        self._fetch_s = 0.0
        self._warned_small = False

    @property
    def vocab_size(self) -> int | None:
        return self.manifest.tokenizer.vocab_size

    # -- PageSource ---------------------------------------------------------------------------------
    def batch(self, indices: Sequence[int], split: Split = "train") -> torch.Tensor:
        """Pages stacked as LongTensor[len(indices), page_len]; a ShardError if any shard is unusable."""
        if len(indices) == 0:
            raise DataError("batch() needs at least one page index")
        locs = [self.manifest.locate(split, i) for i in indices]
        found: dict[int, bytes] = {}
        pending: dict[int, Future[bytes]] = {}
        for k in dict.fromkeys(k for k, _ in locs):  # every missing shard is queued before any wait
            data = self._cached(split, k)
            if data is None:
                pending[k] = self._submit(split, k)
            else:
                found[k] = data
        for k, fut in pending.items():
            found[k] = self._result(fut, split, k)
        shards = {k: np.frombuffer(data, dtype=self._dtype).reshape(-1, self.page_len) for k, data in found.items()}
        rows = np.stack([shards[k][row] for k, row in locs]).astype(np.int64)  # [B, page_len]
        return torch.from_numpy(rows)

    def prefetch(self, indices: Sequence[int], split: Split = "train") -> None:
        """Queue the shards of these pages; never raises (errors surface in `batch`)."""
        try:
            shards = dict.fromkeys(self.manifest.locate(split, i)[0] for i in indices)
            want = sum(self.manifest.shard_bytes(split, k) for k in shards)
            if want > self.cache.limits.memory_bytes and not self._warned_small:
                self._warned_small = True
                logger.warning("shard memory cache ({} MiB) is smaller than one page set ({:.1f} MiB): shards will be "
                               "fetched more than once (raise --data.shard_memory_mb)",
                               self.cache.limits.memory_bytes >> 20, want / 2**20)
            for k in shards:
                if not self._in_memory(split, k):
                    self._submit(split, k)
        except Exception as exc:  # noqa: BLE001 - a hint must never end a window
            logger.debug("prefetch of {} {} pages skipped: {}", len(indices), split, exc)

    # -- bookkeeping --------------------------------------------------------------------------------
    def shards_for(self, indices: Sequence[int], split: Split = "train") -> set[str]:
        """Content hashes of the shards holding these pages."""
        hashes = self.manifest.shards(split)
        return {hashes[self.manifest.locate(split, i)[0]] for i in indices}

    def stats(self) -> FetchStats:
        with self._lock:
            return FetchStats(fetches=self._fetches, fetched_bytes=self._fetched_bytes, fetch_seconds=self._fetch_s,
                              errors=self._errors, cache=self.cache.stats())

    def close(self) -> None:
        """Stop the download threads; page sets still waiting get ShardUnavailable."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            pending = list(self._inflight.values())
        for fut in pending:
            fut.cancel()  # only those not yet started; running ones finish

    def __repr__(self) -> str:
        return (f"ShardPages(manifest={self.fingerprint[:12]}, page_len={self.page_len}, n_train={self.n_train}, "
                f"n_heldout={self.n_heldout}, store={self.reader.location})")

    # -- loading ------------------------------------------------------------------------------------
    def _sha(self, split: str, k: int) -> str:
        return self.manifest.shards(split)[k]

    def _in_memory(self, split: str, k: int) -> bool:
        sha = self._sha(split, k)
        with self._lock:
            if sha in self._inflight:
                return True
        return self.cache.get_memory(sha) is not None

    def _cached(self, split: str, k: int) -> bytes | None:
        """The shard from the cache unless a download of it is already in flight."""
        sha = self._sha(split, k)
        with self._lock:
            if sha in self._inflight:
                return None
        return self.cache.get(sha)

    def _submit(self, split: str, k: int) -> Future[bytes]:
        """The one download of this shard in flight, started if there is none.

        Only dict operations run under the lock: the future is ours, its callback is registered
        before any work can finish it, and the work runs on the pool outside the lock.
        """
        sha = self._sha(split, k)
        with self._lock:
            fut = self._inflight.get(sha)
            if fut is not None:
                return fut
            fut = Future()
            self._inflight[sha] = fut
        fut.add_done_callback(lambda f, s=sha: self._done(s, f))
        try:
            self._pool.submit(self._run, fut, split, k, sha)
        except RuntimeError as exc:  # the pool was shut down (close())
            fut.set_exception(ShardUnavailable(f"shard reader is closed: {exc}"))
        return fut

    def _run(self, fut: Future[bytes], split: str, k: int, sha: str) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(self._load(split, k, sha))
        except BaseException as exc:  # noqa: BLE001 - delivered to whoever waits on the future
            fut.set_exception(exc)

    def _done(self, sha: str, fut: Future[bytes]) -> None:
        with self._lock:
            if self._inflight.get(sha) is fut:
                del self._inflight[sha]

    def _result(self, fut: Future[bytes], split: str, k: int) -> bytes:
        try:
            return fut.result()
        except ShardError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a store does stays a typed error for this page set
            raise ShardUnavailable(f"{split} shard {k} ({self._sha(split, k)[:12]}) from {self.reader.location}: "
                                   f"{type(exc).__name__}: {exc}") from exc

    def _load(self, split: str, k: int, sha: str) -> bytes:
        """Cache, else store: bytes that match the manifest's length and sha256, or a ShardError."""
        data = self.cache.get(sha, count=False)  # the caller's lookup was counted (or was a prefetch)
        if data is not None:
            return data
        nbytes = self.manifest.shard_bytes(split, k)
        where = f"{split} shard {k} ({sha[:12]}) from {self.reader.location}"
        t0 = time.perf_counter()
        try:
            data = self.reader.get(shard_key(sha), nbytes)
        except StorageError as exc:
            self._count_error()
            raise ShardUnavailable(f"{where}: {exc}") from exc
        elapsed = time.perf_counter() - t0
        if data is None:
            self._count_error()
            raise ShardMissing(f"{where}: absent (or larger than the manifest's {nbytes} bytes)")
        if len(data) != nbytes:
            self._count_error()
            raise ShardCorrupt(f"{where}: {len(data)} bytes, the manifest says {nbytes}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha:
            self._count_error()
            raise ShardCorrupt(f"{where}: bytes hash to {digest[:12]}, not the manifest's sha256")
        self.cache.put(sha, data)
        with self._lock:
            self._fetches += 1
            self._fetched_bytes += nbytes
            self._fetch_s += elapsed
        return data

    def _count_error(self) -> None:
        with self._lock:
            self._errors += 1


def check_model(manifest: ShardManifest, tokenizer: str, vocab_size: int) -> None:
    """Refuse shards made with another tokenizer than the model preset names (ManifestMismatch)."""
    want = f"embedded-bpe-{vocab_size}" if tokenizer == "embedded" else tokenizer
    got = manifest.tokenizer
    if got.vocab_size != vocab_size or got.name != want:
        raise ManifestMismatch(f"shards were tokenized with {got.name} (vocab {got.vocab_size}); the model preset "
                               f"wants {want} (vocab {vocab_size})",
                               remediation="use the model preset the subnet runs, or the subnet's manifest")


def open_shard_pages(reader: ShardReader, manifest_sha256: str, cache_dir: str | Path, *,
                     limits: CacheLimits | None = None, workers: int = 8) -> ShardPages:
    """ShardPages for the pinned manifest, caching under `<cache_dir>/shards` within `limits`."""
    root = Path(cache_dir).expanduser()
    manifest = load_manifest(reader, manifest_sha256, root / "shard-manifests")
    cache = ShardCache(root / "shards", limits)
    logger.info("shard pages: manifest {} from {}: {} train / {} held-out pages of {} tokens in {} + {} shards; "
                "cache {} MiB disk, {} MiB memory", manifest_sha256[:12], reader.location, manifest.n_train,
                manifest.n_heldout, manifest.page_len, len(manifest.train_shards), len(manifest.heldout_shards),
                cache.limits.disk_bytes >> 20, cache.limits.memory_bytes >> 20)
    return ShardPages(manifest, reader, cache, workers=workers)
