"""Reading PEERS' stores: anonymous, and bounded in bytes and in wall-clock time.

A peer's store is the peer's server, so every read here assumes it is hostile:

- Anonymous: plain unsigned HTTP(S) over `http.client`, never this node's AWS
  credentials (anonymous S3 GET/HEAD/ListObjectsV2 need no signature), no
  Authorization, cookies or x-amz-* headers, no proxies, no redirects (a 3xx
  is a refusal).
- A wall-clock deadline per request, not per socket read: DNS, connect, TLS
  handshake, headers and body all draw from one deadline, and every socket
  read gets only the time left, so a server trickling one byte a second fails
  at the deadline like one that never answers. The deadline is
  `request_timeout_s`, extended once the headers are in by
  `length / min_rate_bytes_per_s` (length = Content-Length, or `max_bytes`
  without one) so a large object that arrives at a sane rate fits.
- One retry layer: connection errors and 5xx are retried, `attempts` in all,
  with capped exponential backoff; a timeout, an oversize, a redirect or any
  other refusal is not retried.
- Worst case for one read of at most `max_bytes`:
      attempts x (request_timeout_s + max_bytes / min_rate_bytes_per_s) + backoff
  where backoff <= sum over i < attempts-1 of 1.5 x min(backoff_max_s, backoff_s x 2**i).
  With the defaults (10 s, 2 attempts, 4 MiB/s, 0.5 s) a 64 MiB artifact GET
  costs at most 2 x (10 + 16) + 0.75 = 52.75 s, a HEAD (`modified`) 20.75 s,
  and a whole listing (all its pages together) what one page may cost:
  2 x (10 + 1) + 0.75 = 22.75 s.
- Bytes: a Content-Length over `max_bytes` is refused before the body is read;
  a body is never read past `max_bytes + 1`.
- SSRF: under a `public_only` policy the host is resolved here, the read is
  refused if ANY address is not public, and the socket connects to the checked
  address (Host header and TLS SNI carry the name), so DNS rebinding cannot
  switch it. Without `public_only` (devnet, private networks) the same path is
  taken without the address check.

file:// peers (devnet only) get `LocalPeerReader`: every path segment is opened
relative to the store root with O_NOFOLLOW, the object must be a regular file
(a FIFO, device, socket, symlink or directory is refused), reads are bounded,
and nothing is ever created.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import ipaddress
import os
import random
import re
import select
import socket
import ssl
import stat as stat_mod
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol, runtime_checkable
from urllib.parse import quote

from loguru import logger

from subnet.errors import ConfigError, StorageError
from subnet.storage.base import BadKey, validate_key, validate_prefix
from subnet.storage.location import (
    Endpoint,
    IPAddress,
    LocalLocation,
    LocationPolicy,
    S3Location,
    is_public_ip,
    parse_location,
)

USER_AGENT = "tessera-peer-reader/1"
_DIGITS = re.compile(r"^[0-9]{1,19}\Z")  # ASCII only: str.isdigit() accepts '²'
Resolver = Callable[[str, int], "list[IPAddress]"]


# --------------------------------------------------------------------------- values and errors


@dataclass(frozen=True, kw_only=True)
class PeerReadOptions:
    """The budget of one peer read; see the module docstring for the worst case it implies."""

    request_timeout_s: float = 10.0  # wall clock per request: DNS + connect + TLS + headers (+ body allowance)
    attempts: int = 2  # requests per read, retried only on connection errors and 5xx
    min_rate_bytes_per_s: float = 4 * 1024 * 1024  # body allowance: the deadline grows by length / this
    backoff_s: float = 0.5  # sleep backoff_s * 2**i (+ up to 50 % jitter) between attempts
    backoff_max_s: float = 4.0
    list_max_pages: int = 10  # ListObjectsV2 pages per listing
    list_page_keys: int = 1000  # keys asked for per page (S3 caps it at 1000)
    list_page_bytes: int = 4 * 1024 * 1024  # cap on one listing page's XML
    list_max_keys: int = 10_000  # cap on keys in one local listing

    def __post_init__(self) -> None:
        for name in ("request_timeout_s", "attempts", "min_rate_bytes_per_s", "list_max_pages", "list_page_keys",
                     "list_page_bytes", "list_max_keys"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"PeerReadOptions.{name} must be > 0, got {getattr(self, name)!r}")
        if self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ConfigError("PeerReadOptions backoff must be >= 0")

    def request_budget_s(self, max_bytes: int, timeout_s: float | None = None) -> float:
        """The longest one request for at most `max_bytes` may take."""
        base = self.request_timeout_s if timeout_s is None else timeout_s
        return base + max(0, max_bytes) / self.min_rate_bytes_per_s

    def backoff(self, attempt: int) -> float:
        """Sleep after failed attempt `attempt` (0-based), with jitter."""
        return min(self.backoff_max_s, self.backoff_s * 2**attempt) * (1 + 0.5 * random.random())

    def worst_case_s(self, max_bytes: int, timeout_s: float | None = None) -> float:
        """Upper bound on the wall-clock time of one read (all attempts and backoffs)."""
        sleeps = sum(1.5 * min(self.backoff_max_s, self.backoff_s * 2**i) for i in range(self.attempts - 1))
        return self.attempts * self.request_budget_s(max_bytes, timeout_s) + sleeps


@dataclass(frozen=True, kw_only=True)
class PeerObject:
    """An object read from a peer; `sha256` is computed here, never taken from the peer."""

    data: bytes
    sha256: str
    etag: str | None = None
    modified: float | None = None  # unix seconds from Last-Modified (the peer's clock), if given


@dataclass(frozen=True, kw_only=True)
class PeerStat:
    """What a HEAD says about an object."""

    size: int | None
    etag: str | None = None
    modified: float | None = None


class PeerStoreError(StorageError):
    """A peer's store could not be read; the message names the location."""


