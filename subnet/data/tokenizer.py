"""Tokenizers behind one small interface: the embedded BPE, or a hub tokenizer.

The embedded tokenizer is a byte-level BPE trained with `tokenizers` on the
embedded corpus (a few seconds) and cached as `tokenizer/bpe-<vocab>.json`.
Training is deterministic for a given corpus and `tokenizers` version, and
every node caches the same file; `TextTokenizer.fingerprint` (sha256 of the
serialized tokenizer) is recorded with cached pages so a mismatch is caught.
Token 0 is `<|endoftext|>`, used between documents.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from subnet.atomic import write_bytes_atomic
from subnet.data.corpus import ensure_corpus
from subnet.errors import DataError

EOS = "<|endoftext|>"


class TextTokenizer:
    """encode/decode/vocab_size over either a `tokenizers.Tokenizer` or a transformers tokenizer."""

    def __init__(self, backend: Any, *, name: str, fingerprint: str, eos_id: int | None, vocab_size: int) -> None:
        self._backend = backend
        self.name = name
        self.fingerprint = fingerprint
        self.eos_id = eos_id
        self.vocab_size = vocab_size
        self._fast = hasattr(backend, "encode_batch")  # tokenizers.Tokenizer

    def encode(self, text: str) -> list[int]:
        if self._fast:
            return self._backend.encode(text).ids
        return list(self._backend.encode(text, add_special_tokens=False))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if self._fast:
            return [e.ids for e in self._backend.encode_batch(list(texts))]
        return [list(ids) for ids in self._backend(list(texts), add_special_tokens=False)["input_ids"]]

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if self._fast:
            return self._backend.decode(ids, skip_special_tokens=False)
        return self._backend.decode(ids)

    def __repr__(self) -> str:
        return f"TextTokenizer(name={self.name!r}, vocab_size={self.vocab_size}, fingerprint={self.fingerprint[:12]})"


def train_bpe(corpus: Path, vocab_size: int) -> bytes:
    """Train a byte-level BPE on `corpus`; returns its JSON serialisation."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([str(corpus)], trainer)
    if tok.get_vocab_size() != vocab_size:
        raise DataError(
            f"BPE reached only {tok.get_vocab_size()} tokens, not {vocab_size}",
            remediation="the corpus is too small for this vocab size",
        )
    return tok.to_str().encode("utf-8")


def load_tokenizer(cache_dir: str | Path, vocab_size: int = 8192) -> TextTokenizer:
    """The embedded BPE tokenizer of `vocab_size`, trained and cached on first use."""
    from tokenizers import Tokenizer

    cache_dir = Path(cache_dir).expanduser()
    path = cache_dir / "tokenizer" / f"bpe-{vocab_size}.json"
    if not path.is_file():
        corpus = ensure_corpus(cache_dir)
        logger.info("training byte-level BPE (vocab {}) on {}", vocab_size, corpus)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
        write_bytes_atomic(path, train_bpe(corpus, vocab_size))
    raw = path.read_bytes()
    try:
        backend = Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise DataError(f"cached tokenizer {path} is corrupt: {exc}", remediation=f"delete {path}") from exc
    return TextTokenizer(
        backend,
        name=f"embedded-bpe-{vocab_size}",
        fingerprint=hashlib.sha256(raw).hexdigest(),
        eos_id=backend.token_to_id(EOS),
        vocab_size=backend.get_vocab_size(),
    )


def load_hub_tokenizer(name: str) -> TextTokenizer:
    """A pretrained tokenizer by hub name or local directory (transformers AutoTokenizer)."""
    from transformers import AutoTokenizer

    try:
        backend = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load tokenizer {name!r}: {exc}") from exc
    vocab = backend.get_vocab()
    digest = hashlib.sha256(repr(sorted(vocab.items())).encode("utf-8")).hexdigest()
    return TextTokenizer(backend, name=name, fingerprint=digest, eos_id=backend.eos_token_id, vocab_size=len(backend))


def get_tokenizer(spec: str, cache_dir: str | Path, vocab_size: int = 8192) -> TextTokenizer:
    """'embedded' -> the cached BPE; anything else -> `load_hub_tokenizer(spec)`."""
    return load_tokenizer(cache_dir, vocab_size) if spec == "embedded" else load_hub_tokenizer(spec)
