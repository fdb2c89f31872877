"""Token pages: the unit of data assignment.

The token stream is cut into consecutive, non-overlapping pages of `page_len`
tokens (the tail that does not fill a page is dropped). The first `n_train`
pages are the training split; the last `n_heldout` (ceil of
`heldout_fraction` of all pages) are the held-out split, which the protocol
never assigns for training. Held-out page j is global page n_train + j
(subnet/data/split.py has the rule and the bound on its size).

`TokenPages` is the local-array backend of `PageSource` (source.py), the one
interface the neurons read pages through; the pre-tokenized shard store
(shards.py) is the other.

Every source goes through one path: documents -> tokenizer (in batches) ->
EOS between documents -> a cached `.npy` token array (uint16 when the vocab
fits, else uint32), written atomically and memory-mapped on later loads.
Sources: 'embedded' and local text files are read with
`datasets.load_dataset("text", sample_by="document", streaming=True)`; a hub
dataset name with `datasets.load_dataset(name, split=..., streaming=True)`.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from loguru import logger

from subnet.atomic import write_atomic, write_bytes_atomic
from subnet.data.config import DataConfig
from subnet.data.corpus import CORPUS_SHA256, ensure_corpus, sha256_file
from subnet.data.split import split_sizes
from subnet.data.tokenizer import TextTokenizer, get_tokenizer
from subnet.errors import DataError

FORMAT_VERSION = 1
_CHUNK_CHARS = 32_000  # documents are encoded in paragraph-aligned chunks of about this size
_BATCH_CHARS = 1 << 20  # records are buffered up to this many characters per encode_batch call
Split = Literal["train", "heldout"]


class TokenPages:
    """Fixed-size token pages with a train / held-out split (see module docstring)."""

    def __init__(self, tokens: np.ndarray, *, page_len: int, heldout_fraction: float,
                 meta: dict[str, Any] | None = None) -> None:
        if tokens.ndim != 1:
            raise DataError("token array must be 1-D")
        self.page_len = int(page_len)
        self.n_pages = len(tokens) // self.page_len
        self.n_train, self.n_heldout = split_sizes(self.n_pages, heldout_fraction)
        self._pages = tokens[: self.n_pages * self.page_len].reshape(self.n_pages, self.page_len)
        self.meta = dict(meta or {})
        ident = json.dumps([self.meta.get("key"), self.page_len, self.n_train, self.n_heldout])
        self.fingerprint = hashlib.sha256(ident.encode()).hexdigest()

    @property
    def vocab_size(self) -> int | None:
        return self.meta.get("vocab_size")

    def _row(self, i: int, split: Split) -> np.ndarray:
        if split == "train":
            limit, offset = self.n_train, 0
        elif split == "heldout":
            limit, offset = self.n_heldout, self.n_train
        else:
            raise DataError(f"unknown split {split!r} (use 'train' or 'heldout')")
        if isinstance(i, bool) or not 0 <= int(i) < limit or int(i) != i:
            raise DataError(f"{split} page index {i!r} out of range [0, {limit})")
        return self._pages[offset + int(i)]

    def train_page(self, i: int) -> torch.Tensor:
        """Training page i as a LongTensor[page_len]."""
        return torch.from_numpy(self._row(i, "train").astype(np.int64))

    def heldout_page(self, j: int) -> torch.Tensor:
        """Held-out page j as a LongTensor[page_len]."""
        return torch.from_numpy(self._row(j, "heldout").astype(np.int64))

    def batch(self, indices: Sequence[int], split: Split = "train") -> torch.Tensor:
        """Pages stacked as LongTensor[len(indices), page_len]."""
        if len(indices) == 0:
            raise DataError("batch() needs at least one page index")
        rows = np.stack([self._row(i, split) for i in indices]).astype(np.int64)
        return torch.from_numpy(rows)

    def prefetch(self, indices: Sequence[int], split: Split = "train") -> None:
        """Nothing to fetch: every page is already in the local array (PageSource contract)."""

    def __repr__(self) -> str:
        return f"TokenPages(page_len={self.page_len}, n_train={self.n_train}, n_heldout={self.n_heldout})"


def inputs_targets(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split [B, page_len] pages into next-token (inputs, targets) of length page_len - 1."""
    return batch[:, :-1], batch[:, 1:]


