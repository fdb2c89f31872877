"""The store-location grammar: one strict parser for our own store and for peers'.

A peer's location is attacker-controlled text read from chain, so it is parsed
here into a typed value before anything opens a socket or touches the disk;
everything else (boto3, urllib, pathlib) only ever sees what this module
accepted. The grammar, whole:

    location  = s3 | file | path                       (at most 512 characters)
    s3        = "s3://" bucket [ "/" prefix ] [ "?" param *( "&" param ) ]
    param     = ( "endpoint" | "region" | "addressing" ) "=" value   (each at most once)
    endpoint  = ( "http" | "https" ) "://" host [ ":" port ] [ "/" ]
    host      = LDH DNS name (ASCII) | IPv4 dotted quad | "[" IPv6 "]"
    region    = [a-z0-9][a-z0-9-]{0,30}
    addressing= "path" | "virtual" | "auto"
    file      = "file://" [ "localhost" ] absolute-posix-path
    path      = absolute POSIX path, "~/..." or relative   (our own store only)

Every character, before and after percent-decoding, is printable ASCII with no
whitespace (no CR/LF/NUL). No credentials, userinfo, fragments or unknown
parameters. Parsing is pure: no DNS, no filesystem. A `public_only` policy
(real networks) additionally wants https endpoints and refuses IP literals
that are not public; DNS names are checked on their resolved addresses when a
connection is made (subnet/storage/peer.py), which is the only place a check
cannot be raced by DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from subnet.errors import ConfigError
from subnet.storage.base import BadKey, validate_key

MAX_LOCATION_LEN = 512
Addressing = Literal["path", "virtual", "auto"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PRINTABLE = re.compile(r"^[\x21-\x7e]*\Z")  # printable ASCII, no space
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_DRIVE = re.compile(r"^/?[A-Za-z]:([/\\]|\Z)")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}\Z")
_PORT = re.compile(r"^[0-9]{1,5}\Z")
_PARAMS = ("endpoint", "region", "addressing")
_ADDRESSING = ("path", "virtual", "auto")
_SECRET_HINTS = ("secret", "access_key", "password", "token", "credential", "key_id", "signature", "auth")
# Ranges Python's `is_global` misses or that embed an IPv4 address we must check too.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_6TO4 = ipaddress.IPv6Network("2002::/16")


class BadLocation(ConfigError):
    """A store location this node refuses to use (malformed, unsafe, or not allowed by the policy)."""


@dataclass(frozen=True, kw_only=True)
class LocationPolicy:
    """What a location may point at. The defaults are the strictest (a peer on a real network)."""

    allow_local: bool = False
    """file:// locations (reads this node's own disk): only meaningful on a single-machine devnet."""
    public_only: bool = True
    """Endpoints must be https and reach only public addresses (real networks)."""
    own: bool = False
    """Our own store from our own config: plain, ~ and relative paths allowed. Never set for a peer."""

    @classmethod
    def own_store(cls) -> LocationPolicy:
        """Our configured store: any endpoint (e.g. http://127.0.0.1:9000 for MinIO), local paths."""
        return cls(allow_local=True, public_only=False, own=True)

    @classmethod
    def devnet(cls) -> LocationPolicy:
        """Peers on a single-machine devnet: file:// and loopback http endpoints."""
        return cls(allow_local=True, public_only=False)

    @classmethod
    def network(cls, *, allow_private_endpoints: bool = False) -> LocationPolicy:
        """Peers on a real network; `allow_private_endpoints` for operators on a private network."""
        return cls(allow_local=False, public_only=not allow_private_endpoints)


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """An S3 service endpoint: scheme, host (lower-case name or IP literal) and optional port."""

    scheme: Literal["http", "https"]
    host: str
    port: int | None = None

    @property
    def ip(self) -> IPAddress | None:
        """The host as an IP address when it is a literal, else None (a DNS name)."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (443 if self.scheme == "https" else 80)

    @property
    def netloc(self) -> str:
        """host[:port] as written in a URL or a Host header (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"


@dataclass(frozen=True, kw_only=True)
class S3Location:
    """s3://bucket/prefix?endpoint=&region=&addressing= (endpoint None = AWS)."""

    bucket: str
    prefix: str = ""
    endpoint: Endpoint | None = None
    region: str | None = None
    addressing: Addressing | None = None


@dataclass(frozen=True, kw_only=True)
class LocalLocation:
    """A directory on this machine: absolute for peers; may start with ~ or be relative for our own store."""

    path: str


StoreLocation = S3Location | LocalLocation


def parse_location(text: str, policy: LocationPolicy) -> StoreLocation:
    """Parse `text` under `policy`; BadLocation (a ConfigError) with a short reason on any refusal."""
    if not isinstance(text, str):
        raise BadLocation("store location must be a string")
    if not text:
        raise BadLocation("store location is empty")
    if len(text) > MAX_LOCATION_LEN:
        raise BadLocation(f"store location is longer than {MAX_LOCATION_LEN} characters")
    _printable(text, "store location")
    scheme = _SCHEME.match(text)
    if _DRIVE.match(text) or (scheme and len(scheme.group(1)) == 1):
        raise BadLocation(f"{_short(text)}: Windows drive-letter paths are not supported")
    if "\\" in text:
        raise BadLocation(f"{_short(text)}: backslashes are not allowed")
    if text.startswith("s3://"):
        return _parse_s3(text, policy)
    if text.startswith("file://"):
        return _parse_file(text, policy)
    if scheme:
        raise BadLocation(f"unsupported store scheme {scheme.group(1)[:16]!r} (use s3:// or file://)")
    if not policy.own:
        raise BadLocation(f"{_short(text)}: a peer's store must be s3:// (or file:// on the devnet)")
    _check_path(text, absolute=False)
    return LocalLocation(path=text)


# --------------------------------------------------------------------------- s3


def _parse_s3(text: str, policy: LocationPolicy) -> S3Location:
    rest = text[len("s3://"):]
    if "#" in rest:
        raise BadLocation(f"{_short(text)}: fragments (#) are not allowed")
    head, _, query = rest.partition("?")
    bucket, slash, path = head.partition("/")
    if "@" in bucket:
        raise BadLocation("store location must not carry credentials (user:password@); it is published on chain",
                          remediation="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment")
    _check_bucket(bucket)
    prefix = _parse_prefix(unquote(path)) if slash else ""
    params = _parse_query(query)
    endpoint = _parse_endpoint(params["endpoint"], policy) if "endpoint" in params else None
    region = params.get("region")
    if region is not None and not _REGION.match(region):
        raise BadLocation(f"region {region[:40]!r} is not valid (lower-case letters, digits and '-', at most 31)")
    addressing = params.get("addressing")
    if addressing is not None and addressing not in _ADDRESSING:
        raise BadLocation(f"addressing {addressing[:20]!r} is not one of {', '.join(_ADDRESSING)}")
    return S3Location(bucket=bucket, prefix=prefix, endpoint=endpoint, region=region,
                      addressing=addressing)  # type: ignore[arg-type]


def _check_bucket(bucket: str) -> None:
    """S3 bucket naming rules (the subset every S3-compatible service accepts)."""
    if not _BUCKET.match(bucket) or ".." in bucket or ".-" in bucket or "-." in bucket:
        raise BadLocation(f"bucket {bucket[:70]!r} is not a valid S3 bucket name (3-63 of a-z 0-9 . -)")
    if _looks_like_ipv4(bucket):
        raise BadLocation(f"bucket {bucket!r} must not look like an IP address")
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        raise BadLocation(f"bucket {bucket!r} uses a reserved prefix or suffix")


def _parse_prefix(path: str) -> str:
    _printable(path, "prefix")
    prefix = path[:-1] if path.endswith("/") else path
    if not prefix:
        return ""
    try:
        return validate_key(prefix)
    except BadKey as e:
        raise BadLocation(f"invalid prefix: {e}") from None


def _parse_query(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    if not query:
        return params
    for pair in query.split("&"):
        raw_name, eq, raw_value = pair.partition("=")
        name = unquote(raw_name)
        _printable(name, "parameter name")
        if any(hint in name.lower() for hint in _SECRET_HINTS):
            raise BadLocation(f"store location must not carry credentials ({name[:40]!r}); it is published on chain",
                              remediation="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment")
        if name not in _PARAMS:
            raise BadLocation(f"unknown s3 location parameter {name[:40]!r} (allowed: {', '.join(_PARAMS)})")
        if name in params:
            raise BadLocation(f"s3 location parameter {name!r} given more than once")
        value = unquote(raw_value)
        _printable(value, name)
        if not eq or not value:
            raise BadLocation(f"s3 location parameter {name!r} has no value")
        params[name] = value
    return params


def _parse_endpoint(value: str, policy: LocationPolicy) -> Endpoint:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise BadLocation(f"endpoint {value[:60]!r} must start with http:// or https://")
    authority, slash, path = rest.partition("/")
    if path:
        raise BadLocation("endpoint must not have a path (only scheme://host[:port])")
    if any(c in authority for c in "?#"):
        raise BadLocation("endpoint must not have a query or fragment")
    if "@" in authority:
        raise BadLocation("endpoint must not carry credentials (user:password@); it is published on chain",
                          remediation="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment")
    host, port = _split_host_port(authority)
    endpoint = Endpoint(scheme=scheme, host=host, port=port)  # type: ignore[arg-type]
    if policy.public_only:
        if scheme != "https":
            raise BadLocation("endpoint must use https on this network")
        ip = endpoint.ip
        if ip is not None and not is_public_ip(ip):
            raise BadLocation(f"endpoint address {ip} is not a public address")
    return endpoint


def _split_host_port(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        inner, close, tail = authority[1:].partition("]")
        if not close:
            raise BadLocation("endpoint has an unterminated IPv6 literal")
        try:
            if "%" in inner:
                raise ValueError("zone ids (%eth0) are not allowed")
            host = str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise BadLocation(f"endpoint host [{inner[:45]}] is not an IPv6 address") from None
        if tail and not tail.startswith(":"):
            raise BadLocation("endpoint has text after its IPv6 literal")
        return host, _port(tail[1:]) if tail else None
    if authority.count(":") > 1 or "[" in authority or "]" in authority:
        raise BadLocation("endpoint host is malformed (an IPv6 address needs [brackets])")
    host, colon, port_text = authority.partition(":")
    return _check_host(host.lower()), _port(port_text) if colon else None


def _port(text: str) -> int:
    if not _PORT.match(text) or not 1 <= int(text) <= 65535:
        raise BadLocation(f"endpoint port {text[:10]!r} is not a number in 1-65535")
    return int(text)


def _check_host(host: str) -> str:
    if not host:
        raise BadLocation("endpoint has no host")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise BadLocation(f"endpoint host {host[:40]!r} is not a valid IPv4 address") from None
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise BadLocation(f"endpoint host {host[:60]!r} is not a DNS name (ASCII letters, digits, '-' per label)")
    if labels[-1].isdigit() or _looks_like_ipv4(name):  # 127.1, 0x7f000001: numbers the resolver would decode
        raise BadLocation(f"endpoint host {host[:60]!r} is an ambiguous numeric address")
    return name


def _looks_like_ipv4(text: str) -> bool:
    try:
        socket.inet_aton(text)
    except OSError:
        return False
    return True


def is_public_ip(ip: IPAddress) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local, CGNAT, ...)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is None and ip in _6TO4:
            embedded = ip.sixtofour
        if embedded is not None and not is_public_ip(embedded):
            return False
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified or not ip.is_global)


# --------------------------------------------------------------------------- file


def _parse_file(text: str, policy: LocationPolicy) -> LocalLocation:
    if not policy.allow_local:
        raise BadLocation("local (file://) store locations are only accepted on the devnet")
    rest = text[len("file://"):]
    if any(c in rest for c in "?#"):
        raise BadLocation(f"{_short(text)}: file locations take no query or fragment")
    host, slash, path = rest.partition("/")
    if host not in ("", "localhost") or not slash:
        raise BadLocation(f"{_short(text)}: must be file:///absolute/path")
    path = unquote("/" + path)
    _check_path(path, absolute=True)
    return LocalLocation(path=path)


def _check_path(path: str, *, absolute: bool) -> None:
    _printable(path, "path")
    if "\\" in path or _DRIVE.match(path):
        raise BadLocation(f"{_short(path)}: Windows paths are not supported")
    if absolute and not path.startswith("/"):
        raise BadLocation(f"{_short(path)}: must be an absolute path")
    if absolute and any(seg in (".", "..") for seg in path.split("/")):
        raise BadLocation(f"{_short(path)}: '.' and '..' segments are not allowed")


# --------------------------------------------------------------------------- helpers


def _printable(text: str, what: str) -> None:
    if not _PRINTABLE.match(text):
        raise BadLocation(f"{what} must be printable ASCII without spaces or control characters")


def _short(text: str) -> str:
    return repr(text[:60] + ("..." if len(text) > 60 else ""))
