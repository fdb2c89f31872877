"""Atomic file writes: the one way Tessera puts state on disk.

Temp file in the same directory, fsync, `os.replace` over the target, then
fsync the directory, so a kill -9 at any instant leaves either the complete
old file or the complete new one (never a torn file), and the rename itself
survives a power cut. Every piece of state that matters goes through here:
checkpoints, miner/validator state, store objects, the data cache, reports.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], object], *,
                 mode: int = 0o644, tmp_prefix: str | None = None) -> Path:
    """Call `writer(fh)` on a temp file next to `path`, then rename it into place durably.

    `tmp_prefix` names the temp files (default `.<name>.`) so owners can spot
    and clean strays; they never match a real key or state file name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix or f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, **kwargs: object) -> Path:
    return write_atomic(path, lambda fh: fh.write(data), **kwargs)  # type: ignore[arg-type]


def write_text_atomic(path: str | os.PathLike[str], text: str, **kwargs: object) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), **kwargs)