def _local_files(source: str) -> list[Path] | None:
    """Resolve a local source (file, directory of *.txt, glob, or 'file:<...>'); None if not local."""
    spec = source[5:] if source.startswith("file:") else source
    path = Path(spec).expanduser()
    if path.is_file():
        return [path.resolve()]
    if path.is_dir():
        files = sorted(p.resolve() for p in path.rglob("*.txt") if p.is_file())
        if not files:  # a local dataset directory (json/parquet/...): the hub code path loads it
            return None
    elif any(ch in spec for ch in "*?["):
        files = sorted(Path(p).resolve() for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    else:
        if source.startswith("file:"):
            raise DataError(f"local data source {spec!r} does not exist")
        return None
    if not files:
        raise DataError(f"local data source {spec!r} holds no text files")
    return files


def source_identity(cfg: DataConfig) -> tuple[dict[str, Any], Callable[[], Iterable[dict[str, Any]]], str]:
    """(identity for the cache key, opener of the streamed records, text field).

    The stream is opened lazily so a cached hub dataset needs no network.
    """
    import datasets

    if cfg.source == "embedded":
        files = [ensure_corpus(cfg.cache_dir)]
        ident: dict[str, Any] = {"embedded": CORPUS_SHA256}
    else:
        files = _local_files(cfg.source)
        ident = {"files": [[str(f), sha256_file(f)] for f in files]} if files else {}
    if files:
        def open_files() -> Iterable[dict[str, Any]]:
            return datasets.load_dataset(
                "text", data_files=[str(f) for f in files], sample_by="document",
                split="train", streaming=True,
            )

        return ident, open_files, "text"

    def open_hub() -> Iterable[dict[str, Any]]:
        try:
            return datasets.load_dataset(cfg.source, split=cfg.split, streaming=True)
        except Exception as exc:  # datasets raises many types (FileNotFoundError, ConnectionError, ...)
            raise DataError(f"cannot stream dataset {cfg.source!r}: {exc}") from exc

    return {"hub": cfg.source, "split": cfg.split, "field": cfg.text_field}, open_hub, cfg.text_field


def _chunks(text: str) -> Iterator[str]:
    """Paragraph-aligned pieces of ~_CHUNK_CHARS so long documents encode in parallel."""
    start = 0
    while start < len(text):
        end = start + _CHUNK_CHARS
        if end < len(text):
            cut = text.rfind("\n\n", start + 1, end)
            end = cut + 2 if cut > start else end
        yield text[start:end]
        start = end


def token_dtype(tok: TextTokenizer) -> type[np.unsignedinteger]:
    """uint16 when the vocab fits, else uint32."""
    return np.uint16 if tok.vocab_size <= 1 << 16 else np.uint32


def iter_tokens(records: Iterable[dict[str, Any]], field: str, tok: TextTokenizer,
                max_tokens: int | None) -> Iterator[np.ndarray]:
    """Token ids of the stream, in order, as arrays (EOS after every document), cut at `max_tokens`.

    Records are buffered up to ~_BATCH_CHARS so small documents still encode in
    parallel; chunks encode independently, so the ids are the same either way.
    """
    if tok.eos_id is None:
        raise DataError(f"tokenizer {tok.name} has no end-of-text token")
    dtype = token_dtype(tok)
    total = 0
    docs: list[list[str]] = []
    chars = 0

    def flush() -> Iterator[np.ndarray]:
        nonlocal total
        flat = tok.encode_batch([c for d in docs for c in d])
        pos = 0
        for d in docs:
            ids = [i for piece in flat[pos:pos + len(d)] for i in piece] + [tok.eos_id]
            pos += len(d)
            if max_tokens is not None and total + len(ids) >= max_tokens:
                yield np.asarray(ids[: max_tokens - total], dtype=dtype)
                total = max_tokens
                return
            total += len(ids)
            yield np.asarray(ids, dtype=dtype)

    for record in records:
        text = record.get(field) if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise DataError(f"record has no string field {field!r}")
        docs.append(list(_chunks(text)))
        chars += len(text)
        if chars >= _BATCH_CHARS:
            yield from flush()
            docs, chars = [], 0
            if max_tokens is not None and total >= max_tokens:
                return
    if docs:
        yield from flush()


def _tokenize(records: Iterable[dict[str, Any]], field: str, tok: TextTokenizer,
              max_tokens: int | None) -> np.ndarray:
    parts = list(iter_tokens(records, field, tok, max_tokens))
    if not parts:
        raise DataError("data source produced no documents")
    return np.concatenate(parts)


def load_tokens(cfg: DataConfig, tok: TextTokenizer | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The cached token array for `cfg` (memory-mapped), building it on first use."""
    tok = tok or get_tokenizer(cfg.tokenizer, cfg.cache_dir, cfg.vocab_size)
    ident, open_records, field = source_identity(cfg)
    key_src = {"v": FORMAT_VERSION, "source": ident, "tokenizer": tok.fingerprint, "max_tokens": cfg.max_tokens}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:24]
    npy = cfg.cache_dir / "pages" / f"tokens-{key}.npy"
    meta_path = npy.with_suffix(".json")
    if not (npy.is_file() and meta_path.is_file()):
        logger.info("tokenising {} with {}", cfg.source, tok.name)
        tokens = _tokenize(open_records(), field, tok, cfg.max_tokens)
        write_atomic(npy, lambda fh: np.save(fh, tokens, allow_pickle=False))
        meta = {"key": key, "source": cfg.source, "tokenizer": tok.name, "tokenizer_fingerprint": tok.fingerprint,
                "vocab_size": tok.vocab_size, "n_tokens": int(len(tokens)), "dtype": str(tokens.dtype),
                "sha256": sha256_file(npy)}
        write_bytes_atomic(meta_path, json.dumps(meta, sort_keys=True, indent=1).encode())  # written last
    meta = json.loads(meta_path.read_text())
    tokens = np.load(npy, mmap_mode="r", allow_pickle=False)
    if len(tokens) != meta["n_tokens"]:
        raise DataError(f"token cache {npy} is inconsistent with {meta_path}", remediation="delete both")
    return tokens, meta


def load_pages(cfg: DataConfig) -> TokenPages:
    """Pages for `cfg`: corpus/dataset -> tokenizer -> cached tokens -> TokenPages."""
    tokens, meta = load_tokens(cfg)
    return TokenPages(tokens, page_len=cfg.page_len, heldout_fraction=cfg.heldout_fraction, meta=meta)