class PeerTimeout(PeerStoreError):
    """The request's wall-clock deadline passed (slow, trickling or silent server)."""


class PeerTooLarge(PeerStoreError):
    """The object is (or claims to be) larger than the caller's byte limit."""


class PeerUnreachable(PeerStoreError):
    """Connection refused/reset, DNS failure, a cut response or a 5xx, after every attempt."""


class PeerRefused(PeerStoreError):
    """We will not read this: bad status, redirect, non-public address, non-regular file, bad listing..."""


@runtime_checkable
class PeerReader(Protocol):
    """Read-only view of a peer's store (a `Store` for subnet.sync: get + list)."""

    location: str

    def fetch(self, key: str, max_bytes: int, *, timeout_s: float | None = None) -> PeerObject | None:
        """The object at `key`, None if absent; PeerStoreError otherwise (PeerTooLarge over `max_bytes`)."""
        ...

    def get(self, key: str, max_bytes: int) -> bytes | None:
        """ArtifactStore contract: bytes, or None if absent or over `max_bytes`; PeerStoreError otherwise."""
        ...

    def stat(self, key: str, *, timeout_s: float | None = None) -> PeerStat | None: ...

    def modified(self, key: str) -> float | None: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]: ...


def open_peer(location: str, policy: LocationPolicy, options: PeerReadOptions | None = None, *,
              resolver: Resolver | None = None) -> PeerReader:
    """A reader for a peer's committed `location`; BadLocation if the grammar or the policy refuses it."""
    if policy.own:
        raise ConfigError("peer locations must not be parsed with the own-store policy")
    parsed = parse_location(location, policy)
    opts = options or PeerReadOptions()
    if isinstance(parsed, LocalLocation):
        return LocalPeerReader(location, parsed.path, opts)
    return HttpPeerReader(location, parsed, public_only=policy.public_only, options=opts, resolver=resolver)


# --------------------------------------------------------------------------- shared read logic


class _ReaderBase:
    location: str

    def get(self, key: str, max_bytes: int) -> bytes | None:
        try:
            obj = self.fetch(key, max_bytes)  # type: ignore[attr-defined]
        except PeerTooLarge as e:
            logger.warning("{}; treated as absent", e)
            return None
        return None if obj is None else obj.data

    def modified(self, key: str) -> float | None:
        st = self.stat(key)  # type: ignore[attr-defined]
        if st is None:
            return None
        return st.modified if st.modified is not None else time.time()

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None  # type: ignore[attr-defined]


