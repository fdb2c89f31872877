"""A bounded local cache of verified shards: an in-memory LRU over an on-disk LRU directory.

Why two tiers: a miner reads the same few shards on every inner step of a
window (memory), and a restarted node or the next windows find shards it
already paid for (disk). Both tiers are bounded in bytes and evict least
recently used shards first:

- memory: `memory_bytes` of shard bytes held by this process;
- disk: `disk_bytes` under `<root>/<sha256>.tok`, written atomically, every
  hit re-hashed before use (a file corrupted on disk is deleted and counts as
  a miss, so it is fetched again rather than trusted). Recency is the file's
  mtime, refreshed on each hit, so processes sharing one cache directory
  (a devnet's miners and validator) evict by the same order; the bound is
  re-checked against the directory itself whenever this process's running
  count says it is exceeded.

Only bytes that already matched their manifest hash are ever `put` here.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from subnet.atomic import write_bytes_atomic
from subnet.data.manifest import is_sha256
from subnet.errors import ConfigError

_SUFFIX = ".tok"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True, kw_only=True)
class CacheLimits:
    """Byte bounds of the two tiers (0 turns a tier off)."""

    memory_bytes: int = 512 << 20
    disk_bytes: int = 4 << 30

    def __post_init__(self) -> None:
        if self.memory_bytes < 0 or self.disk_bytes < 0:
            raise ConfigError("shard cache bounds must be >= 0 bytes")


@dataclass(frozen=True, kw_only=True)
class CacheStats:
    memory_hits: int
    disk_hits: int
    misses: int
    memory_bytes: int
    disk_bytes: int

    @property
    def hit_rate(self) -> float:
        total = self.memory_hits + self.disk_hits + self.misses
        return (self.memory_hits + self.disk_hits) / total if total else 0.0


class ShardCache:
    """sha256 -> verified shard bytes, bounded in memory and on disk."""

    def __init__(self, root: str | os.PathLike[str], limits: CacheLimits | None = None) -> None:
        self.root = Path(root).expanduser()
        self.limits = limits or CacheLimits()
        self._mem: OrderedDict[str, bytes] = OrderedDict()
        self._mem_used = 0
        self._lock = threading.Lock()
        self._hits_mem = self._hits_disk = self._misses = 0
        if self.limits.disk_bytes:
            self.root.mkdir(parents=True, exist_ok=True)
        self._disk_used = sum(size for _, size, _ in self._scan())

    # -- lookups --------------------------------------------------------------------------------
    def get(self, sha256: str, *, count: bool = True) -> bytes | None:
        """The shard's verified bytes, or None (a miss); `count` adds the lookup to the stats."""
        with self._lock:
            data = self._mem.get(sha256)
            if data is not None:
                self._mem.move_to_end(sha256)
                self._hits_mem += count
                return data
        data = self._read_disk(sha256)
        with self._lock:
            if data is None:
                self._misses += count
                return None
            self._hits_disk += count
        self._remember(sha256, data)
        return data

    def get_memory(self, sha256: str) -> bytes | None:
        """The shard if this process holds it in memory (no disk access, not counted)."""
        with self._lock:
            return self._mem.get(sha256)

    def put(self, sha256: str, data: bytes) -> None:
        """Keep bytes that matched `sha256` (the caller verified them) in both tiers."""
        if not is_sha256(sha256):
            raise ValueError("cache keys are sha256 hex digests")
        self._remember(sha256, data)
        if 0 < len(data) <= self.limits.disk_bytes:
            try:
                write_bytes_atomic(self._path(sha256), data, tmp_prefix=_TMP_PREFIX)
            except OSError as exc:  # a full or read-only disk costs refetches, not the window
                logger.warning("shard cache: cannot write {}: {}", sha256[:12], exc)
                return
            with self._lock:
                self._disk_used += len(data)
                over = self._disk_used > self.limits.disk_bytes
            if over:
                self._evict_disk(keep=sha256)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(memory_hits=self._hits_mem, disk_hits=self._hits_disk, misses=self._misses,
                              memory_bytes=self._mem_used, disk_bytes=self._disk_used)

    def clear_memory(self) -> None:
        with self._lock:
            self._mem.clear()
            self._mem_used = 0

    # -- tiers ------------------------------------------------------------------------------------
    def _path(self, sha256: str) -> Path:
        return self.root / f"{sha256}{_SUFFIX}"

    def _remember(self, sha256: str, data: bytes) -> None:
        if len(data) > self.limits.memory_bytes:
            return
        with self._lock:
            if sha256 in self._mem:
                self._mem.move_to_end(sha256)
                return
            self._mem[sha256] = data
            self._mem_used += len(data)
            while self._mem_used > self.limits.memory_bytes:
                _, old = self._mem.popitem(last=False)
                self._mem_used -= len(old)

    def _read_disk(self, sha256: str) -> bytes | None:
        if not self.limits.disk_bytes:
            return None
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("shard cache: cannot read {}: {}", path, exc)
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            logger.warning("shard cache: {} is corrupt on disk; deleting it and fetching again", path.name)
            self._unlink(path, len(data))
            return None
        try:
            os.utime(path)  # recency for the LRU
        except OSError:
            pass
        return data

    def _scan(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of the cached shards on disk."""
        if not self.limits.disk_bytes or not self.root.is_dir():
            return []
        out = []
        with os.scandir(self.root) as it:
            for entry in it:
                name = entry.name
                if not (name.endswith(_SUFFIX) and is_sha256(name[: -len(_SUFFIX)])):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                out.append((st.st_mtime, st.st_size, Path(entry.path)))
        return out

    def _evict_disk(self, keep: str) -> None:
        """Delete least recently used shards until the directory is back under 90% of the bound."""
        entries = sorted(self._scan())
        used = sum(size for _, size, _ in entries)
        target = int(self.limits.disk_bytes * 0.9)
        for _mtime, size, path in entries:
            if used <= target:
                break
            if path.name == f"{keep}{_SUFFIX}":
                continue
            try:
                path.unlink()
                used -= size
            except FileNotFoundError:
                used -= size
            except OSError as exc:
                logger.warning("shard cache: cannot evict {}: {}", path.name, exc)
        with self._lock:
            self._disk_used = used
        logger.debug("shard cache: evicted down to {} bytes (bound {})", used, self.limits.disk_bytes)

    def _unlink(self, path: Path, size: int) -> None:
        try:
            path.unlink()
        except OSError:
            return
        with self._lock:
            self._disk_used = max(0, self._disk_used - size)
