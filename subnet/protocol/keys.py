"""Object-store keys. One place builds and parses them so miner, validator and store agree.

Artifact: `<netuid>/<window>/<hotkey>.<fragment>.safetensors` (design brief).
Manifest: `<netuid>/manifests/<window>.json`; checkpoint:
`<netuid>/checkpoints/<version>.safetensors`. Manifests and checkpoints live in
the lead validator's store, artifacts in each miner's; the distinct second
segment keeps `list("<netuid>/<window>/")` to artifacts even in a shared store.
"""

from __future__ import annotations

import re

from subnet.errors import ProtocolError

# SS58 addresses are base58 (no 0, O, I, l); accept any alphanumerics so tests
# and other chains work, but never '/', '.', or anything path-like.
_HOTKEY = re.compile(r"[A-Za-z0-9]{1,128}", re.ASCII)
_ARTIFACT = re.compile(r"([0-9]+)/([0-9]+)/([A-Za-z0-9]{1,128})\.([0-9]+)\.safetensors", re.ASCII)
_MANIFEST = re.compile(r"([0-9]+)/manifests/([0-9]+)\.json", re.ASCII)
_CHECKPOINT = re.compile(r"([0-9]+)/checkpoints/([0-9]+)\.safetensors", re.ASCII)


def _nonneg(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{name} must be a non-negative int, got {value!r}")
    return value


def check_hotkey(hotkey: str) -> str:
    """Return `hotkey` if it is safe inside a key (alphanumeric, <= 128 chars)."""
    if not isinstance(hotkey, str) or not _HOTKEY.fullmatch(hotkey):
        raise ProtocolError(f"hotkey must be 1-128 alphanumeric characters, got {hotkey!r}")
    return hotkey


def artifact_key(netuid: int, window: int, hotkey: str, fragment: int) -> str:
    """`<netuid>/<window>/<hotkey>.<fragment>.safetensors`."""
    return (
        f"{_nonneg('netuid', netuid)}/{_nonneg('window', window)}/"
        f"{check_hotkey(hotkey)}.{_nonneg('fragment', fragment)}.safetensors"
    )


def artifact_prefix(netuid: int, window: int) -> str:
    """Prefix that lists one window's artifacts."""
    return f"{_nonneg('netuid', netuid)}/{_nonneg('window', window)}/"


def parse_artifact_key(key: str) -> tuple[int, int, str, int]:
    """Inverse of `artifact_key`: (netuid, window, hotkey, fragment)."""
    m = _ARTIFACT.fullmatch(key) if isinstance(key, str) else None
    if not m:
        raise ProtocolError(f"not an artifact key: {key!r}")
    parsed = int(m[1]), int(m[2]), m[3], int(m[4])
    if artifact_key(*parsed) != key:  # leading zeros: one object, one key
        raise ProtocolError(f"non-canonical artifact key: {key!r}")
    return parsed


def manifest_key(netuid: int, window: int) -> str:
    """`<netuid>/manifests/<window>.json`."""
    return f"{_nonneg('netuid', netuid)}/manifests/{_nonneg('window', window)}.json"


def parse_manifest_key(key: str) -> tuple[int, int]:
    """Inverse of `manifest_key`: (netuid, window)."""
    m = _MANIFEST.fullmatch(key) if isinstance(key, str) else None
    if not m:
        raise ProtocolError(f"not a manifest key: {key!r}")
    if manifest_key(int(m[1]), int(m[2])) != key:
        raise ProtocolError(f"non-canonical manifest key: {key!r}")
    return int(m[1]), int(m[2])


def checkpoint_key(netuid: int, version: int) -> str:
    """`<netuid>/checkpoints/<version>.safetensors`."""
    return f"{_nonneg('netuid', netuid)}/checkpoints/{_nonneg('version', version)}.safetensors"


def parse_checkpoint_key(key: str) -> tuple[int, int]:
    """Inverse of `checkpoint_key`: (netuid, version)."""
    m = _CHECKPOINT.fullmatch(key) if isinstance(key, str) else None
    if not m:
        raise ProtocolError(f"not a checkpoint key: {key!r}")
    if checkpoint_key(int(m[1]), int(m[2])) != key:
        raise ProtocolError(f"non-canonical checkpoint key: {key!r}")
    return int(m[1]), int(m[2])
