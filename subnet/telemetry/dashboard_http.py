"""The dashboard's HTTP server: one page, its script and style, and JSON endpoints over a `DashboardFeed`.

Why this shape: operators open it in a browser on a machine with no internet
(or through an SSH tunnel), so everything it needs is served from the package
(`dashboard_static/`: plain HTML, CSS and a small script that draws its own
SVG charts; no CDN). It is read-only: GET and HEAD only, a fixed set of paths
(no file system lookups from the URL), a Content-Security-Policy that allows
nothing but its own origin. It binds to 127.0.0.1 unless told otherwise,
and then answers only requests whose Host header names a loopback address
(a web page elsewhere cannot read it through DNS rebinding).
Runs on daemon threads so a neuron serving it never waits on a browser.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from loguru import logger

from subnet.errors import ConfigError
from subnet.telemetry.dashboard import SECTIONS, DashboardFeed

STATIC: dict[str, tuple[str, str]] = {  # URL path -> (file in dashboard_static/, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _host_name(header: str | None) -> str:
    """The host part of a Host header ("127.0.0.1:9510" -> "127.0.0.1", "[::1]:9510" -> "[::1]")."""
    h = (header or "").strip().lower()
    if h.startswith("["):
        return h[: h.find("]") + 1] if "]" in h else h
    return h.rsplit(":", 1)[0] if ":" in h else h


def _asset(name: str) -> bytes:
    return resources.files("subnet.telemetry").joinpath("dashboard_static", name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: one debug line, not stderr per request
        logger.debug("dashboard {}: {}", self.client_address[0], fmt % args)

    def _send(self, status: int, body: bytes, ctype: str, *, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, head: bool) -> None:
        path = urlsplit(self.path).path
        if self.server.loopback_only and _host_name(self.headers.get("Host")) not in LOOPBACK_NAMES:
            self._send(403, b"this dashboard answers loopback names only\n", "text/plain; charset=utf-8", head=head)
            return
        try:
            if path in STATIC:
                name, ctype = STATIC[path]
                self._send(200, self.server.assets[name], ctype, head=head)
                return
            if path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8", head=head)
                return
            if path.startswith("/api/"):
                section = path[len("/api/"):]
                if section == "config":
                    body: Any = {"refresh_s": self.server.refresh_s, "sections": ["state", *SECTIONS]}
                elif section == "state":
                    body = self.server.feed.snapshot()
                elif section in SECTIONS:
                    body = self.server.feed.snapshot()[section]
                else:
                    self._send(404, b'{"error": "no such endpoint"}', "application/json", head=head)
                    return
                data = json.dumps(body, allow_nan=False, default=str, separators=(",", ":")).encode()
                self._send(200, data, "application/json", head=head)
                return
            self._send(404, b"not found\n", "text/plain; charset=utf-8", head=head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
        except Exception as exc:  # noqa: BLE001 - our bug: a 500 for this request, the server stays up
            logger.exception("dashboard: {} failed", path)
            try:
                self._send(500, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode(), "application/json",
                           head=head)
            except OSError:
                pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._route(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)

    def _refuse(self) -> None:
        self._send(405, b"read-only\n", "text/plain; charset=utf-8")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    feed: DashboardFeed
    refresh_s: float
    assets: dict[str, bytes]
    loopback_only: bool


class DashboardServer:
    """The dashboard on `host:port` (port 0: one the OS picks), on its own daemon thread; `close()` stops it."""

    def __init__(self, feed: DashboardFeed, host: str = "127.0.0.1", port: int = 0, *, refresh_s: float = 5.0) -> None:
        try:
            httpd = _Server((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve the dashboard on {host}:{port}: {exc}",
                              remediation="pick a free --dashboard.port (or 0 to turn the dashboard off)") from exc
        httpd.feed, httpd.refresh_s = feed, float(refresh_s)
        httpd.loopback_only = host in LOOPBACK_NAMES or host.startswith("127.")
        httpd.assets = {name: _asset(name) for name, _ in set(STATIC.values())}
        self._httpd = httpd
        self.feed = feed
        self.host = host
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(target=httpd.serve_forever, name="dashboard", daemon=True)
        self._thread.start()
        logger.info("dashboard on {} (events from {})", self.url, feed.events_dir)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
