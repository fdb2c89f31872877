"""A directory-backed artifact store (the embedded default).

Writes are atomic and durable: the bytes go to a temp file in the target
directory, are fsynced, then `os.replace`d over the key and the directory is
fsynced, so a reader (or a kill -9) sees either the old object or the new one.
Keys are validated (base.validate_key) and resolved under the root, so no key
can reach outside it. This is OUR store; peers' directories (devnet) are read
by subnet/storage/peer.LocalPeerReader, which follows no links and creates
nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from loguru import logger

from subnet.atomic import write_bytes_atomic
from subnet.errors import StorageError
from subnet.storage.base import BadKey, validate_key, validate_prefix

_TMP_PREFIX = ".tmp-"


class LocalDirStore:
    """ArtifactStore over a local directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        try:
            self.root = Path(root).expanduser().resolve()
            self.root.mkdir(parents=True, exist_ok=True)
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on the way
            raise StorageError(f"cannot create store directory {root}: {e}") from e

    @property
    def location(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        try:
            p = (self.root / validate_key(key)).resolve()
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop under the root
            raise BadKey(f"key {key!r} cannot be resolved under the store: {e}") from e
        if not p.is_relative_to(self.root) or p == self.root:
            raise BadKey(f"key {key!r} resolves outside the store")
        return p

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            write_bytes_atomic(path, data, tmp_prefix=_TMP_PREFIX)
        except OSError as e:
            raise StorageError(f"cannot write {key!r} to {self.root}: {e}") from e

    def get(self, key: str, max_bytes: int) -> bytes | None:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > max_bytes:
                    logger.warning("store {}: {} is {} bytes, over the {}-byte limit; treated as absent",
                                   self.root, key, size, max_bytes)
                    return None
                data = f.read(max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as e:
            raise StorageError(f"cannot read {key!r} from {self.root}: {e}") from e
        if len(data) > max_bytes:  # grew while we read
            logger.warning("store {}: {} grew past {} bytes while reading; treated as absent",
                           self.root, key, max_bytes)
            return None
        return data

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def modified(self, key: str) -> float | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(f"cannot stat {key!r} in {self.root}: {e}") from e
        return st.st_mtime

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        out = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    continue
                rel = Path(dirpath, name).relative_to(self.root).as_posix()
                if rel.startswith(prefix):
                    out.append(rel)
        return sorted(out)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise StorageError(f"cannot delete {key!r} from {self.root}: {e}") from e
