"""The store-location grammar (subnet/storage/location.py): hostile commitments are refused, typed.

A peer's location is attacker-controlled chain text. Every location that
crashed the validator (botocore errors from inside S3Store.__init__), every
SSRF target and every local-path trick must come back as BadLocation (a
ConfigError) from a pure parse, under every policy; PeerStores turns it into
a StoreRefusal, and nothing raises past it.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subnet.errors import ConfigError
from subnet.node.peerstores import PeerStores, StoreRefusal
from subnet.storage import open_store
from subnet.storage.location import (
    MAX_LOCATION_LEN,
    BadLocation,
    Endpoint,
    LocalLocation,
    LocationPolicy,
    S3Location,
    parse_location,
)

OWN = LocationPolicy.own_store()
DEVNET = LocationPolicy.devnet()
NETWORK = LocationPolicy.network()
PRIVATE = LocationPolicy.network(allow_private_endpoints=True)
ALL = [OWN, DEVNET, NETWORK, PRIVATE]
PEERS = [DEVNET, NETWORK, PRIVATE]
POLICY_IDS = ["own", "devnet", "network", "private"]

# Finding 1: each of these made botocore raise inside S3Store.__init__ (not a SubnetError): the validator died.
CRASHERS = [
    "s3://bucket-ok?region=../../x",
    "s3://bucket-ok?endpoint=file:///etc/passwd",
    "s3://bucket-ok?endpoint=javascript:alert(1)",
    "s3://bucket-ok?endpoint=http://[::1",
    "s3://bucket-ok?endpoint=%00",
    "s3://bucket-ok?endpoint=https://ex\u00e4mple.com",  # unicode host
    "s3://bucket-ok?endpoint=https://ex%C3%A4mple.com",  # the same, percent-encoded
    "s3://bucket-ok?endpoint=https://\u0441\u0440.example",  # Cyrillic look-alike
    "s3://bucket-ok?endpoint=https://a.example%0d%0aX-Injected:%201",
    "s3://bucket-ok?endpoint=https://a.example\r\nX-Injected: 1",
    "s3://bucket-ok?region=us-east-1%0d%0aX:1",
    "s3://bucket-ok?region=us-east-1\r\n",
    "s3://bucket-ok?addressing=bogus",
    "s3://bucket-ok?endpoint=http://[::1]]",
    "s3://bucket-ok?endpoint=http://host:99999",
    "s3://bucket-ok?endpoint=http://host:0",
    "s3://bucket-ok?endpoint=http://host:-1",
    "s3://bucket-ok?endpoint=http://host:8o",
    "s3://bucket-ok?endpoint=http://",
    "s3://bucket-ok?endpoint=http://[fe80::1%25eth0]",
    "s3://bucket-ok?endpoint=",
    "s3://bucket-ok?region=",
    "s3://bucket-ok?region=US-EAST-1",
    "s3://bucket-ok?region=" + "a" * 32,
    "s3://bucket-ok?&&",
    "s3://bucket-ok/%00x",
    "s3://bucket-ok/a%0ab",
]

# Finding 6 and 11: places a validator must never be sent to on a real network.
SSRF = [
    "s3://bucket-ok?endpoint=https://169.254.169.254",
    "s3://bucket-ok?endpoint=http://169.254.169.254/",
    "s3://bucket-ok?endpoint=https://127.0.0.1:6379",
    "s3://bucket-ok?endpoint=https://[::1]",
    "s3://bucket-ok?endpoint=https://[::1]:9000",
    "s3://bucket-ok?endpoint=https://[::ffff:127.0.0.1]",
    "s3://bucket-ok?endpoint=https://10.0.0.1",
    "s3://bucket-ok?endpoint=https://172.16.3.4",
    "s3://bucket-ok?endpoint=https://192.168.1.1",
    "s3://bucket-ok?endpoint=https://100.64.0.1",
    "s3://bucket-ok?endpoint=https://[fe80::1]",
    "s3://bucket-ok?endpoint=https://[fc00::1]",
    "s3://bucket-ok?endpoint=https://0.0.0.0",
    "s3://bucket-ok?endpoint=https://224.0.0.1",
    "s3://bucket-ok?endpoint=https://240.0.0.1",
    "s3://bucket-ok?endpoint=https://[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "s3://bucket-ok?endpoint=https://2130706433",  # 127.0.0.1 as one number
    "s3://bucket-ok?endpoint=https://0x7f000001",
    "s3://bucket-ok?endpoint=https://127.1",
    "s3://bucket-ok?endpoint=https://0177.0.0.1",
    "s3://bucket-ok?endpoint=http://s3.example.com",  # plain http on a real network
    "s3://bucket-ok?endpoint=ftp://s3.example.com",
    "s3://bucket-ok?endpoint=https://user:pass@s3.example.com",
    "s3://bucket-ok?endpoint=https://user@s3.example.com",
    "s3://bucket-ok?endpoint=https://s3.example.com%40169.254.169.254",
    "s3://bucket-ok?endpoint=https://s3.example.com&endpoint=https://169.254.169.254",
    "s3://bucket-ok?endpoint=https://s3.example.com/latest/meta-data",
    "s3://bucket-ok?endpoint=https://s3.example.com?x=1",
    "s3://bucket-ok?endpoint=https://s3.example.com#frag",
    "s3://bucket-ok?endpoint=https%3A%2F%2F10.0.0.1",
    "s3://key:secret@bucket-ok/p",
    "s3://bucket-ok/p?secret_access_key=abc",
    "s3://bucket-ok/p?aws_session_token=abc",
]

# Finding 10: local paths a peer must not make us touch.
LOCAL_TRICKS = [
    "a:/../../../../etc",
    "C:/Windows/Temp",
    "c:\\x",
    "C:",
    "/C:/x",
    "file:///C:/x",
    "file:///c:/x",
    "file:///tmp/a/../../etc",
    "file:///tmp/./x",
    "file://remotehost/x",
    "file:relative/x",
    "file:///tmp/a%20b",
    "file:///tmp/x?y=1",
    "~/.ssh",
    "~root/x",
    "relative/dir",
    "./x",
    "/absolute/plain/path",
]


@pytest.mark.parametrize("policy", ALL, ids=POLICY_IDS)
@pytest.mark.parametrize("text", CRASHERS)
def test_crash_locations_are_bad_location(text: str, policy: LocationPolicy) -> None:
    with pytest.raises(BadLocation):
        parse_location(text, policy)


@pytest.mark.parametrize("text", CRASHERS)
def test_crash_locations_never_reach_boto(text: str) -> None:
    with pytest.raises(BadLocation):
        open_store(text)  # our own store goes through the same grammar
    refusal = PeerStores(allow_local=False).open(text)
    assert isinstance(refusal, StoreRefusal) and refusal.reason.startswith("unusable store location:")


@pytest.mark.parametrize("text", SSRF)
def test_ssrf_targets_refused_on_real_networks(text: str) -> None:
    with pytest.raises(BadLocation):
        parse_location(text, NETWORK)
    assert PeerStores(allow_local=False).get(text) is None


@pytest.mark.parametrize("text", [t for t in SSRF if "@" in t or "&endpoint=" in t or "ftp:" in t or "secret" in t
                                  or "token" in t or "meta-data" in t or "?x=" in t or "#" in t
                                  or "0x7f" in t or "2130706433" in t or "127.1" in t or "0177" in t])
@pytest.mark.parametrize("policy", ALL, ids=POLICY_IDS)
def test_malformed_endpoints_refused_under_every_policy(text: str, policy: LocationPolicy) -> None:
    with pytest.raises(BadLocation):
        parse_location(text, policy)


def test_credentials_are_named_in_the_refusal() -> None:
    for text in ("s3://bucket-ok?endpoint=https://user:pass@s3.example.com", "s3://key:secret@bucket-ok/p",
                 "s3://bucket-ok/p?secret_access_key=abc"):
        with pytest.raises(BadLocation, match="credentials"):
            parse_location(text, OWN)


@pytest.mark.parametrize("policy", PEERS, ids=POLICY_IDS[1:])
@pytest.mark.parametrize("text", LOCAL_TRICKS)
def test_local_tricks_refused_for_peers(text: str, policy: LocationPolicy) -> None:
    with pytest.raises(BadLocation):
        parse_location(text, policy)
    assert PeerStores(policy).get(text) is None


@pytest.mark.parametrize("text", ["a:/../../../../etc", "C:/Windows/Temp", "c:\\x", "/C:/x", "file:///C:/x"])
def test_drive_letters_refused_for_our_own_store_too(text: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadLocation, match="Windows"):
        open_store(text)
    assert list(tmp_path.iterdir()) == []  # nothing was created on the way


def test_length_and_printable_caps() -> None:
    with pytest.raises(BadLocation, match="longer"):
        parse_location("s3://bucket-ok/" + "a" * MAX_LOCATION_LEN, OWN)
    for text in ("s3://bucket-ok/p q", "s3://bucket-ok/p\tq", "s3://bucket-ok/p%20q", "s3://bucket-ok/\x7f",
                 "file:///tmp/\x00x", ""):
        with pytest.raises(BadLocation):
            parse_location(text, OWN)


@pytest.mark.parametrize("bucket", ["ab", "a" * 64, "Bad_Bucket", "UPPER", "-abc", "abc-", "a..b", "a.-b",
                                    "192.168.1.1", "xn--abc", "sthree-x", "abc-s3alias", "", "b@d"])
def test_bucket_names(bucket: str) -> None:
    with pytest.raises(BadLocation):
        parse_location(f"s3://{bucket}/p", OWN)


def test_valid_r2_aws_minio_locations() -> None:
    r2 = parse_location("s3://my-bucket/tessera?endpoint=https://0123456789abcdef.r2.cloudflarestorage.com"
                        "&region=auto", NETWORK)
    assert r2 == S3Location(bucket="my-bucket", prefix="tessera", region="auto",
                            endpoint=Endpoint(scheme="https", host="0123456789abcdef.r2.cloudflarestorage.com"))
    aws = parse_location("s3://my.bucket.eu/miners/alice?region=eu-west-1&addressing=virtual", NETWORK)
    assert isinstance(aws, S3Location) and aws.endpoint is None and aws.prefix == "miners/alice"
    assert aws.addressing == "virtual" and aws.region == "eu-west-1"
    assert parse_location("s3://my-bucket", NETWORK) == S3Location(bucket="my-bucket")
    assert parse_location("s3://my-bucket/", NETWORK) == S3Location(bucket="my-bucket")
    encoded = parse_location("s3://my-bucket/p%2Fq?endpoint=https%3A%2F%2FS3.Example.COM%3A8443%2F", NETWORK)
    assert isinstance(encoded, S3Location) and encoded.prefix == "p/q"
    assert encoded.endpoint == Endpoint(scheme="https", host="s3.example.com", port=8443)
    v6 = parse_location("s3://my-bucket?endpoint=https://[2606:4700::1111]:8443", NETWORK)
    assert isinstance(v6, S3Location) and v6.endpoint is not None and v6.endpoint.netloc == "[2606:4700::1111]:8443"
    minio = "s3://bucket/p?endpoint=http://127.0.0.1:9000&addressing=path"
    for policy in (OWN, DEVNET, PRIVATE):
        loc = parse_location(minio, policy)
        assert isinstance(loc, S3Location) and loc.endpoint == Endpoint(scheme="http", host="127.0.0.1", port=9000)
    with pytest.raises(BadLocation):
        parse_location(minio, NETWORK)


def test_local_locations_by_policy(tmp_path) -> None:
    uri = tmp_path.as_uri()
    assert parse_location(uri, DEVNET) == LocalLocation(path=str(tmp_path))
    assert parse_location(f"file://localhost{tmp_path}", DEVNET) == LocalLocation(path=str(tmp_path))
    with pytest.raises(BadLocation, match="devnet"):
        parse_location(uri, NETWORK)
    for own in ("~/.tessera/store", "relative/store", str(tmp_path), uri):
        assert isinstance(parse_location(own, OWN), LocalLocation)


@pytest.mark.parametrize("text", ["ftp://host/x", "http://host/x", "gs://bucket/x", "s3:/bucket", "s3:bucket",
                                  "S3://bucket-ok", "javascript:alert(1)"])
def test_unsupported_schemes(text: str) -> None:
    for policy in ALL:
        with pytest.raises(BadLocation):
            parse_location(text, policy)


def test_bad_location_is_a_config_error() -> None:
    assert issubclass(BadLocation, ConfigError)


def test_own_store_locations_round_trip(tmp_path) -> None:
    """What our own store commits on chain parses again, for us and for a devnet peer."""
    local = open_store(str(tmp_path / "store"))
    assert isinstance(parse_location(local.location, DEVNET), LocalLocation)
    s3 = open_store("s3://bucket-ok/p?endpoint=http://127.0.0.1:9000&region=auto&addressing=path")
    assert parse_location(s3.location, DEVNET) == parse_location(s3.location, OWN)
    assert "addressing=path" in s3.location


# --------------------------------------------------------------------------- properties

_ALPHABET = st.sampled_from(list("s3:/file?&=%@[]:.-_~\\ \r\n\t\x00#") + ["endpoint", "region", "addressing",
                                                                          "http://", "https://", "0d", "0a",
                                                                          "127.0.0.1", "::1", "\u00e4", "C:"])
_FRAGMENTS = st.lists(_ALPHABET, max_size=40).map("".join)
_TEXT = st.one_of(
    st.text(max_size=200),
    _FRAGMENTS,
    st.builds(lambda a: "s3://bucket-ok?endpoint=" + a, st.text(max_size=150)),
    st.builds(lambda a: "s3://bucket-ok?endpoint=http" + a, _FRAGMENTS),
    st.builds(lambda a, b: f"s3://{a}?{b}", st.text(max_size=60), st.text(max_size=120)),
    st.builds(lambda a: "file://" + a, st.text(max_size=180)),
    st.builds(lambda a: "s3://bucket-ok/" + a, st.text(max_size=180)),
).filter(lambda t: len(t) <= 200)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT, policy=st.sampled_from(ALL))
def test_parse_raises_only_bad_location(text: str, policy: LocationPolicy) -> None:
    try:
        parsed = parse_location(text, policy)
    except BadLocation:
        return
    assert isinstance(parsed, (S3Location, LocalLocation))
    assert text.isascii() and text.isprintable() and " " not in text


@settings(max_examples=200, deadline=None)
@given(text=_TEXT)
def test_peer_stores_never_raise(text: str) -> None:
    for allow_local in (False, True):
        result = PeerStores(allow_local=allow_local).open(text)
        assert isinstance(result, StoreRefusal) or hasattr(result, "fetch")


@pytest.mark.parametrize("text", ["\n", "s3://bucket-ok/prefix\n", "/tmp/store\n", "file:///tmp/store\n",
                                  "s3://bucket-ok\n/p", "s3://bucket-ok/p?region=us-east-1\n"])
def test_a_trailing_newline_is_refused(text: str) -> None:
    """`$` matches before a final newline; the grammar anchors with `\\Z` (found by hypothesis)."""
    for policy in ALL:
        with pytest.raises(BadLocation):
            parse_location(text, policy)
