"""S3Store over real HTTP: moto's standalone server in a separate process, plus injected network faults.

Faults (refused connection, a server that never answers, a body cut short)
are tiny real TCP servers on loopback: the boto3 client, HTTP stack and retry
logic under test are all real.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from subnet.errors import StorageError
from subnet.storage import open_store
from subnet.storage.s3 import S3Options, S3Store

FAST = S3Options(connect_timeout_s=0.5, read_timeout_s=0.5, botocore_attempts=1, attempts=3, backoff_base_s=0.05,
                 backoff_max_s=0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def store(moto_endpoint: str, request) -> S3Store:
    bucket = "b-" + request.node.name.replace("_", "-").lower()[:40]
    s = open_store(f"s3://{bucket}/miners/alice?endpoint={moto_endpoint}&region=us-east-1")
    assert isinstance(s, S3Store)
    s.create_bucket()
    return s


def test_round_trip_over_http(store: S3Store) -> None:
    store.put("1/5/hk.0.safetensors", b"\x00\x01" * 1000)
    store.put("1/5/hk.1.safetensors", b"x")
    store.put("1/6/hk.0.safetensors", b"y")
    assert store.get("1/5/hk.0.safetensors", max_bytes=2000) == b"\x00\x01" * 1000
    assert store.exists("1/5/hk.1.safetensors") and not store.exists("1/5/none")
    assert store.list("1/5/") == ["1/5/hk.0.safetensors", "1/5/hk.1.safetensors"]
    store.delete("1/5/hk.1.safetensors")
    assert store.list("1/") == ["1/5/hk.0.safetensors", "1/6/hk.0.safetensors"]
    again = open_store(store.location)  # the location string alone is enough to reach the same objects
    assert again.get("1/6/hk.0.safetensors", max_bytes=10) == b"y"


def test_missing_and_oversized_are_absent(store: S3Store) -> None:
    assert store.get("nope", max_bytes=10) is None
    store.put("big", b"z" * 100)
    assert store.get("big", max_bytes=99) is None
    assert store.get("big", max_bytes=100) == b"z" * 100


def test_list_paginates(moto_endpoint: str) -> None:
    s = S3Store(bucket="pages", prefix="p", endpoint_url=moto_endpoint, options=S3Options(list_page_size=2))
    s.create_bucket()
    keys = [f"w/{i:02d}" for i in range(7)]
    for k in keys:
        s.put(k, b"1")
    s.put("other", b"1")
    assert s.list("w/") == keys


def test_connection_refused_retries_then_storage_error() -> None:
    port = _free_port()  # nothing listens here
    s = S3Store(bucket="b", endpoint_url=f"http://127.0.0.1:{port}", options=FAST)
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="after 3 attempts"):
        s.get("k", max_bytes=10)
    assert time.monotonic() - t0 >= 0.05 + 0.1  # two backoff sleeps happened
    with pytest.raises(StorageError):
        s.put("k", b"x")


class _FaultServer:
    """A loopback TCP server that answers every request the same broken way."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                except OSError:
                    continue
                self.requests += 1
                if self.mode == "hang":
                    self.stop.wait(1.5)
                elif self.mode == "truncate":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
                                 b"Content-Type: application/octet-stream\r\n"
                                 b"Connection: close\r\n\r\n" + b"a" * 10)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_read_timeout_retries_then_storage_error() -> None:
    srv = _FaultServer("hang")
    try:
        s = S3Store(bucket="b", endpoint_url=f"http://127.0.0.1:{srv.port}", options=FAST)
        with pytest.raises(StorageError):
            s.get("k", max_bytes=10)
        assert srv.requests >= 2
    finally:
        srv.close()


def test_truncated_body_is_absent() -> None:
    srv = _FaultServer("truncate")
    try:
        s = S3Store(bucket="b", endpoint_url=f"http://127.0.0.1:{srv.port}", options=FAST)
        assert s.get("k", max_bytes=5000) is None
        assert srv.requests == FAST.attempts  # retried, then gave up as "absent"
    finally:
        srv.close()


def test_location_has_no_secrets(store: S3Store) -> None:
    assert "testing" not in store.location
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in store.location


def test_modified_is_the_servers_last_modified(store: S3Store) -> None:
    assert store.modified("1/0/hk.0.safetensors") is None
    before = time.time()
    store.put("1/0/hk.0.safetensors", b"payload")
    stamp = store.modified("1/0/hk.0.safetensors")
    assert stamp is not None and before - 5 <= stamp <= time.time() + 5  # S3 LastModified has 1 s resolution
    assert store.exists("1/0/hk.0.safetensors")
