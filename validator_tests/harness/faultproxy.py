"""A loopback TCP proxy that injects network faults between a real client and a real server.

The client (boto3, the bittensor SDK) and the server (moto, the devnet) are
the real things; only the wire between them misbehaves. Each accepted
connection takes the next `Fault` from a schedule (then the default one), so a
test can say "fail the first two connections, then pass through" and watch
the client's retry/backoff recover, or "fail everything" and watch it give up.

Faults:
- `pass`: forward both ways untouched.
- `refuse`: accept and reset at once (RST, like a closed port behind a LB).
- `blackhole`: accept, read and never answer (a hung server; the client's timeout fires).
- `delay`: hold each upstream->client chunk `delay_s` before forwarding.
- `reset_after`: forward `after_bytes` of the response, then RST both sides.
- `truncate_after`: forward `after_bytes` of the response, then a clean FIN.
- `drop_on_request`: forward requests, but reset the client as soon as it sends
  its `after_requests`-th chunk after the first (mid-call drop on a long-lived
  WebSocket: the request is lost or executed with its reply lost).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass

FAULTS = ("pass", "refuse", "blackhole", "delay", "reset_after", "truncate_after", "drop_on_request")


@dataclass(frozen=True, kw_only=True)
class Fault:
    kind: str = "pass"
    after_bytes: int = 0
    delay_s: float = 0.0
    after_requests: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {FAULTS}")


PASS = Fault()


def _rst(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    """Listen on 127.0.0.1:<port>, forward to `upstream` with the scheduled faults."""

    def __init__(self, upstream_host: str, upstream_port: int, *, default: Fault = PASS) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.default = default
        self._schedule: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self.bytes_down = 0  # response bytes forwarded to clients, all connections
        self.faults_applied: list[str] = []
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._thread.start()

    # -- control ------------------------------------------------------------------------------

    def set_default(self, fault: Fault) -> None:
        with self._lock:
            self.default = fault

    def schedule(self, *faults: Fault) -> None:
        """Faults for the next connections, in order; later ones get the default."""
        with self._lock:
            self._schedule.extend(faults)

    def cut_all(self) -> None:
        """Reset every open connection now (a network blip under live clients)."""
        with self._lock:
            socks = list(self._open)
        for s in socks:
            _rst(s)

    def close(self) -> None:
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut_all()
        self._thread.join(timeout=2)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _next_fault(self) -> Fault:
        with self._lock:
            self.connections += 1
            fault = self._schedule.popleft() if self._schedule else self.default
            self.faults_applied.append(fault.kind)
            return fault

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            fault = self._next_fault()
            threading.Thread(target=self._handle, args=(client, fault), daemon=True).start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _untrack(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)

    def _handle(self, client: socket.socket, fault: Fault) -> None:
        if fault.kind == "refuse":
            _rst(client)
            return
        if fault.kind == "blackhole":
            self._track(client)
            client.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    if not client.recv(65536):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
            self._untrack(client)
            _rst(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _rst(client)
            return
        upstream.settimeout(None)
        self._track(client, upstream)
        done = threading.Event()
        up = threading.Thread(target=self._pump_up, args=(client, upstream, fault, done), daemon=True)
        up.start()
        self._pump_down(upstream, client, fault, done)
        up.join(timeout=5)
        self._untrack(client, upstream)

    def _pump_up(self, client: socket.socket, upstream: socket.socket, fault: Fault, done: threading.Event) -> None:
        """client -> upstream (requests)."""
        chunks = 0
        try:
            while not done.is_set():
                data = client.recv(65536)
                if not data:
                    upstream.shutdown(socket.SHUT_WR)
                    return
                chunks += 1
                if fault.kind == "drop_on_request" and chunks > fault.after_requests:
                    upstream.sendall(data)  # the server may execute it; the reply is lost
                    done.set()
                    _rst(client)
                    _rst(upstream)
                    return
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            done.set()

    def _pump_down(self, upstream: socket.socket, client: socket.socket, fault: Fault, done: threading.Event) -> None:
        """upstream -> client (responses), where most faults apply."""
        sent = 0
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    client.shutdown(socket.SHUT_WR)
                    break
                if fault.kind == "delay":
                    time.sleep(fault.delay_s)
                if fault.kind in ("reset_after", "truncate_after") and sent + len(data) >= fault.after_bytes:
                    client.sendall(data[: max(0, fault.after_bytes - sent)])
                    if fault.kind == "reset_after":
                        _rst(client)
                    else:
                        client.shutdown(socket.SHUT_RDWR)
                        client.close()
                    _rst(upstream)
                    break
                client.sendall(data)
                sent += len(data)
                with self._lock:
                    self.bytes_down += len(data)
        except OSError:
            pass
        finally:
            done.set()
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass
