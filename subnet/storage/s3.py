"""An S3-compatible artifact store (Cloudflare R2, MinIO, AWS) on boto3.

Design:
- `endpoint_url` selects the service; path-style addressing is used with a
  custom endpoint (MinIO/moto need it, R2 accepts it).
- One retry layer, ours: botocore makes exactly one HTTP attempt per call
  (total_max_attempts=1) and `_retry` retries connection errors, timeouts,
  5xx/throttling and a GET body cut short, `attempts` requests in all, with
  capped exponential backoff + jitter; then StorageError (or None for a body
  cut on every attempt). Worst case per call: `attempts` HTTP requests, each
  bounded by connect_timeout_s + read_timeout_s per socket read (this is OUR
  store, a trusted server; peers' stores are read by subnet/storage/peer.py
  under a wall-clock deadline), plus backoff <= sum over i < attempts-1 of
  1.5 x min(backoff_max_s, backoff_base_s x 2**i). Defaults: 3 requests, a
  silent server fails after 3 x 30 s + 2.25 s (was up to 27 requests). A
  `list` is one call per ListObjectsV2 page sequence: `attempts` x pages.
  The settings are flags: `--store.s3_connect_timeout_s`, `s3_read_timeout_s`,
  `s3_attempts`, `s3_max_pool_connections` (`S3Options.from_store_config`).
- `get` never loads more than `max_bytes + 1` bytes: an object whose
  ContentLength is over the limit is refused before its body is read; a body
  that ends early (truncated, connection cut) is retried, then reported as
  absent (None). A missing object is None. None is logged, never raised.
- Credentials come from the standard AWS chain (env AWS_ACCESS_KEY_ID /
  AWS_SECRET_ACCESS_KEY, shared config, AWS_PROFILE); with none, requests are
  unsigned. Only our own store is opened here (subnet/storage/base.open_store).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import boto3
import botocore.exceptions as bce
from botocore import UNSIGNED
from botocore.config import Config
from botocore.parsers import ResponseParserError
from loguru import logger

from subnet.errors import StorageError
from subnet.storage.base import validate_key, validate_prefix

T = TypeVar("T")
# ValueError: botocore fails to parse a header cut mid-value (e.g. Last-Modified); retried like a reset.
_TRANSPORT_ERRORS = (bce.ConnectionError, bce.HTTPClientError, ResponseParserError, ValueError)
_BODY_ERRORS = (bce.IncompleteReadError, bce.ResponseStreamingError, bce.ReadTimeoutError, bce.ConnectionClosedError)
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_RETRY_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
                "InternalError", "ServiceUnavailable", "TooManyRequests", "RequestLimitExceeded"}


class _BodyCut(Exception):
    """A GET whose body ended early: retried like a transport error, then reported as absent."""


@dataclass(frozen=True, kw_only=True)
class S3Options:
    """Transport tuning. Defaults suit a validator fetching many small artifacts."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    botocore_attempts: int = 1  # ignored, kept for compatibility: botocore makes one attempt (one retry layer)
    attempts: int = 3  # HTTP requests per call in all (the only retry layer)
    backoff_base_s: float = 0.5  # sleep base * 2**i (+ up to 50 % jitter) between our attempts
    backoff_max_s: float = 8.0
    list_page_size: int = 1000  # keys per ListObjectsV2 page (S3 caps it at 1000)
    max_pool_connections: int = 32  # pooled HTTP connections (botocore's default is 10)

    @classmethod
    def from_store_config(cls, cfg: Any) -> S3Options:
        """The transport flags of `subnet.storage.config.StoreConfig` (``--store.s3_*``)."""
        return cls(connect_timeout_s=cfg.s3_connect_timeout_s, read_timeout_s=cfg.s3_read_timeout_s,
                   attempts=cfg.s3_attempts, max_pool_connections=cfg.s3_max_pool_connections)


