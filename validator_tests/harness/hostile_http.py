"""Hostile HTTP servers on 127.0.0.1, each misbehaving one way on purpose (peer-reader tests).

A peer's store is the peer's server; these play the bad ones with raw sockets
(no http.server niceties) so each response is byte-exact:

- object:          serves `objects` (path -> bytes) for GET/HEAD, 404 otherwise (a sane store)
- record:          answers 200 "ok" and keeps every request's headers (what did the reader send?)
- trickle_headers: a valid response, one byte every `interval_s` from the status line on
- trickle_body:    headers at once (Content-Length: `size`), then one body byte every `interval_s`
- blackhole:       accepts, reads, never answers
- huge:            claims Content-Length 10 GB, then drips bytes
- no_length:       `size` bytes without a Content-Length, ended by closing the connection
- short:           claims Content-Length `size`, sends half, closes (a cut body)
- endless_listing: after `interval_s`, a ListObjectsV2 page that is always truncated (one more page, forever)
- redirect:        302 to `target`
- status:          `status` with an empty body (500, 503, 403, ...)

`tls` (a server-side SSLContext, see `self_signed`) serves any mode over TLS.
Every connection thread stops when the server is closed.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

HUGE_LENGTH = 10 * 1000**3


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes


@dataclass
class HostileServer:
    mode: str
    objects: dict[str, bytes] = field(default_factory=dict)
    interval_s: float = 1.0
    size: int = 1000
    status: int = 500
    target: str = "http://169.254.169.254/latest/meta-data/"
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name=f"hostile-{self.mode}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
        self._sock.close()

    # -- serving
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
            req = self._read_request(conn)
            if req is None:
                return
            with self._lock:
                self.requests.append(req)
            getattr(self, f"_mode_{self.mode}")(conn, req)
        except OSError:
            pass
        finally:
            conn.close()

    def _read_request(self, conn: socket.socket) -> Request | None:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        line, *lines = head.split("\r\n")
        method, path, _version = (line.split(" ", 2) + ["", ""])[:3]
        headers: dict[str, str] = {}
        for h in lines:
            name, _, value = h.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Request(method=method, path=path, headers=headers, raw=data)

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self._stop.wait(self.interval_s):
                return
            conn.sendall(data[i:i + 1])

    @staticmethod
    def _head(status: str, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _mode_object(self, conn: socket.socket, req: Request) -> None:
        path = req.path.split("?", 1)[0]
        body = self.objects.get(path)
        if body is None:
            conn.sendall(self._head("404 Not Found", {"Content-Length": "0", "Connection": "close"}))
            return
        head = self._head("200 OK", {"Content-Length": str(len(body)), "ETag": '"abc123"',
                                     "Last-Modified": formatdate(1_700_000_000, usegmt=True), "Connection": "close"})
        conn.sendall(head + (b"" if req.method == "HEAD" else body))

    def _mode_record(self, conn: socket.socket, req: Request) -> None:
        conn.sendall(self._head("200 OK", {"Content-Length": "2", "Connection": "close"}) + b"ok")

    def _mode_trickle_headers(self, conn: socket.socket, req: Request) -> None:
        body = b"x" * 16
        self._drip(conn, self._head("200 OK", {"Content-Length": str(len(body))}) + body)

    def _mode_trickle_body(self, conn: socket.socket, req: Request) -> None:
        conn.sendall(self._head("200 OK", {"Content-Length": str(self.size)}))
        self._drip(conn, b"y" * self.size)

    def _mode_blackhole(self, conn: socket.socket, req: Request) -> None:
        self._stop.wait()

    def _mode_huge(self, conn: socket.socket, req: Request) -> None:
        conn.sendall(self._head("200 OK", {"Content-Length": str(HUGE_LENGTH)}))
        self._drip(conn, b"z" * 1000)

    def _mode_no_length(self, conn: socket.socket, req: Request) -> None:
        conn.sendall(self._head("200 OK", {"Connection": "close"}))
        try:
            conn.sendall(b"n" * self.size)
        finally:
            conn.shutdown(socket.SHUT_WR)

    def _mode_short(self, conn: socket.socket, req: Request) -> None:
        conn.sendall(self._head("200 OK", {"Content-Length": str(self.size)}) + b"s" * (self.size // 2))

    def _mode_endless_listing(self, conn: socket.socket, req: Request) -> None:
        if self._stop.wait(self.interval_s):
            return
        n = len(self.requests)
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f'<Contents><Key>pre/k{n}</Key></Contents><IsTruncated>true</IsTruncated>'
                f'<NextContinuationToken>t{n}</NextContinuationToken></ListBucketResult>').encode()
        conn.sendall(self._head("200 OK", {"Content-Length": str(len(body)), "Content-Type": "application/xml"}) + body)

    def _mode_redirect(self, conn: socket.socket, req: Request) -> None:
        conn.sendall(self._head("302 Found", {"Location": self.target, "Content-Length": "0"}))

    def _mode_status(self, conn: socket.socket, req: Request) -> None:
        reason = {403: "Forbidden", 500: "Internal Server Error", 503: "Service Unavailable"}.get(self.status, "X")
        conn.sendall(self._head(f"{self.status} {reason}", {"Content-Length": "0", "Connection": "close"}))


def self_signed(dir_: Path, name: str) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for `name` (and 127.0.0.1); (context, cert path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = dir_ / f"{name}.crt", dir_ / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, cert_path
