"""One S3 call makes at most `--store.s3_attempts` HTTP requests, whatever the failure (real boto3, real sockets)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from subnet.errors import StorageError
from subnet.storage import open_store
from subnet.storage.config import StoreConfig
from subnet.storage.s3 import S3Options, S3Store


class _CountingServer:
    """Loopback HTTP server that fails every request one way and counts the requests it got."""

    def __init__(self, mode: str) -> None:
        self.mode, self.requests, self.stop, self.lock = mode, 0, threading.Event(), threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                if not conn.recv(65536):
                    return
            except OSError:
                return
            with self.lock:
                self.requests += 1
            if self.mode == "503":
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            elif self.mode == "hang":
                self.stop.wait(1.0)
            elif self.mode == "cut":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" + b"x" * 3)

    def __enter__(self) -> _CountingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture(autouse=True)
def _creds(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


@pytest.mark.parametrize("mode", ["503", "hang", "cut"])
@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_one_get_is_at_most_attempts_requests(mode: str, attempts: int) -> None:
    cfg = StoreConfig(s3_attempts=attempts, s3_connect_timeout_s=0.3, s3_read_timeout_s=0.3)
    opts = S3Options.from_store_config(cfg)
    opts = S3Options(**{**opts.__dict__, "backoff_base_s": 0.01, "backoff_max_s": 0.02})
    with _CountingServer(mode) as srv:
        store = open_store(f"s3://bkt/pre?endpoint={srv.url}", opts)
        assert isinstance(store, S3Store) and store.client.meta.config.max_pool_connections == 32
        t0 = time.monotonic()
        if mode == "cut":
            assert store.get("k", max_bytes=1000) is None
        else:
            with pytest.raises(StorageError):
                store.get("k", max_bytes=1000)
        took = time.monotonic() - t0
        time.sleep(0.1)
        assert srv.requests == attempts, (mode, srv.requests)
        # worst case stated in subnet/storage/s3.py: attempts x (connect + read timeout) + backoff, plus slack
        assert took < attempts * (0.3 + 0.3) + 0.1 + 2.0, took


def test_transport_and_retention_settings_are_flags_and_env() -> None:
    from subnet.config import parse_config
    from subnet.node.config import ValidatorNeuronConfig

    env = {"TESSERA_STORE_S3_READ_TIMEOUT_S": "7.5", "TESSERA_STORE_RETENTION_WINDOWS": "12", "TESSERA_NETUID": "3"}
    cfg = parse_config(ValidatorNeuronConfig, ["--store.s3_attempts", "2", "--store.s3_max_pool_connections", "64"],
                       env)
    opts = S3Options.from_store_config(cfg.store)
    assert (opts.attempts, opts.max_pool_connections, opts.read_timeout_s) == (2, 64, 7.5)
    assert cfg.store.retention_windows == 12
