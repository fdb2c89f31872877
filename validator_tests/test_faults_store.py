"""Artifact stores under injected faults: S3 over a misbehaving wire, and torn files on disk.

The S3 server is moto's standalone server (a separate process, the fixture
of test_storage_s3.py); between it and the real boto3 client sits
harness.faultproxy, which refuses, hangs, delays, resets or truncates
connections. The contract under test (subnet/storage/base.py): `get` returns
the exact bytes, or None ("absent"), or raises StorageError after bounded
retries with backoff; it never returns a partial object and never raises
anything else. A real signed artifact is used so "partial" would also be
caught by read_artifact.
"""

from __future__ import annotations

import time

import pytest
import torch
from bittensor.sp_core import Keypair
from harness.faultproxy import Fault, FaultProxy
from test_storage_s3 import _aws_env, moto_endpoint  # noqa: F401 - fixtures reused, not copied

from subnet.codec import ArtifactError, ArtifactHeader, CodecConfig, Encoder, Truncated, read_artifact, write_artifact
from subnet.codec.errors import Malformed
from subnet.errors import StorageError
from subnet.storage import LocalDirStore
from subnet.storage.s3 import S3Options, S3Store

torch.set_num_threads(1)

SHAPES = {"w": (64, 96), "b": (96,)}
CFG = CodecConfig(chunk=512, topk=32, value_bits=2)
KP = Keypair.create_from_uri("//StoreFaults")
KEY = "7/42/hk.1.safetensors"
OPTS = S3Options(connect_timeout_s=0.5, read_timeout_s=0.6, botocore_attempts=1, attempts=3, backoff_base_s=0.1,
                 backoff_max_s=0.2)