def _object(data: bytes, etag: str | None, modified: float | None) -> PeerObject:
    return PeerObject(data=data, sha256=hashlib.sha256(data).hexdigest(), etag=etag, modified=modified)


# --------------------------------------------------------------------------- HTTP(S)


class HttpPeerReader(_ReaderBase):
    """Anonymous S3 reads (path-style or virtual-hosted) with a deadline per request."""

    def __init__(self, location: str, parsed: S3Location, *, public_only: bool, options: PeerReadOptions,
                 resolver: Resolver | None = None) -> None:
        self.location = location
        self.public_only = public_only
        self.options = options
        self._resolver = resolver or _getaddrinfo
        self._key_prefix = f"{parsed.prefix}/" if parsed.prefix else ""
        self.endpoint, self._path_prefix = _s3_target(parsed)

    # -- public API
    def fetch(self, key: str, max_bytes: int, *, timeout_s: float | None = None) -> PeerObject | None:
        path = self._path_prefix + "/" + quote(self._key_prefix + validate_key(key), safe="/-_.~")
        resp = self._with_retries(f"get {key}", lambda: self._once("GET", path, max_bytes, timeout_s))
        return None if resp is None else _object(resp.body, resp.etag, resp.modified)

    def stat(self, key: str, *, timeout_s: float | None = None) -> PeerStat | None:
        path = self._path_prefix + "/" + quote(self._key_prefix + validate_key(key), safe="/-_.~")
        resp = self._with_retries(f"head {key}", lambda: self._once("HEAD", path, 0, timeout_s))
        return None if resp is None else PeerStat(size=resp.length, etag=resp.etag, modified=resp.modified)

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        full = self._key_prefix + prefix
        keys: set[str] = set()
        token: str | None = None
        cap = time.monotonic() + self.options.worst_case_s(self.options.list_page_bytes)  # all pages together
        for _page in range(self.options.list_max_pages):
            query = f"list-type=2&max-keys={self.options.list_page_keys}&prefix=" + quote(full, safe="")
            if token is not None:
                query += "&continuation-token=" + quote(token, safe="")
            target = f"{self._path_prefix}?{query}" if self._path_prefix else f"/?{query}"
            # _with_retries calls the lambda before this iteration ends, so the late binding of target is harmless.
            resp = self._with_retries(f"list {prefix}", lambda: self._once("GET", target,  # noqa: B023
                                                                           self.options.list_page_bytes, None, cap),
                                      cap)
            if resp is None:  # NoSuchBucket: nothing published yet
                return []
            page_keys, token = _parse_listing(resp.body, self.location)
            for k in page_keys:
                if not k.startswith(self._key_prefix):
                    continue
                rel = k[len(self._key_prefix):]
                try:
                    keys.add(validate_key(rel))
                except BadKey:
                    logger.debug("peer store {}: ignoring listed key {!r}", self.location, rel[:80])
            if token is None:
                return sorted(keys)
        raise PeerRefused(f"peer store {self.location}: listing {prefix!r} is longer than "
                          f"{self.options.list_max_pages} pages")

    # -- one read = a few attempts
    def _with_retries(self, what: str, once: Callable[[], _Response | None],
                      cap: float | None = None) -> _Response | None:
        opts = self.options
        for attempt in range(opts.attempts):
            try:
                return once()
            except PeerUnreachable as e:
                if attempt + 1 >= opts.attempts:
                    raise PeerUnreachable(f"{e} (after {opts.attempts} attempts)") from e
                delay = opts.backoff(attempt)
                if cap is not None:
                    delay = min(delay, max(0.0, cap - time.monotonic()))
                logger.debug("peer store {}: {} failed ({}), attempt {}/{}, retrying in {:.2f}s", self.location,
                             what, e, attempt + 1, opts.attempts, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _once(self, method: str, target: str, max_bytes: int, timeout_s: float | None,
              cap: float | None = None) -> _Response | None:
        """One request; None on 404; never runs past `cap` (monotonic). Raises PeerStoreError subclasses only."""
        opts = self.options
        base = opts.request_timeout_s if timeout_s is None else timeout_s
        start = time.monotonic()
        deadline = _Deadline(start + base, cap)
        ep = self.endpoint
        where = f"peer store {self.location}"
        sock: socket.socket | None = None
        conn: http.client.HTTPConnection | None = None
        try:
            addrs = self._addresses(ep, deadline)
            sock = _connect(addrs, ep.effective_port, deadline, where)
            if ep.scheme == "https":
                sock = _tls(sock, ep.host, deadline)
            conn = http.client.HTTPConnection(ep.host, ep.effective_port)  # never connects: the socket is ours
            conn.sock = _DeadlineSocket(sock, deadline)  # type: ignore[assignment]
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in (("Host", ep.netloc), ("User-Agent", USER_AGENT), ("Accept", "*/*"),
                                ("Accept-Encoding", "identity"), ("Connection", "close")):
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            return self._read(resp, method, max_bytes, deadline, start + base, where)
        except PeerStoreError:
            raise
        except TimeoutError as e:
            raise PeerTimeout(f"{where}: {method} took longer than its {deadline.total(start):.1f}s deadline") from e
        except ssl.SSLError as e:
            raise PeerRefused(f"{where}: TLS failed: {e}") from e
        except (http.client.IncompleteRead, ConnectionError) as e:  # incl. RemoteDisconnected
            raise PeerUnreachable(f"{where}: connection cut ({type(e).__name__})") from e
        except http.client.HTTPException as e:  # bad status line, header line too long, too many headers
            raise PeerRefused(f"{where}: malformed HTTP response ({type(e).__name__})") from e
        except OSError as e:
            raise PeerUnreachable(f"{where}: {type(e).__name__}: {e}") from e
        except Exception as e:  # noqa: BLE001 - whatever a hostile response provokes stays a typed refusal
            raise PeerRefused(f"{where}: unreadable response ({type(e).__name__}: {str(e)[:120]})") from e
        finally:
            if conn is not None:
                conn.close()
            if sock is not None:
                sock.close()

    def _addresses(self, ep: Endpoint, deadline: _Deadline) -> list[IPAddress]:
        ip = ep.ip
        addrs = [ip] if ip is not None else _resolve_within(self._resolver, ep.host, ep.effective_port, deadline,
                                                            self.location)
        if not addrs:
            raise PeerUnreachable(f"peer store {self.location}: {ep.host} has no address")
        if self.public_only:
            bad = [a for a in addrs if not is_public_ip(a)]
            if bad:
                raise PeerRefused(f"peer store {self.location}: {ep.host} resolves to non-public address {bad[0]}")
        return addrs

    def _read(self, resp: http.client.HTTPResponse, method: str, max_bytes: int, deadline: _Deadline,
              base_at: float, where: str) -> _Response | None:
        status = resp.status
        if status == 404:
            return None
        if 300 <= status < 400:
            to = (resp.getheader("Location") or "")[:80]
            raise PeerRefused(f"{where}: redirect {status} to {to!r} refused (redirects are never followed)")
        if status >= 500:
            raise PeerUnreachable(f"{where}: server error {status}")
        if status == 403:
            raise PeerRefused(f"{where}: access denied (403); the bucket must allow anonymous reads")
        if status != 200:
            raise PeerRefused(f"{where}: unexpected status {status}")
        length = _content_length(resp, where)
        etag, modified = _etag(resp), _last_modified(resp)
        if method == "HEAD":
            return _Response(body=b"", length=length, etag=etag, modified=modified)
        if length is not None and length > max_bytes:
            raise PeerTooLarge(f"{where}: object is {length} bytes, over the {max_bytes}-byte limit")
        expected = length if length is not None else max_bytes
        deadline.extend(base_at + expected / self.options.min_rate_bytes_per_s)
        body = resp.read(max_bytes + 1) if length is None else resp.read(length)
        if len(body) > max_bytes:
            raise PeerTooLarge(f"{where}: body grew past the {max_bytes}-byte limit")
        if length is not None and len(body) != length:
            raise PeerUnreachable(f"{where}: got {len(body)} of {length} bytes")
        return _Response(body=body, length=len(body), etag=etag, modified=modified)


@dataclass(frozen=True, kw_only=True)
class _Response:
    body: bytes
    length: int | None
    etag: str | None
    modified: float | None


def _s3_target(loc: S3Location) -> tuple[Endpoint, str]:
    """(where to connect, path prefix): path-style "/bucket" or virtual-hosted "" with bucket.host."""
    if loc.endpoint is None:
        region = loc.region or "us-east-1"
        host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
        ep = Endpoint(scheme="https", host=host)
        virtual = loc.addressing == "virtual" or (loc.addressing in (None, "auto") and "." not in loc.bucket)
    else:
        ep = loc.endpoint
        virtual = loc.addressing == "virtual" and ep.ip is None
    if virtual:
        return Endpoint(scheme=ep.scheme, host=f"{loc.bucket}.{ep.host}", port=ep.port), ""
    return ep, f"/{loc.bucket}"


def _content_length(resp: http.client.HTTPResponse, where: str) -> int | None:
    values = {v.strip() for v in resp.msg.get_all("Content-Length") or []}
    if not values:
        return None
    if len(values) != 1 or not _DIGITS.match(next(iter(values))):
        raise PeerRefused(f"{where}: malformed Content-Length")
    return int(values.pop())


def _etag(resp: http.client.HTTPResponse) -> str | None:
    value = (resp.getheader("ETag") or "").strip().strip('"')
    return value if value and len(value) <= 256 and value.isprintable() else None


def _last_modified(resp: http.client.HTTPResponse) -> float | None:
    value = resp.getheader("Last-Modified")
    if not value or len(value) > 64:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


MAX_LISTING_DEPTH = 6  # ListBucketResult > Contents > Key is depth 3; Owner > ID is 4
MAX_LISTING_ELEMENTS = 16 * 1024  # ~1000 keys x (Contents, Key, LastModified, ETag, Size, StorageClass) + slack


def _check_listing_shape(body: bytes, location: str) -> None:
    """One streaming pass with expat before any tree is built: UTF-8 only, no DTD, bounded depth and size.

    A byte search for "<!DOCTYPE" misses a UTF-16 document, and a tree of
    deeply nested elements costs memory before any check could run; expat's
    handlers see every declaration whatever the encoding, and stop at once.
    """
    import xml.parsers.expat

    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:64]:
        raise PeerRefused(f"peer store {location}: listing is not UTF-8")
    parser = xml.parsers.expat.ParserCreate(encoding="utf-8")
    depth = [0, 0]  # current depth, elements seen

    def start(_name: str, _attrs: dict) -> None:
        depth[0] += 1
        depth[1] += 1
        if depth[0] > MAX_LISTING_DEPTH or depth[1] > MAX_LISTING_ELEMENTS:
            raise PeerRefused(f"peer store {location}: listing nests deeper than {MAX_LISTING_DEPTH} or has more "
                              f"than {MAX_LISTING_ELEMENTS} elements")

    def end(_name: str) -> None:
        depth[0] -= 1

    def dtd(*_args: object) -> None:
        raise PeerRefused(f"peer store {location}: listing carries a DTD")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = dtd
    parser.EntityDeclHandler = dtd
    try:
        parser.Parse(body, True)
    except xml.parsers.expat.ExpatError as e:
        raise PeerRefused(f"peer store {location}: listing is not XML ({e})") from None