class S3Store:
    """ArtifactStore over one bucket + key prefix of an S3-compatible service."""

    def __init__(self, *, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None,
                 addressing: str | None = None, options: S3Options | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            validate_key(self.prefix)
        self.endpoint_url = endpoint_url
        self.region = region
        self._addressing_given = addressing
        self.addressing = addressing or ("path" if endpoint_url else "auto")
        self.options = options or S3Options()
        session = boto3.session.Session()
        signed = session.get_credentials() is not None
        if not signed:
            logger.info("s3 store {}: no AWS credentials found, using unsigned (public) requests", self.location)
        cfg = Config(
            connect_timeout=self.options.connect_timeout_s,
            read_timeout=self.options.read_timeout_s,
            max_pool_connections=self.options.max_pool_connections,
            retries={"total_max_attempts": 1, "mode": "standard"},  # the only retry layer is `_retry`
            s3={"addressing_style": self.addressing},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **({} if signed else {"signature_version": UNSIGNED}),
        )
        self.client = session.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=cfg)

    @property
    def location(self) -> str:
        query = {k: v for k, v in (("endpoint", self.endpoint_url), ("region", self.region),
                                   ("addressing", self._addressing_given)) if v}
        path = f"/{self.prefix}" if self.prefix else ""
        return f"s3://{self.bucket}{path}" + (f"?{urlencode(query, safe=':/')}" if query else "")

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        """Run `fn` up to `attempts` times: each call is one HTTP request; raises StorageError (or _BodyCut)."""
        opts = self.options
        for attempt in range(opts.attempts):
            try:
                return fn()
            except (_BodyCut, *_TRANSPORT_ERRORS) as e:
                err: Exception = e
            except bce.NoCredentialsError as e:
                raise StorageError(f"s3 {what}: no credentials",
                                   remediation="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") from e
            except bce.ClientError as e:
                if not _retryable(e):
                    raise StorageError(f"s3 {what} on {self.location}: {_code(e)} {e}") from e
                err = e
            if attempt + 1 >= opts.attempts:
                if isinstance(err, _BodyCut):
                    raise err
                raise StorageError(f"s3 {what} on {self.location} failed after {opts.attempts} attempts: {err}",
                                   remediation="check the endpoint is reachable") from err
            delay = min(opts.backoff_max_s, opts.backoff_base_s * 2**attempt) * (1 + 0.5 * random.random())
            logger.warning("s3 {} on {}: {} (attempt {}/{}), retrying in {:.2f}s", what, self.location,
                           type(err).__name__, attempt + 1, opts.attempts, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def put(self, key: str, data: bytes) -> None:
        full = self._key(key)
        self._retry(f"put {key}", lambda: self.client.put_object(Bucket=self.bucket, Key=full, Body=data))

    def get(self, key: str, max_bytes: int) -> bytes | None:
        full = self._key(key)
        try:
            return self._retry(f"get {key}", lambda: self._get_once(full, key, max_bytes))
        except _BodyCut as e:
            logger.warning("s3 get {}: truncated on every attempt ({}); treated as absent", key, e)
            return None
        except StorageError as e:
            if isinstance(e.__cause__, bce.ClientError) and _code(e.__cause__) in _MISSING_CODES:
                logger.debug("s3 get {}: absent", key)
                return None
            raise

    def _get_once(self, full: str, key: str, max_bytes: int) -> bytes | None:
        """One GET: the bytes, None when over the limit, _BodyCut when the body ended early."""
        resp = self.client.get_object(Bucket=self.bucket, Key=full)
        body = resp["Body"]
        length = int(resp.get("ContentLength", -1))
        if length < 0:  # headers cut before Content-Length: an empty body is not the object
            body.close()
            raise _BodyCut("response without a Content-Length")
        if length > max_bytes:
            body.close()
            logger.warning("s3 get {}: {} bytes, over the {}-byte limit; treated as absent", key, length, max_bytes)
            return None
        try:
            data = body.read(max_bytes + 1)
            rest = body.read(1)  # forces botocore's content-length check at end of stream
        except _BODY_ERRORS as e:
            raise _BodyCut(f"body cut short ({type(e).__name__})") from e
        finally:
            body.close()
        if rest or len(data) > max_bytes:
            logger.warning("s3 get {}: body exceeds the {}-byte limit; treated as absent", key, max_bytes)
            return None
        if len(data) != length:
            raise _BodyCut(f"got {len(data)} of {length} bytes")
        return data

    def exists(self, key: str) -> bool:
        return self.modified(key) is not None

    def modified(self, key: str) -> float | None:
        """LastModified as set by the S3 server (not by the uploader), None if absent."""
        full = self._key(key)
        try:
            head = self._retry(f"head {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=full))
        except StorageError as e:
            if isinstance(e.__cause__, bce.ClientError) and _code(e.__cause__) in _MISSING_CODES:
                return None
            raise
        stamp = head.get("LastModified")
        return stamp.timestamp() if stamp is not None else time.time()

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0

        def run() -> list[str]:
            keys: list[str] = []
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full, PaginationConfig={"PageSize": self.options.list_page_size}
            ):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
            return keys

        return sorted(self._retry(f"list {prefix}", run))

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._retry(f"delete {key}", lambda: self.client.delete_object(Bucket=self.bucket, Key=full))

    def create_bucket(self) -> None:
        """Create the bucket if missing (devnet/test convenience; production buckets are made by operators)."""
        try:
            self._retry("create_bucket", lambda: self.client.create_bucket(Bucket=self.bucket))
        except StorageError as e:
            if isinstance(e.__cause__, bce.ClientError) and _code(e.__cause__) in ("BucketAlreadyOwnedByYou",
                                                                                   "BucketAlreadyExists"):
                return
            raise


def _retryable(e: bce.ClientError) -> bool:
    """Throttling and server-side errors are worth another attempt; 4xx answers are not."""
    meta: dict[str, Any] = e.response.get("ResponseMetadata", {}) if hasattr(e, "response") else {}
    return _code(e) in _RETRY_CODES or int(meta.get("HTTPStatusCode") or 0) >= 500


def _code(e: bce.ClientError) -> str:
    err: dict[str, Any] = e.response.get("Error", {}) if hasattr(e, "response") else {}
    return str(err.get("Code", ""))
