"""Shard data path: build from the embedded corpus, serve from a real S3 server (moto), read anonymously.

The pages a miner trains on and a validator scores on, for the same window
seeds, must be byte-identical (by sha256) whether they come from the local
token array or from the shard store; a corrupted, truncated or missing shard
and a manifest that is not the pinned one are refused with typed errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
import torch
from test_storage_s3 import _aws_env, moto_endpoint  # noqa: F401 - fixtures reused, not copied

from subnet.data.build import build_shards
from subnet.data.cache import CacheLimits, ShardCache
from subnet.data.config import DataConfig, default_cache_dir
from subnet.data.errors import (
    ManifestError,
    ManifestMismatch,
    ShardCorrupt,
    ShardMissing,
    ShardUnavailable,
)
from subnet.data.manifest import LATEST_KEY, ShardManifest, manifest_key, shard_key
from subnet.data.pages import TokenPages
from subnet.data.shards import ShardPages, load_manifest
from subnet.data.source import PageSource
from subnet.data.split import heldout_exposure, min_heldout_pages, split_sizes
from subnet.errors import ConfigError, DataError
from subnet.miner.distributed import shard_batches as _cycle_batches
from subnet.node.config import DataFlags
from subnet.node.peerstores import PeerStores
from subnet.node.runtime import load_data
from subnet.protocol import _prng
from subnet.protocol.assignment import AssignmentParams, assign_all, heldout_pages, random_pages
from subnet.storage import LocationPolicy, open_store
from subnet.validator.loop import CONTROL_UID
from subnet.validator.scoring import page_batches

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "tessera-shards"
PREFIX = "owner/v1"
torch.set_num_threads(1)


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().astype(np.int64).tobytes()).hexdigest()


def _owner_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def local() -> TokenPages:
    """Today's path: the node tokenizes the embedded corpus itself (shared cache)."""
    return load_data("tiny")