def _parse_listing(body: bytes, location: str) -> tuple[list[str], str | None]:
    """Keys and the continuation token (None when the listing is complete) of one ListObjectsV2 page."""
    _check_listing_shape(body, location)
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise PeerRefused(f"peer store {location}: listing is not XML ({e})") from None

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    if local(root.tag) != "ListBucketResult":
        raise PeerRefused(f"peer store {location}: listing has root <{local(root.tag)[:40]}>")
    keys, truncated, token = [], False, None
    for child in root:
        name = local(child.tag)
        if name == "Contents":
            for sub in child:
                if local(sub.tag) == "Key" and sub.text:
                    keys.append(sub.text)
        elif name == "IsTruncated":
            truncated = (child.text or "").strip().lower() == "true"
        elif name == "NextContinuationToken":
            token = (child.text or "").strip()
    if not truncated:
        return keys, None
    if not token or len(token) > 1024 or not token.isascii() or not token.isprintable():
        raise PeerRefused(f"peer store {location}: truncated listing without a usable continuation token")
    return keys, token


# --------------------------------------------------------------------------- sockets under a deadline


class _Deadline:
    """An absolute deadline (time.monotonic), extended once the body length is known, never past `cap`."""

    def __init__(self, at: float, cap: float | None = None) -> None:
        self.cap = cap
        self.at = at if cap is None else min(at, cap)

    def extend(self, at: float) -> None:
        self.at = max(self.at, at if self.cap is None else min(at, self.cap))

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        return left

    def total(self, start: float) -> float:
        return self.at - start