def _artifact(seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    enc = Encoder(SHAPES, CFG).encode({n: torch.randn(s, generator=g) for n, s in SHAPES.items()})
    header = ArtifactHeader(netuid=7, window=42, uid=1, hotkey=KP.ss58_address, fragment=1, base_version=0)
    return write_artifact(enc, header, KP)


ART = _artifact()


def _read(data: bytes):
    return read_artifact(data, expected_hotkey=KP.ss58_address, max_bytes=1 << 20, shapes=SHAPES, codec=CFG)


@pytest.fixture(scope="module")
def seeded(moto_endpoint: str) -> str:  # noqa: F811
    """A bucket holding ART, written directly (not through the proxy)."""
    with pytest.MonkeyPatch.context() as mp:  # module scope runs before the per-test _aws_env
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        direct = S3Store(bucket="faults", prefix="m", endpoint_url=moto_endpoint)
        direct.create_bucket()
        direct.put(KEY, ART)
        assert direct.get(KEY, max_bytes=1 << 20) == ART
    return moto_endpoint


@pytest.fixture
def proxy(seeded: str):
    port = int(seeded.rsplit(":", 1)[1])
    with FaultProxy("127.0.0.1", port) as p:
        yield p


def _store(proxy: FaultProxy, opts: S3Options = OPTS) -> S3Store:
    """A fresh client (fresh connection pool) through the proxy."""
    return S3Store(bucket="faults", prefix="m", endpoint_url=f"http://127.0.0.1:{proxy.port}", options=opts)


def test_pass_through_proxy_round_trip(proxy: FaultProxy) -> None:
    data = _store(proxy).get(KEY, max_bytes=1 << 20)
    assert data == ART and _read(data).header.uid == 1
    assert proxy.connections >= 1


@pytest.mark.parametrize("fault", [Fault(kind="refuse"), Fault(kind="reset_after", after_bytes=100),
                                   Fault(kind="truncate_after", after_bytes=len(ART) // 2), Fault(kind="blackhole")],
                         ids=lambda f: f.kind)
def test_transient_fault_recovers_by_retry(proxy: FaultProxy, fault: Fault) -> None:
    proxy.schedule(fault)  # only the first connection misbehaves
    t0 = time.monotonic()
    data = _store(proxy).get(KEY, max_bytes=1 << 20)
    assert data == ART, "a retried get must return the exact object"
    assert proxy.connections >= 2 and proxy.faults_applied[0] == fault.kind
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("fault", [Fault(kind="refuse"), Fault(kind="blackhole")], ids=lambda f: f.kind)
def test_persistent_transport_fault_is_storage_error_after_backoff(proxy: FaultProxy, fault: Fault) -> None:
    proxy.set_default(fault)
    s = _store(proxy)
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="after 3 attempts") as info:
        s.get(KEY, max_bytes=1 << 20)
    elapsed = time.monotonic() - t0
    assert "hint:" in str(info.value)  # says what to check
    assert elapsed >= OPTS.backoff_base_s * (1 + 2)  # two backoff sleeps
    assert elapsed < 3 * (OPTS.read_timeout_s + OPTS.connect_timeout_s) + 2 * OPTS.backoff_max_s * 1.5 + 2
    assert proxy.connections >= 3
    if fault.kind == "refuse":  # writes give up the same way (a blackholed PUT is just slower)
        with pytest.raises(StorageError):
            s.put("7/42/other.0.safetensors", b"x")


def test_slow_but_within_timeout_succeeds_over_timeout_fails(proxy: FaultProxy) -> None:
    proxy.set_default(Fault(kind="delay", delay_s=0.2))
    assert _store(proxy).get(KEY, max_bytes=1 << 20) == ART
    proxy.set_default(Fault(kind="delay", delay_s=1.5))
    with pytest.raises(StorageError):
        _store(proxy).get(KEY, max_bytes=1 << 20)


ONE_TRY = S3Options(**{**OPTS.__dict__, "attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.01})


def _response_size(proxy: FaultProxy) -> int:
    """Bytes of one whole GET response (status line + headers + body) as it crosses the proxy."""
    before = proxy.bytes_down
    assert _store(proxy, ONE_TRY).get(KEY, max_bytes=1 << 20) == ART
    return proxy.bytes_down - before


def _outcome(proxy: FaultProxy, fault: Fault) -> str:
    proxy.set_default(fault)
    try:
        data = _store(proxy, ONE_TRY).get(KEY, max_bytes=1 << 20)
    except StorageError:
        return "StorageError"
    except Exception as e:  # noqa: BLE001 - outside the documented contract
        return f"raised {type(e).__name__}: {str(e)[:60]}"
    if data is None:
        return "absent"
    return "whole" if data == ART else f"PARTIAL object of {len(data)} bytes"


@pytest.mark.parametrize("kind", ["reset_after", "truncate_after"])
def test_body_cut_on_every_attempt_is_absent_never_partial(proxy: FaultProxy, kind: str) -> None:
    total = _response_size(proxy)
    body_at = total - len(ART)
    got = {cut: _outcome(proxy, Fault(kind=kind, after_bytes=cut))
           for cut in (body_at, body_at + 1, body_at + len(ART) // 2, total - 1)}
    assert set(got.values()) == {"absent"}, got
    proxy.set_default(Fault(kind=kind, after_bytes=total + 10))  # past the end: nothing is cut
    assert _store(proxy, ONE_TRY).get(KEY, max_bytes=1 << 20) == ART


def test_headers_cut_anywhere_is_storage_error_or_absent(proxy: FaultProxy) -> None:
    """A response cut inside its header block must not become an object or an untyped exception.

    Fails today (see the report / docs/RELIABILITY.md): http.client treats EOF in
    the header block as its end, so a cut before Content-Length reads as a
    complete empty body and S3Store.get returns b""; a cut inside Last-Modified
    makes botocore raise ValueError, which escapes S3Store.get.
    """
    body_at = _response_size(proxy) - len(ART)
    got = {cut: _outcome(proxy, Fault(kind="truncate_after", after_bytes=cut)) for cut in range(0, body_at, 12)}
    bad = {cut: o for cut, o in got.items() if o not in ("StorageError", "absent")}
    assert not bad, f"{len(bad)}/{len(got)} header cut points broke the get contract: {bad}"


def test_put_reset_before_reply_is_retried_and_complete(proxy: FaultProxy) -> None:
    other = _artifact(seed=1)
    proxy.schedule(Fault(kind="reset_after", after_bytes=0))  # request reaches moto, reply is lost
    s = _store(proxy)
    s.put("7/43/hk.1.safetensors", other)
    assert s.get("7/43/hk.1.safetensors", max_bytes=1 << 20) == other
    assert proxy.faults_applied[0] == "reset_after" and proxy.connections >= 2


# -- LocalDirStore: a file torn on disk (by another writer, a disk error, a copy cut short) --------------


def test_truncated_file_on_disk_refused_with_typed_error(tmp_path) -> None:
    store = LocalDirStore(tmp_path / "store")
    store.put(KEY, ART)
    path = store.root / KEY
    assert _read(store.get(KEY, max_bytes=1 << 20)).header.window == 42
    kinds: dict[str, int] = {}
    for cut in range(0, len(ART), 7):
        path.write_bytes(ART[:cut])  # a torn file in place (not via put, which is atomic)
        data = store.get(KEY, max_bytes=1 << 20)
        assert data == ART[:cut]
        with pytest.raises(ArtifactError) as info:
            _read(data)
        assert isinstance(info.value, (Truncated, Malformed))
        kinds[type(info.value).__name__] = kinds.get(type(info.value).__name__, 0) + 1
    assert kinds.get("Truncated", 0) > 0