@pytest.fixture(scope="module")
def built(moto_endpoint: str) -> tuple[str, ShardManifest]:  # noqa: F811
    """The subnet owner's build into a bucket that allows anonymous reads; (public location, manifest)."""
    location = f"s3://{BUCKET}/{PREFIX}?endpoint={moto_endpoint}&region=us-east-1"
    with pytest.MonkeyPatch.context() as mp:  # module scope runs before the per-test _aws_env
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        store = open_store(location)
        store.create_bucket()  # type: ignore[attr-defined]
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{BUCKET}/*"]}]}
        _owner_client(moto_endpoint).put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
        res = build_shards(DataConfig(vocab_size=2048, cache_dir=default_cache_dir()), store, pages_per_shard=256)
    assert res.uploaded == len(res.manifest.train_shards) + len(res.manifest.heldout_shards) and res.skipped == 0
    return location, res.manifest


def _node(location: str, sha: str, cache: Path, preset: str = "tiny", **kw) -> ShardPages:
    """What NodeRuntime.build does on the devnet: load_data with the node's flags and peer-store policy."""
    flags = DataFlags(shards=location, manifest_sha256=sha, **kw)
    pages = load_data(preset, cache_dir=str(cache), flags=flags, readers=PeerStores(LocationPolicy.devnet()))
    assert isinstance(pages, ShardPages)
    return pages


def _seed(w: int) -> int:
    return _prng.hash64("test-window", w)


def test_both_backends_are_page_sources(local: TokenPages, built, tmp_path: Path) -> None:
    location, manifest = built
    sp = _node(location, manifest.sha256, tmp_path)
    assert isinstance(local, PageSource) and isinstance(sp, PageSource)
    assert (sp.n_train, sp.n_heldout, sp.page_len, sp.vocab_size) == (local.n_train, local.n_heldout, 129, 2048)
    assert manifest.n_tokens == local.meta["n_tokens"]
    local.prefetch([0, 1], "train")  # the local array has nothing to fetch
    for split, n in (("train", sp.n_train), ("heldout", sp.n_heldout)):  # every page of both splits, bit for bit
        assert torch.equal(sp.batch(list(range(n)), split), local.batch(list(range(n)), split))


def test_miner_and_validator_pages_match_local_array(local: TokenPages, built, tmp_path: Path) -> None:
    location, manifest = built
    miner = _node(location, manifest.sha256, tmp_path / "miner")
    validator = _node(location, manifest.sha256, tmp_path / "validator")
    p = AssignmentParams(n_fragments=2, pages_per_miner=16, n_train_pages=miner.n_train,
                         n_heldout_pages=miner.n_heldout, heldout_per_window=16)
    checked = 0
    needed: set[str] = set()
    for w in range(3):
        seed, seed_next = _seed(w), _seed(w + 1)
        assignments = assign_all(seed, range(6), p)
        for uid, a in assignments.items():  # the miner's inner-loop batches, as MinerLoop._train draws them
            miner.prefetch(a.pages, "train")
            needed |= miner.shards_for(a.pages, "train")
            got = [_digest(b) for b in _cycle_batches(miner, a.pages, 8, 4)]
            want = [_digest(b) for b in _cycle_batches(local, a.pages, 8, 4)]
            assert got == want, f"window {w} uid {uid}"
            checked += len(got)
        held = heldout_pages(seed_next, p)  # the validator's sets, as ValidatorLoop.score_window draws them
        assigned = {pg for a in assignments.values() for pg in a.pages}
        control = random_pages(seed_next, CONTROL_UID, p, 16, exclude=assigned)
        for idx, split in ((held, "heldout"), (control, "train"), (assignments[3].pages, "train")):
            got = [_digest(b) for b in page_batches(validator, idx, split, 8, 2)]
            assert got == [_digest(b) for b in page_batches(local, idx, split, 8, 2)]
            checked += len(got)
    assert checked == 3 * (6 * 4 + 3 * 2)
    # only the shards holding those pages were fetched, each once (then served from the cache)
    stats = miner.stats()
    assert stats.errors == 0 and stats.fetches == len(needed) == len(list(miner.cache.root.glob("*.tok")))
    assert stats.fetched_bytes == sum(f.stat().st_size for f in miner.cache.root.glob("*.tok"))
    fetched_before = validator.stats().fetches
    again = validator.batch(list(held), "heldout")
    assert validator.stats().fetches == fetched_before and again.shape == (16, 129)


def test_restart_reads_the_disk_cache_without_the_store(built, tmp_path: Path) -> None:
    location, manifest = built
    first = _node(location, manifest.sha256, tmp_path)
    want = first.batch([0, 5000, 9000], "train")
    # a restarted node: same cache dir, store unreachable -> the manifest and shards come from the cache
    dead = f"s3://{BUCKET}/{PREFIX}?endpoint=http://127.0.0.1:9&region=us-east-1"
    second = _node(dead, manifest.sha256, tmp_path)
    assert torch.equal(second.batch([0, 5000, 9000], "train"), want) and second.stats().fetches == 0
    with pytest.raises(ShardUnavailable):  # a shard it never had is a typed error, not a crash
        second.batch([13000], "train")


def test_corrupt_truncated_and_missing_shards_are_refused(built, moto_endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    location, manifest = built
    client = _owner_client(moto_endpoint)
    sha = manifest.train_shards[1]  # pages 256..511
    key = f"{PREFIX}/{shard_key(sha)}"
    good = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    flipped = bytearray(good)
    flipped[100] ^= 1
    try:
        for n, (body, error) in enumerate(((bytes(flipped), ShardCorrupt), (good[:-2], ShardCorrupt),
                                            (good + b"xx", ShardMissing), (None, ShardMissing))):
            if body is None:
                client.delete_object(Bucket=BUCKET, Key=key)
            else:
                client.put_object(Bucket=BUCKET, Key=key, Body=body)
            node = _node(location, manifest.sha256, tmp_path / f"n{n}")
            node.prefetch([300], "train")  # a failing prefetch never raises; the batch that needs it does
            with pytest.raises(error) as exc:
                node.batch([10, 300], "train")
            assert sha[:12] in str(exc.value) and isinstance(exc.value, DataError)
            assert node.batch([10, 600], "train").shape == (2, 129)  # other page sets are unaffected
            assert not (node.cache.root / f"{sha}.tok").exists()  # nothing unverified is cached
    finally:
        client.put_object(Bucket=BUCKET, Key=key, Body=good)
    assert node.batch([300], "train").shape == (1, 129)  # the store is right again: the next try succeeds


def test_manifest_pin_is_enforced(built, moto_endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    location, manifest = built
    client = _owner_client(moto_endpoint)
    fake = hashlib.sha256(b"not the manifest").hexdigest()
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{manifest_key(fake)}", Body=manifest.to_bytes())
    with pytest.raises(ManifestMismatch):  # bytes under the pinned name that hash to something else
        _node(location, fake, tmp_path / "a")
    with pytest.raises(ManifestError):  # a pin the store does not have
        _node(location, hashlib.sha256(b"absent").hexdigest(), tmp_path / "b")
    with pytest.raises(ManifestMismatch):  # the small preset's vocab is 8192, the shards were made for 2048
        _node(location, manifest.sha256, tmp_path / "c", preset="small")
    with pytest.raises(ConfigError):
        load_data("tiny", flags=DataFlags(shards=location), readers=PeerStores(LocationPolicy.devnet()))
    with pytest.raises(ConfigError):
        _node(location, "ABC", tmp_path / "d")
    with pytest.raises(ConfigError):  # a real network's policy refuses a plain-http loopback endpoint
        load_data("tiny", flags=DataFlags(shards=location, manifest_sha256=manifest.sha256),
                  readers=PeerStores(LocationPolicy.network()))
    # a locally cached manifest that was tampered with is fetched again, not trusted
    node = _node(location, manifest.sha256, tmp_path / "e")
    cached = tmp_path / "e" / "shard-manifests" / f"{manifest.sha256}.json"
    cached.write_bytes(b"{}")
    assert load_manifest(node.reader, manifest.sha256, cached.parent) == manifest
    latest = client.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{LATEST_KEY}")["Body"].read()
    assert hashlib.sha256(latest).hexdigest() == manifest.sha256


def test_manifest_format_is_canonical_and_validated(built) -> None:
    _, manifest = built
    data = manifest.to_bytes()
    assert ShardManifest.from_bytes(data) == manifest and ShardManifest.from_bytes(data).sha256 == manifest.sha256
    raw = json.loads(data)
    assert raw["source"] == {"embedded": raw["source"]["embedded"], "max_tokens": None}
    assert (raw["n_train"], raw["n_heldout"]) == split_sizes(raw["n_train"] + raw["n_heldout"], 0.05)
    for bad in (json.dumps(raw, indent=1).encode(),  # not canonical
                json.dumps({**raw, "n_heldout": raw["n_heldout"] + 1}, sort_keys=True, separators=(",", ":")).encode(),
                json.dumps({**raw, "train_shards": raw["train_shards"][:-1]}, sort_keys=True,
                           separators=(",", ":")).encode(),
                json.dumps({**raw, "dtype": "float32"}, sort_keys=True, separators=(",", ":")).encode(),
                b"\xff", b"[]"):
        with pytest.raises(ManifestError):
            ShardManifest.from_bytes(bad)
    assert manifest.locate("train", 257) == (1, 1) and manifest.locate("heldout", 0) == (0, 0)
    for split, i in (("train", manifest.n_train), ("heldout", -1), ("test", 0), ("train", 1.5)):
        with pytest.raises(DataError):
            manifest.locate(split, i)


def test_cache_is_bounded_and_rechecks_disk(tmp_path: Path) -> None:
    blobs = [bytes([i]) * 1000 for i in range(10)]
    shas = [hashlib.sha256(b).hexdigest() for b in blobs]
    cache = ShardCache(tmp_path, CacheLimits(memory_bytes=2500, disk_bytes=3500))
    for sha, blob in zip(shas, blobs):
        cache.put(sha, blob)
    on_disk = list(tmp_path.glob("*.tok"))
    assert sum(p.stat().st_size for p in on_disk) <= 3500 and f"{shas[-1]}.tok" in {p.name for p in on_disk}
    assert cache.stats().memory_bytes <= 2500 and cache.get_memory(shas[0]) is None
    assert cache.get(shas[-1]) == blobs[-1]
    # a shard corrupted on disk is deleted and reported as a miss (fetched again), never returned
    fresh = ShardCache(tmp_path, CacheLimits(memory_bytes=0, disk_bytes=3500))
    (tmp_path / f"{shas[-1]}.tok").write_bytes(b"x" * 1000)
    assert fresh.get(shas[-1]) is None and not (tmp_path / f"{shas[-1]}.tok").exists()
    with pytest.raises(ConfigError):
        CacheLimits(memory_bytes=-1)


def test_heldout_bound() -> None:
    assert min_heldout_pages(10, 8) == 8000 and min_heldout_pages(30, 64) == 192_000
    n_pages = 10**9 // 129
    assert heldout_exposure(split_sizes(n_pages, 0.05)[1], 30, 64) < 0.01  # a 10^9-token dataset meets it
    assert heldout_exposure(722, 10, 8) > 0.01  # the embedded demo corpus does not


def test_cli_build_to_a_directory(tmp_path: Path) -> None:
    """`tessera data build` (flags and env vars from ShardBuildConfig) into a local directory store."""
    out = tmp_path / "store"
    env = {**os.environ, "TESSERA_DATA_OUT": str(out), "TESSERA_DATA_PAGES_PER_SHARD": "64"}
    cmd = [sys.executable, "-m", "subnet.cli", "data", "build", "--data.max_tokens", "60000"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, env=env, check=True)
    sha = next(line.split("=", 1)[1] for line in res.stdout.splitlines() if line.startswith("manifest_sha256="))
    manifest = ShardManifest.from_bytes((out / manifest_key(sha)).read_bytes())
    assert manifest.n_tokens == 60000 and manifest.pages_per_shard == 64 and "TOO SMALL" in res.stdout
    pages = _node(out.as_uri(), sha, tmp_path / "cache")
    tokens = np.concatenate([np.frombuffer((out / shard_key(h)).read_bytes(), "<u2")
                             for h in manifest.train_shards + manifest.heldout_shards])
    assert np.array_equal(pages.batch([0, 1], "train").numpy().ravel(), tokens[: 2 * 129])
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, env=env, check=True)
    assert f"manifest_sha256={sha}" in again.stdout and "0 shards written" in again.stdout  # same data, same hash


@pytest.mark.slow
def test_a_miner_runtime_on_the_devnet_takes_its_pages_from_the_shards(built, tmp_path: Path) -> None:
    """The neuron's own path: flags -> NodeRuntime.build -> load_data -> ShardPages (no corpus, no tokenizer)."""
    from harness.devnet import bootstrap, running_devnet

    from subnet.config import parse_config
    from subnet.node.config import MinerNeuronConfig
    from subnet.node.runtime import NodeRuntime

    location, manifest = built
    with running_devnet(tmp_path, block_ms=0) as devnet:
        boot = bootstrap(devnet, tmp_path / "wallets", miners=1)
        cfg = parse_config(MinerNeuronConfig, [
            "--netuid", str(boot.netuid), "--wallet.name", boot.miners[0].wallet, "--wallet.path",
            str(tmp_path / "wallets"), "--subtensor.network", devnet.network, "--store.location",
            str(tmp_path / "store"), "--state_dir", str(tmp_path / "state"), "--data.cache_dir", str(tmp_path / "c"),
            "--data.shards", location, "--data.manifest_sha256", manifest.sha256], env={})
        rt = NodeRuntime.build(cfg, "miner")
    assert isinstance(rt.pages, ShardPages) and rt.pages.fingerprint == manifest.sha256
    assert (rt.assignment_params.n_train_pages, rt.assignment_params.n_heldout_pages) == (manifest.n_train,
                                                                                        manifest.n_heldout)
    assert rt.pages.batch([0], "train").shape == (1, 129) and not (tmp_path / "c" / "corpus").exists()


def test_an_instant_store_under_cache_churn_serves_exact_pages(tmp_path: Path) -> None:
    """Fetches that finish before their future is registered, evictions between prefetch and use: no hang, no drift."""
    import threading
    from concurrent.futures import Executor, Future

    from subnet.data.manifest import TokenizerIdentity
    from subnet.storage import LocalDirStore, open_peer

    L, pps, n_pages = 33, 4, 40
    tokens = np.random.default_rng(0).integers(0, 2048, size=n_pages * L + 7, dtype=np.uint16)
    n_train, n_heldout = split_sizes(n_pages, 0.05)
    store = LocalDirStore(tmp_path / "store")
    rows = tokens[: n_pages * L].reshape(n_pages, L)
    hashes: dict[str, list[str]] = {"train": [], "heldout": []}
    for split, start, count in (("train", 0, n_train), ("heldout", n_train, n_heldout)):
        for a in range(start, start + count, pps):
            data = rows[a:min(a + pps, start + count)].astype("<u2").tobytes()
            hashes[split].append(hashlib.sha256(data).hexdigest())
            store.put(shard_key(hashes[split][-1]), data)
    manifest = ShardManifest(source={"test": 1}, tokenizer=TokenizerIdentity(name="t", fingerprint="f", vocab_size=2048,
                                                                              eos_id=0),
                             dtype="uint16", page_len=L, pages_per_shard=pps, heldout_fraction=0.05,
                             n_tokens=len(tokens), n_train=n_train, n_heldout=n_heldout,
                             train_shards=tuple(hashes["train"]), heldout_shards=tuple(hashes["heldout"]))
    store.put(manifest_key(manifest.sha256), manifest.to_bytes())
    reader = open_peer((tmp_path / "store").as_uri(), LocationPolicy.devnet())
    cache = ShardCache(tmp_path / "cache", CacheLimits(memory_bytes=3 * pps * L * 2, disk_bytes=0))
    pages = ShardPages(load_manifest(reader, manifest.sha256), reader, cache, workers=4)
    rng = np.random.default_rng(1)
    failures: list[BaseException] = []

    class Inline(Executor):  # a download that is over before submit() returns (a fast local disk can do this)
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
            fut: Future = Future()
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001
                fut.set_exception(exc)
            return fut

    pool, pages._pool = pages._pool, Inline()
    inline = threading.Thread(target=lambda: pages.batch([0, 9], "train"), daemon=True)
    inline.start()
    inline.join(timeout=20)
    assert not inline.is_alive(), "a download finished before its callback was registered: ShardPages hung"
    pages._pool = pool

    def churn() -> None:
        try:
            for _ in range(300):
                idx = [int(i) for i in rng.integers(0, n_train, size=6)]
                pages.prefetch(idx, "train")
                assert np.array_equal(pages.batch(idx, "train").numpy(), rows[idx])
                assert np.array_equal(pages.batch([1], "heldout").numpy(), rows[[n_train + 1]])
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "ShardPages hung"
    assert not failures, failures
    assert pages.stats().fetches > len(hashes["train"])  # the 3-shard memory bound really forced refetches
    pages.close()
    pages.cache.clear_memory()
    with pytest.raises(ShardUnavailable, match="closed"):  # a closed reader refuses, it does not hang
        pages.batch([0], "train")