class _DeadlineSocket:
    """Socket facade for http.client: every send/recv gets only the time left before the deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._deadline.left())
        self._sock.sendall(data)

    def recv_into(self, buf: memoryview, nbytes: int = 0) -> int:
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buf, nbytes)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError("only binary reads are supported")
        return io.BufferedReader(_DeadlineRaw(self))

    def close(self) -> None:
        """No-op: http.client closes the connection while the response may still read; `_once` closes the socket."""


class _DeadlineRaw(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # noqa: ANN001 - a writable buffer
        return self._sock.recv_into(memoryview(buf).cast("B"))


def _getaddrinfo(host: str, port: int) -> list[IPAddress]:
    out: list[IPAddress] = []
    for family, _type, _proto, _name, addr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family in (socket.AF_INET, socket.AF_INET6):
            ip = ipaddress.ip_address(str(addr[0]).split("%", 1)[0])
            if ip not in out:
                out.append(ip)
    return out


def _resolve_within(resolver: Resolver, host: str, port: int, deadline: _Deadline, location: str) -> list[IPAddress]:
    """Resolve in a daemon thread so a hung resolver costs at most the time left."""
    result: list[object] = []
    done = threading.Event()

    def run() -> None:
        try:
            result.append(resolver(host, port))
        except Exception as e:  # noqa: BLE001 - reported below as unreachable
            result.append(e)
        done.set()

    threading.Thread(target=run, name="peer-dns", daemon=True).start()
    if not done.wait(deadline.left()):
        raise TimeoutError(f"resolving {host} took too long")
    value = result[0]
    if isinstance(value, BaseException):
        raise PeerUnreachable(f"peer store {location}: cannot resolve {host} ({type(value).__name__})")
    return list(value)  # type: ignore[call-overload]


def _connect(addrs: list[IPAddress], port: int, deadline: _Deadline, where: str) -> socket.socket:
    last: OSError | None = None
    for ip in addrs:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.left())
            sock.connect((str(ip), port))
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as e:
            sock.close()
            last = e
    raise PeerUnreachable(f"{where}: cannot connect ({type(last).__name__}: {last})")


def _tls_context() -> ssl.SSLContext:
    """The system trust store, certificate and host-name checks on (a seam for tests' own CA)."""
    return ssl.create_default_context()


def _tls(sock: socket.socket, server_name: str, deadline: _Deadline) -> socket.socket:
    """TLS with certificate and name checks; the handshake is bounded by the deadline too."""
    ctx = _tls_context()
    tls = ctx.wrap_socket(sock, server_hostname=server_name, do_handshake_on_connect=False)
    try:
        tls.setblocking(False)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                ready = select.select([tls], [], [], deadline.left())[0]
            except ssl.SSLWantWriteError:
                ready = select.select([], [tls], [], deadline.left())[1]
            if not ready:
                raise TimeoutError("TLS handshake took too long")
        tls.setblocking(True)
    except BaseException:
        tls.close()
        raise
    return tls


# --------------------------------------------------------------------------- file:// (devnet)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
_MAX_DEPTH = 16


class LocalPeerReader(_ReaderBase):
    """A peer's directory on this machine (devnet), read without following links and never created."""

    def __init__(self, location: str, root: str, options: PeerReadOptions) -> None:
        self.location = location
        self.root = root
        self.options = options

    def fetch(self, key: str, max_bytes: int, *, timeout_s: float | None = None) -> PeerObject | None:
        opened = self._open_file(key)
        if opened is None:
            return None
        fd, st = opened
        try:
            if st.st_size > max_bytes:
                raise PeerTooLarge(f"peer store {self.location}: {key} is {st.st_size} bytes, over the "
                                   f"{max_bytes}-byte limit")
            chunks, got = [], 0
            while got <= max_bytes:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except OSError as e:
            raise PeerUnreachable(f"peer store {self.location}: cannot read {key}: {e}") from e
        finally:
            os.close(fd)
        if got > max_bytes:
            raise PeerTooLarge(f"peer store {self.location}: {key} grew past {max_bytes} bytes while reading")
        return _object(b"".join(chunks), None, st.st_mtime)

    def stat(self, key: str, *, timeout_s: float | None = None) -> PeerStat | None:
        opened = self._open_file(key)
        if opened is None:
            return None
        fd, st = opened
        os.close(fd)
        return PeerStat(size=st.st_size, modified=st.st_mtime)

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        fd = self._open_dir(base.split("/") if base else [])
        if fd is None:
            return []
        out: list[str] = []
        try:
            self._walk(fd, base, 0, prefix, out)
        finally:
            os.close(fd)
        return sorted(out)

    # -- internals
    def _refuse(self, what: str, e: OSError | None = None) -> PeerRefused:
        return PeerRefused(f"peer store {self.location}: {what}" + (f" ({e.strerror})" if e else ""))

    def _open_dir(self, segments: list[str]) -> int | None:
        """An fd for root/segments..., None if absent; symlinks anywhere below the root are refused."""
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._refuse("store root is not a readable directory", e) from e
        for seg in segments:
            try:
                nxt = os.open(seg, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                return None
            except OSError as e:
                link = e.errno in (errno.ELOOP, errno.EMLINK) or _is_link(seg, fd)
                os.close(fd)
                raise self._refuse(f"{seg!r} is a symlink" if link else f"{seg!r} is not a directory", e) from e
            os.close(fd)
            fd = nxt
        return fd

    def _open_file(self, key: str) -> tuple[int, os.stat_result] | None:
        *dirs, name = validate_key(key).split("/")
        dfd = self._open_dir(dirs)
        if dfd is None:
            return None
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EMLINK):
                raise self._refuse(f"{key} is a symlink", e) from e
            raise self._refuse(f"{key} cannot be opened", e) from e
        finally:
            os.close(dfd)
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            os.close(fd)
            raise self._refuse(f"{key} is not a regular file ({_kind(st.st_mode)})")
        return fd, st

    def _walk(self, fd: int, rel: str, depth: int, prefix: str, out: list[str]) -> None:
        if depth > _MAX_DEPTH:
            return
        for entry in _scandir(fd):
            key = f"{rel}/{entry.name}" if rel else entry.name
            try:
                validate_key(key)
            except BadKey:
                continue  # temp files (.tmp-...), odd names: not objects
            if entry.is_dir(follow_symlinks=False):
                if not (key + "/").startswith(prefix) and not prefix.startswith(key + "/"):
                    continue
                try:
                    sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # replaced by a link or removed meanwhile
                try:
                    self._walk(sub, key, depth + 1, prefix, out)
                finally:
                    os.close(sub)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                out.append(key)
                if len(out) > self.options.list_max_keys:
                    raise self._refuse(f"listing {prefix!r} has more than {self.options.list_max_keys} keys")


def _is_link(name: str, dir_fd: int) -> bool:
    """lstat (never follows, never opens): O_DIRECTORY|O_NOFOLLOW reports a link as ENOTDIR on Linux."""
    try:
        return stat_mod.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _scandir(fd: int) -> list[os.DirEntry]:
    """Entries of the directory open at `fd` (scandir works on its own duplicate; `fd` stays open)."""
    with os.scandir(fd) as it:
        return list(it)


def _kind(mode: int) -> str:
    for test, name in ((stat_mod.S_ISDIR, "directory"), (stat_mod.S_ISFIFO, "FIFO"), (stat_mod.S_ISLNK, "symlink"),
                       (stat_mod.S_ISSOCK, "socket"), (stat_mod.S_ISCHR, "character device"),
                       (stat_mod.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"
