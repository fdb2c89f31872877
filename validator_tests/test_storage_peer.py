"""Reading peers' stores (subnet/storage/peer.py) against real hostile servers and a real S3 server.

Every server is real: raw-socket HTTP servers on 127.0.0.1 (harness.hostile_http)
that trickle, hang, lie about sizes, redirect, fail or record what they were
sent, and moto's S3 server (the fixture of test_storage_s3.py) for anonymous
GET/HEAD/ListObjectsV2. Each hostile case must fail within its wall-clock
deadline (+ slack for a shared CPU) with the right PeerStoreError subclass; no
request may carry this node's credentials; the file:// reader must refuse
FIFOs, symlinks and links out of the store without hanging or creating
anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import time
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

import pytest
from harness.hostile_http import HUGE_LENGTH, HostileServer, self_signed
from test_storage_s3 import _aws_env, moto_endpoint  # noqa: F401 - fixtures reused, not copied

import subnet.storage.peer as peer_mod
from subnet.node.peerstores import PeerStores, StoreRefusal
from subnet.storage import open_store
from subnet.storage.config import StoreConfig
from subnet.storage.location import LocationPolicy
from subnet.storage.peer import (
    LocalPeerReader,
    PeerObject,
    PeerReader,
    PeerReadOptions,
    PeerRefused,
    PeerStoreError,
    PeerTimeout,
    PeerTooLarge,
    PeerUnreachable,
    open_peer,
)

DEVNET = LocationPolicy.devnet()
NETWORK = LocationPolicy.network()
PRIVATE = LocationPolicy.network(allow_private_endpoints=True)
FAST = PeerReadOptions(request_timeout_s=1.0, attempts=2, backoff_s=0.05, backoff_max_s=0.1)
SLACK_S = 1.0  # a shared 2-core machine: scheduling, thread start-up
KEY = "1/5/hk.0.safetensors"


def _reader(url: str, *, policy: LocationPolicy = DEVNET, options: PeerReadOptions = FAST,
            query: str = "", resolver=None) -> PeerReader:  # noqa: ANN001
    return open_peer(f"s3://bkt/pre?endpoint={url}{query}", policy, options, resolver=resolver)


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    t0 = time.monotonic()
    try:
        out: object = fn()
    except PeerStoreError as e:
        out = e
    return out, time.monotonic() - t0


def _fixed(*ips: str) -> Callable[[str, int], list]:
    calls: list[str] = []

    def resolve(host: str, port: int) -> list:
        calls.append(host)
        return [ip_address(i) for i in ips]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


# --------------------------------------------------------------------------- a sane store


def test_normal_object_get_head_and_absent() -> None:
    with HostileServer("object", objects={f"/bkt/pre/{KEY}": b"payload"}) as srv:
        r = _reader(srv.url)
        obj = r.fetch(KEY, 100)
        assert isinstance(obj, PeerObject) and obj.data == b"payload"
        assert obj.sha256 == hashlib.sha256(b"payload").hexdigest()
        assert obj.etag == "abc123" and obj.modified == 1_700_000_000
        assert r.get(KEY, 100) == b"payload"
        st = r.stat(KEY)
        assert st is not None and st.size == 7 and st.modified == 1_700_000_000
        assert r.modified(KEY) == 1_700_000_000 and r.exists(KEY)
        assert r.fetch("1/5/other", 100) is None and r.get("1/5/other", 100) is None and not r.exists("1/5/other")
        assert [q.method for q in srv.requests] == ["GET", "GET", "HEAD", "HEAD", "HEAD", "GET", "GET", "HEAD"]
        assert all(q.path.startswith("/bkt/pre/") for q in srv.requests)


def test_virtual_hosted_style_connects_to_the_resolved_ip_with_the_name_as_host() -> None:
    with HostileServer("object", objects={f"/pre/{KEY}": b"v"}) as srv:
        resolve = _fixed("127.0.0.1")
        r = _reader(f"http://store.test:{srv.port}", policy=PRIVATE, query="&addressing=virtual", resolver=resolve)
        assert r.get(KEY, 10) == b"v"
        assert srv.requests[0].headers["host"] == f"bkt.store.test:{srv.port}"
        assert resolve.calls == ["bkt.store.test"]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- slow and silent peers


@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body", "blackhole"])
def test_slow_or_silent_server_fails_at_the_deadline(mode: str) -> None:
    with HostileServer(mode, interval_s=0.1, size=500) as srv:
        out, elapsed = _timed(lambda: _reader(srv.url).fetch(KEY, 1000))
        assert isinstance(out, PeerTimeout), out
        assert FAST.request_timeout_s - 0.05 <= elapsed < FAST.request_timeout_s + SLACK_S
        assert elapsed <= FAST.worst_case_s(1000)
        assert srv.connections == 1  # a timeout is the peer's answer: not retried
        assert "peer store s3://bkt/pre" in str(out)


def test_blackholed_head_and_list_fail_at_the_deadline() -> None:
    with HostileServer("blackhole") as srv:
        r = _reader(srv.url)
        for call in (lambda: r.stat(KEY), lambda: r.modified(KEY), lambda: r.list("1/")):
            out, elapsed = _timed(call)
            assert isinstance(out, PeerTimeout) and elapsed < FAST.request_timeout_s + SLACK_S


def test_a_whole_listing_costs_at_most_one_reads_budget() -> None:
    opts = PeerReadOptions(request_timeout_s=1.0, attempts=2, backoff_s=0.05, list_max_pages=1000,
                           list_page_bytes=64 * 1024)
    with HostileServer("endless_listing", interval_s=0.3) as srv:
        r = _reader(srv.url, options=opts)
        out, elapsed = _timed(lambda: r.list("k"))
        assert isinstance(out, PeerTimeout), out
        assert srv.connections >= 2  # several pages were read, each well inside its own deadline
        assert elapsed < opts.worst_case_s(opts.list_page_bytes) + SLACK_S
    with HostileServer("endless_listing", interval_s=0.0) as srv:
        quick = PeerReadOptions(list_max_pages=3)
        with pytest.raises(PeerRefused, match="longer than 3 pages"):
            _reader(srv.url, options=quick).list("")
        assert srv.connections == 3


def _listing(*keys: str) -> bytes:
    contents = "".join(f"<Contents><Key>{k}</Key></Contents>" for k in keys)
    return (f'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{contents}'
            f"<IsTruncated>false</IsTruncated></ListBucketResult>").encode()


def test_listed_keys_are_validated_and_hostile_xml_refused() -> None:
    body = _listing("pre/1/ok", "pre/../../etc/passwd", "pre/.hidden", "pre/a//b", "other/x", "pre/2/fine")
    with HostileServer("object", objects={"/bkt": body}) as srv:
        assert _reader(srv.url).list("") == ["1/ok", "2/fine"]
    dtd = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><ListBucketResult>&a;</ListBucketResult>'
    for bad in (dtd, b"<not-xml", b"<Error><Code>AccessDenied</Code></Error>",
                _listing("pre/x").replace(b"false", b"true")):  # truncated without a continuation token
        with HostileServer("object", objects={"/bkt": bad}) as srv:
            with pytest.raises(PeerRefused):
                _reader(srv.url).list("")


def test_explicit_timeout_overrides_the_default() -> None:
    with HostileServer("blackhole") as srv:
        out, elapsed = _timed(lambda: _reader(srv.url).fetch(KEY, 10, timeout_s=0.3))
        assert isinstance(out, PeerTimeout) and elapsed < 0.3 + SLACK_S


def test_tls_handshake_to_a_silent_server_fails_at_the_deadline() -> None:
    with HostileServer("blackhole") as srv:
        out, elapsed = _timed(lambda: _reader(f"https://127.0.0.1:{srv.port}", policy=PRIVATE).fetch(KEY, 10))
        assert isinstance(out, PeerTimeout) and elapsed < FAST.request_timeout_s + SLACK_S


def test_hung_resolver_fails_at_the_deadline() -> None:
    def slow(host: str, port: int) -> list:
        time.sleep(3)
        return [ip_address("127.0.0.1")]

    out, elapsed = _timed(lambda: _reader("http://slow.test:9", policy=PRIVATE, resolver=slow).fetch(KEY, 10))
    assert isinstance(out, PeerTimeout) and elapsed < FAST.request_timeout_s + SLACK_S


def test_worst_case_with_the_defaults_is_stated() -> None:
    opts = PeerReadOptions()
    assert opts.worst_case_s(64 * 1024 * 1024) == pytest.approx(2 * (10 + 16) + 0.75)
    assert opts.worst_case_s(0) == pytest.approx(20.75)
    assert "52.75" in (peer_mod.__doc__ or "")


# --------------------------------------------------------------------------- sizes


def test_content_length_over_the_limit_is_refused_without_reading() -> None:
    with HostileServer("huge", interval_s=0.5) as srv:
        r = _reader(srv.url)
        out, elapsed = _timed(lambda: r.fetch(KEY, 64 * 1024 * 1024))
        assert isinstance(out, PeerTooLarge) and str(HUGE_LENGTH) in str(out)
        assert elapsed < 0.5  # the body drips at 2 bytes/s: not one was waited for
        assert r.get(KEY, 1000) is None  # the ArtifactStore contract: over the limit reads as absent


def test_body_without_length_is_read_only_to_the_limit() -> None:
    with HostileServer("no_length", size=5000) as srv:
        out, _ = _timed(lambda: _reader(srv.url).fetch(KEY, 1000))
        assert isinstance(out, PeerTooLarge)
        obj = _reader(srv.url).fetch(KEY, 5000)
        assert obj is not None and obj.data == b"n" * 5000


def test_cut_body_is_retried_then_unreachable() -> None:
    with HostileServer("short", size=100) as srv:
        out, elapsed = _timed(lambda: _reader(srv.url).fetch(KEY, 1000))
        assert isinstance(out, PeerUnreachable) and "after 2 attempts" in str(out)
        assert srv.connections == FAST.attempts and elapsed < 1.0


# --------------------------------------------------------------------------- statuses and redirects


def test_redirect_is_refused_and_never_followed() -> None:
    with HostileServer("record") as target, HostileServer("redirect", target=f"{target.url}/steal") as srv:
        out, _ = _timed(lambda: _reader(srv.url).fetch(KEY, 1000))
        assert isinstance(out, PeerRefused) and "redirect" in str(out)
        assert target.connections == 0 and srv.connections == 1


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_a_bounded_number_of_times(status: int) -> None:
    opts = PeerReadOptions(request_timeout_s=1.0, attempts=3, backoff_s=0.02, backoff_max_s=0.05)
    with HostileServer("status", status=status) as srv:
        out, elapsed = _timed(lambda: _reader(srv.url, options=opts).fetch(KEY, 1000))
        assert isinstance(out, PeerUnreachable) and f"server error {status}" in str(out)
        assert srv.connections == 3 and elapsed < opts.worst_case_s(1000)


def test_access_denied_is_refused_once() -> None:
    with HostileServer("status", status=403) as srv:
        out, _ = _timed(lambda: _reader(srv.url).fetch(KEY, 1000))
        assert isinstance(out, PeerRefused) and "anonymous" in str(out) and srv.connections == 1


def test_connection_refused_is_unreachable_quickly() -> None:
    with HostileServer("record") as srv:
        url = srv.url
    out, elapsed = _timed(lambda: _reader(url).fetch(KEY, 10))  # nothing listens there any more
    assert isinstance(out, PeerUnreachable) and elapsed < 1.0


# --------------------------------------------------------------------------- no credentials, no SSRF


def test_requests_carry_no_credentials_even_with_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"AWS_ACCESS_KEY_ID": "AKIAPEERLEAKTEST0001", "AWS_SECRET_ACCESS_KEY": "peer-leak-secret-key",
               "AWS_SESSION_TOKEN": "peer-leak-session-token"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    with HostileServer("record") as srv:
        r = _reader(srv.url)
        r.fetch(KEY, 100)
        r.stat(KEY)
        with pytest.raises(PeerRefused):
            r.list("1/")  # "ok" is not a listing, but the request was made
        assert len(srv.requests) == 3
        for req in srv.requests:
            names = set(req.headers)
            assert not names & {"authorization", "cookie", "proxy-authorization"}, req.headers
            assert not any(n.startswith("x-amz-") for n in names), req.headers
            for value in secrets.values():
                assert value.encode() not in req.raw


def test_public_only_refuses_names_that_resolve_to_private_addresses() -> None:
    with HostileServer("record") as srv:
        for ips in (["127.0.0.1"], ["8.8.8.8", "127.0.0.1"], ["169.254.169.254"], ["10.1.2.3"], ["::1"]):
            r = _reader(f"https://peer.test:{srv.port}", policy=NETWORK, resolver=_fixed(*ips))
            out, _ = _timed(lambda: r.fetch(KEY, 10))  # noqa: B023 -- _timed calls it within this iteration
            assert isinstance(out, PeerRefused) and "non-public" in str(out), (ips, out)
        real = _reader(f"https://localhost:{srv.port}", policy=NETWORK)  # the system resolver: /etc/hosts
        assert isinstance(_timed(lambda: real.fetch(KEY, 10))[0], PeerRefused)
        assert srv.connections == 0  # refused before any connection


def test_dns_is_resolved_once_per_request_and_the_checked_ip_is_used() -> None:
    with HostileServer("record") as srv:
        resolve = _fixed("127.0.0.1")
        r = _reader(f"http://peer.test:{srv.port}", policy=PRIVATE, resolver=resolve)
        assert r.get(KEY, 10) == b"ok"
        assert resolve.calls == ["peer.test"]  # type: ignore[attr-defined]
        assert srv.requests[0].headers["host"] == f"peer.test:{srv.port}"


def test_tls_verifies_the_certificate_for_the_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server_ctx, cert = self_signed(tmp_path, "peer.test")
    with HostileServer("object", objects={f"/bkt/pre/{KEY}": b"tls"}, tls=server_ctx) as srv:
        r = _reader(f"https://peer.test:{srv.port}", policy=PRIVATE, resolver=_fixed("127.0.0.1"))
        out, _ = _timed(lambda: r.fetch(KEY, 10))  # the system trust store does not know this certificate
        assert isinstance(out, PeerRefused) and "TLS" in str(out)

        def trusting() -> ssl.SSLContext:
            ctx = ssl.create_default_context()
            ctx.load_verify_locations(cert)
            return ctx

        monkeypatch.setattr(peer_mod, "_tls_context", trusting)
        assert r.get(KEY, 10) == b"tls"
        wrong = _reader(f"https://other.test:{srv.port}", policy=PRIVATE, resolver=_fixed("127.0.0.1"))
        assert isinstance(_timed(lambda: wrong.fetch(KEY, 10))[0], PeerRefused)  # name mismatch


# --------------------------------------------------------------------------- a real S3 server, anonymously

PUBLIC = "peer-public"


@pytest.fixture(scope="module")
def public_bucket(moto_endpoint: str) -> str:  # noqa: F811
    """A bucket that allows anonymous reads (as a miner's must), written with credentials."""
    with pytest.MonkeyPatch.context() as mp:  # module scope runs before the per-test _aws_env
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        own = open_store(f"s3://{PUBLIC}/miners/alice?endpoint={moto_endpoint}&region=us-east-1")
        own.create_bucket()  # type: ignore[attr-defined]
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{PUBLIC}", f"arn:aws:s3:::{PUBLIC}/*"]}]}
        client = own.client  # type: ignore[attr-defined]
        client.put_bucket_policy(Bucket=PUBLIC, Policy=json.dumps(policy))
        for i in range(5):  # moto wants an object ACL for anonymous HEAD
            client.put_object(Bucket=PUBLIC, Key=f"miners/alice/1/{i}/hk.0.safetensors", Body=b"v%d" % i,
                              ACL="public-read")
        client.put_object(Bucket=PUBLIC, Key="miners/alice/big", Body=b"b" * 5000, ACL="public-read")
        client.put_object(Bucket=PUBLIC, Key="miners/bob/1/0/x", Body=b"bob", ACL="public-read")
        private = open_store(f"s3://peer-private/p?endpoint={moto_endpoint}&region=us-east-1")
        private.create_bucket()  # type: ignore[attr-defined]
        private.put("k", b"secret")
    return moto_endpoint


def test_anonymous_get_head_list_against_s3(public_bucket: str) -> None:
    before = time.time()
    r = open_peer(f"s3://{PUBLIC}/miners/alice?endpoint={public_bucket}&region=us-east-1", DEVNET,
                  PeerReadOptions(list_page_keys=2))
    obj = r.fetch("1/3/hk.0.safetensors", 100)
    assert obj is not None and obj.data == b"v3" and obj.sha256 == hashlib.sha256(b"v3").hexdigest()
    assert obj.etag and obj.modified is not None and abs(obj.modified - before) < 3600
    assert r.fetch("1/9/none", 100) is None
    st = r.stat("1/3/hk.0.safetensors")
    assert st is not None and st.size == 2
    assert r.list("1/") == [f"1/{i}/hk.0.safetensors" for i in range(5)]  # 3 pages of 2 keys
    assert r.list("") == [f"1/{i}/hk.0.safetensors" for i in range(5)] + ["big"]  # not bob's keys
    out, _ = _timed(lambda: r.fetch("big", 1000))
    assert isinstance(out, PeerTooLarge) and r.get("big", 1000) is None
    assert r.get("big", 5000) == b"b" * 5000


def test_listing_longer_than_the_page_cap_is_refused(public_bucket: str) -> None:
    r = open_peer(f"s3://{PUBLIC}/miners/alice?endpoint={public_bucket}", DEVNET,
                  PeerReadOptions(list_page_keys=2, list_max_pages=2))
    with pytest.raises(PeerRefused, match="pages"):
        r.list("1/")


def test_peer_reads_are_unsigned_even_with_credentials_in_env(public_bucket: str) -> None:
    """_aws_env has set credentials: our own store reads the private bucket, the peer reader cannot."""
    assert open_store(f"s3://peer-private/p?endpoint={public_bucket}").get("k", 100) == b"secret"
    r = open_peer(f"s3://peer-private/p?endpoint={public_bucket}", DEVNET, FAST)
    with pytest.raises(PeerRefused, match="403"):
        r.fetch("k", 100)
    missing = open_peer(f"s3://no-such-bucket?endpoint={public_bucket}", DEVNET, FAST)
    assert missing.fetch("k", 100) is None and missing.list("") == []


# --------------------------------------------------------------------------- file:// peers (devnet)


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    root = tmp_path / "peer"
    (root / "1" / "5").mkdir(parents=True)
    (root / "1" / "5" / "hk.0.safetensors").write_bytes(b"local")
    (root / "1" / "5" / ".tmp-partial").write_bytes(b"half")
    (root / "big").write_bytes(b"x" * 5000)
    return root


def _local(root: Path) -> PeerReader:
    r = open_peer(root.as_uri(), DEVNET, FAST)
    assert isinstance(r, LocalPeerReader)
    return r


def test_local_reader_reads_stats_and_lists(local_root: Path) -> None:
    r = _local(local_root)
    obj = r.fetch(KEY, 100)
    assert obj is not None and obj.data == b"local" and obj.sha256 == hashlib.sha256(b"local").hexdigest()
    assert obj.modified == pytest.approx(os.stat(local_root / KEY).st_mtime)
    assert r.exists(KEY) and r.modified(KEY) is not None and r.fetch("1/5/none", 100) is None
    assert r.list("") == [KEY, "big"] and r.list("1/") == [KEY] and r.list("1/5/hk") == [KEY]
    assert r.list("2/") == []
    with pytest.raises(PeerTooLarge):
        r.fetch("big", 1000)
    assert r.get("big", 1000) is None and r.get("big", 5000) == b"x" * 5000


@pytest.mark.timeout(20)
def test_local_reader_refuses_a_fifo_without_hanging(local_root: Path) -> None:
    os.mkfifo(local_root / "1" / "5" / "fifo")
    r = _local(local_root)
    for call in (lambda: r.fetch("1/5/fifo", 100), lambda: r.stat("1/5/fifo")):
        out, elapsed = _timed(call)
        assert isinstance(out, PeerRefused) and "FIFO" in str(out) and elapsed < 1.0
    os.mkfifo(local_root.parent / "fifo-root")
    out, elapsed = _timed(lambda: _local(local_root.parent / "fifo-root").fetch(KEY, 100))
    assert isinstance(out, PeerRefused) and elapsed < 1.0
    assert r.list("1/") == [KEY]


def test_local_reader_refuses_symlink_loops(local_root: Path, tmp_path: Path) -> None:
    (local_root / "loop1").symlink_to(local_root / "loop2")
    (local_root / "loop2").symlink_to(local_root / "loop1")
    r = _local(local_root)
    for key in ("loop1", "loop1/x", "loop2/a/b"):
        with pytest.raises(PeerRefused, match="symlink"):
            r.fetch(key, 100)
    assert r.list("") == [KEY, "big"]
    (tmp_path / "rootloop").symlink_to(tmp_path / "rootloop")
    with pytest.raises(PeerRefused):
        _local(tmp_path / "rootloop").fetch(KEY, 100)
    assert PeerStores(allow_local=True).get((tmp_path / "rootloop").as_uri()) is not None  # opening never raises


def test_local_reader_refuses_links_out_of_the_store(local_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not read")
    (local_root / "1" / "5" / "hk.1.safetensors").symlink_to(outside / "secret")
    (local_root / "2").symlink_to(outside, target_is_directory=True)
    r = _local(local_root)
    with pytest.raises(PeerRefused, match="symlink"):
        r.fetch("1/5/hk.1.safetensors", 100)
    with pytest.raises(PeerRefused, match="symlink"):
        r.fetch("2/secret", 100)
    with pytest.raises(PeerRefused, match="directory"):
        r.fetch("1/5", 100)
    assert "2/secret" not in r.list("") and "1/5/hk.1.safetensors" not in r.list("")


def test_local_reader_never_creates_the_root(tmp_path: Path) -> None:
    missing = tmp_path / "not" / "there"
    r = _local(missing)
    assert r.fetch(KEY, 10) is None and r.stat(KEY) is None and r.list("") == [] and not r.exists(KEY)
    stores = PeerStores(allow_local=True)
    reader = stores.get(missing.as_uri())
    assert reader is not None and reader.get(KEY, 10) is None
    assert not (tmp_path / "not").exists()


# --------------------------------------------------------------------------- PeerStores


def test_peer_stores_refusals_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stores = PeerStores(allow_local=False)
    assert stores.open(None) == StoreRefusal(reason="no store committed")
    refused = stores.open("s3://bucket-ok?region=../../x")
    assert isinstance(refused, StoreRefusal) and refused.reason.startswith("unusable store location: region")
    assert stores.open("s3://bucket-ok?region=../../x") is refused  # decided once
    assert isinstance(stores.open(tmp_path.as_uri()), StoreRefusal)  # file:// off the devnet
    reader = stores.open("s3://bucket-ok/p?endpoint=https://s3.example.com")
    assert (not isinstance(reader, StoreRefusal)
            and stores.get("s3://bucket-ok/p?endpoint=https://s3.example.com") is reader)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug on the way")

    monkeypatch.setattr("subnet.node.peerstores.open_peer", boom)
    odd = PeerStores(allow_local=True).open("s3://bucket-ok")
    assert isinstance(odd, StoreRefusal) and "RuntimeError" in odd.reason


def test_peer_stores_policies_from_runtime_and_config() -> None:
    assert PeerStores(allow_local=True).policy == LocationPolicy.devnet()
    assert PeerStores(allow_local=False).policy == LocationPolicy.network()
    assert PeerStores.for_runtime(allow_local=False, public_only=False).policy == PRIVATE
    cfg = StoreConfig(peer_request_timeout_s=3.0, peer_attempts=4)
    stores = PeerStores.from_config(cfg, allow_local=False)
    assert stores.policy == NETWORK and stores.options.request_timeout_s == 3.0 and stores.options.attempts == 4
    private = PeerStores.from_config(StoreConfig(allow_private_peer_endpoints=True), allow_local=False)
    assert private.policy == PRIVATE
    assert isinstance(private.open("s3://b-ok?endpoint=http://10.0.0.1:9000"), PeerReader)
    assert isinstance(stores.open("s3://b-ok?endpoint=http://10.0.0.1:9000"), StoreRefusal)
    with pytest.raises(ValueError):
        PeerStores(LocationPolicy.own_store())


# --------------------------------------------------------------------------- our own store: one retry layer


@pytest.mark.parametrize("mode", ["status", "blackhole"])
def test_own_s3_store_makes_exactly_attempts_requests(mode: str) -> None:
    """botocore no longer retries inside our attempts (it used to stack up to 27 requests per call)."""
    from subnet.errors import StorageError
    from subnet.storage.s3 import S3Options, S3Store

    opts = S3Options(connect_timeout_s=0.5, read_timeout_s=0.5, attempts=3, backoff_base_s=0.01, backoff_max_s=0.02)
    with HostileServer(mode, status=503) as srv:
        store = S3Store(bucket="b", endpoint_url=srv.url, options=opts)
        with pytest.raises(StorageError, match="after 3 attempts"):
            store.get("k", max_bytes=10)
        assert srv.connections == 3


@pytest.mark.parametrize("body", [
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaa">]><ListBucketResult/>'.encode("utf-16"),
    b'<!DOCTYPE x [<!ENTITY a "b">]><ListBucketResult/>',
    b"<ListBucketResult>" + b"<a>" * 100 + b"</a>" * 100 + b"</ListBucketResult>",
    b"<ListBucketResult>" + b"<Contents><Key>k</Key></Contents>" * 20_000 + b"</ListBucketResult>",
])
def test_hostile_listing_pages_are_refused_before_a_tree_is_built(body: bytes) -> None:
    """A DTD in any encoding, deep nesting and oversized pages are refused by the streaming pre-check."""
    t0 = time.monotonic()
    with pytest.raises(PeerRefused):
        peer_mod._parse_listing(body, "s3://bkt?endpoint=http://127.0.0.1:1")
    assert time.monotonic() - t0 < 1.0
