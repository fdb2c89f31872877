"""A node's own artifact store and its limits on reading peers' stores (flags `--store.*`)."""

from __future__ import annotations

from dataclasses import dataclass

from subnet.config import require_positive
from subnet.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class StoreConfig:
    """Where this node publishes artifacts (its on-chain commitment) and the fetch size cap."""

    location: str = "~/.tessera/store"
    """file:///path, a plain path, or s3://bucket/prefix?endpoint=URL."""
    max_artifact_bytes: int = 64 * 1024 * 1024
    """Refuse to download an artifact larger than this many bytes."""
    allow_local_peers: bool = False
    """Read peers' file:// store locations (always allowed on the devnet; never on a real network)."""
    allow_private_peer_endpoints: bool = False
    """For operators on a private network: lets peer endpoints be http or private addresses."""
    peer_request_timeout_s: float = 10.0
    """Wall-clock limit of one request to a peer's store (DNS, connect, TLS, headers), plus 1 s per 4 MiB of body."""
    peer_attempts: int = 2
    """Requests per peer read, retried only on connection errors and 5xx (worst case: attempts x timeout)."""
    s3_connect_timeout_s: float = 5.0
    """Own S3 store: TCP/TLS connect timeout of one HTTP request, seconds."""
    s3_read_timeout_s: float = 30.0
    """Own S3 store: limit on each socket read of one HTTP request, seconds."""
    s3_attempts: int = 3
    """Own S3 store: HTTP requests per call in all (the one retry layer; worst case in subnet/storage/s3.py)."""
    s3_max_pool_connections: int = 32
    """Own S3 store: pooled HTTP connections (concurrent requests without queueing)."""
    retention_windows: int = 16
    """Horizon: this node deletes its own artifacts and manifests older than this many windows (0 keeps all)."""
    retention_checkpoints: int = 2
    """Newest checkpoints this node keeps in its store (older ones are deleted; 0 keeps all)."""

    def __post_init__(self) -> None:
        require_positive("StoreConfig", max_artifact_bytes=self.max_artifact_bytes,
                  peer_request_timeout_s=self.peer_request_timeout_s, peer_attempts=self.peer_attempts,
                  s3_connect_timeout_s=self.s3_connect_timeout_s, s3_read_timeout_s=self.s3_read_timeout_s,
                  s3_attempts=self.s3_attempts, s3_max_pool_connections=self.s3_max_pool_connections)
        if self.retention_windows < 0 or self.retention_checkpoints < 0:
            raise ConfigError("StoreConfig: retention_windows and retention_checkpoints must be >= 0")
