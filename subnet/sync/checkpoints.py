"""Manifests and checkpoints in the lead validator's store, and catch-up for late joiners.

The lead publishes, for every window it merges, the manifest at
`protocol.keys.manifest_key(netuid, window)` (canonical JSON) and every few
versions a full checkpoint at `checkpoint_key(netuid, version)` (safetensors via
subnet.model.state, with version / window / model hash in its metadata).
Stores write atomically, so a reader sees a whole object or none.

A node that joins late, or that could not apply a manifest, loads the newest
checkpoint newer than its version and replays the manifests after it in
window order; it ends with the lead's model hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from loguru import logger

from subnet.errors import ModelError, ProtocolError
from subnet.model.state import checkpoint_bytes, load_checkpoint_bytes, model_hash
from subnet.protocol.keys import checkpoint_key, manifest_key, parse_checkpoint_key, parse_manifest_key
from subnet.protocol.manifest import Manifest
from subnet.sync.apply import DecodeArtifact, FetchArtifact, GlobalModel, apply_manifest
from subnet.sync.errors import SyncError

MAX_MANIFEST_BYTES = 8 * 1024 * 1024
CHECKPOINT_SCHEMA = 1


class Store(Protocol):
    """The part of `subnet.storage.ArtifactStore` used here."""

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str, max_bytes: int) -> bytes | None: ...
    def list(self, prefix: str) -> list[str]: ...


@dataclass(frozen=True, kw_only=True)
class CheckpointRef:
    version: int
    key: str


# --------------------------------------------------------------------------- manifests


def publish_manifest(store: Store, manifest: Manifest) -> str:
    """Write the manifest's canonical JSON at its key; returns the key."""
    key = manifest_key(manifest.netuid, manifest.window)
    store.put(key, manifest.canonical_bytes())
    logger.info("published manifest {} (version {} -> {})", key, manifest.base_version, manifest.new_version)
    return key


def read_manifest(store: Store, netuid: int, window: int) -> Manifest | None:
    """The manifest of `window`, None if absent; SyncError if present but invalid."""
    key = manifest_key(netuid, window)
    data = store.get(key, MAX_MANIFEST_BYTES)
    if data is None:
        return None
    try:
        manifest = Manifest.from_json(data)
    except ProtocolError as exc:
        raise SyncError(f"manifest {key} is invalid: {exc}") from exc
    if (manifest.netuid, manifest.window) != (netuid, window):
        raise SyncError(f"manifest at {key} is for netuid {manifest.netuid} window {manifest.window}")
    return manifest


def manifest_windows(store: Store, netuid: int) -> list[int]:
    """Windows that have a manifest in `store`, ascending."""
    windows = []
    for key in store.list(f"{netuid}/manifests/"):
        try:
            key_netuid, window = parse_manifest_key(key)
        except ProtocolError:
            logger.debug("ignoring non-manifest key {}", key)
            continue
        if key_netuid == netuid:
            windows.append(window)
    return sorted(windows)


# --------------------------------------------------------------------------- checkpoints


def publish_checkpoint(store: Store, netuid: int, gm: GlobalModel) -> str:
    """Write the full model at `checkpoint_key(netuid, gm.version)`; returns the key."""
    key = checkpoint_key(netuid, gm.version)
    meta = {
        "schema": CHECKPOINT_SCHEMA,
        "netuid": netuid,
        "version": gm.version,
        "last_manifest_window": gm.last_manifest_window,
        "model_hash": gm.model_hash,
    }
    data = checkpoint_bytes(gm.model, meta)
    store.put(key, data)
    logger.info("published checkpoint {} ({} bytes, hash {})", key, len(data), str(meta["model_hash"])[:16])
    return key


def should_checkpoint(version: int, every: int) -> bool:
    """The lead checkpoints every `every` versions (version 0 is the seeded init: never)."""
    return every > 0 and version > 0 and version % every == 0


def latest_checkpoint(store: Store, netuid: int) -> CheckpointRef | None:
    """The highest-version checkpoint in `store`, or None."""
    best: CheckpointRef | None = None
    for key in store.list(f"{netuid}/checkpoints/"):
        try:
            key_netuid, version = parse_checkpoint_key(key)
        except ProtocolError:
            logger.debug("ignoring non-checkpoint key {}", key)
            continue
        if key_netuid == netuid and (best is None or version > best.version):
            best = CheckpointRef(version=version, key=key)
    return best


def _max_checkpoint_bytes(gm: GlobalModel) -> int:
    state = gm.model.state_dict()
    raw = sum(t.numel() * t.element_size() for t in state.values())
    return raw + (16 << 20) + 256 * len(state)


def _meta_int(meta: Mapping[str, Any], name: str, key: str) -> int:
    value = meta.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SyncError(f"checkpoint {key}: metadata {name!r} missing or not an int")
    return value


def load_checkpoint_into(gm: GlobalModel, store: Store, netuid: int, ref: CheckpointRef) -> int:
    """Replace the model's tensors with checkpoint `ref` and adopt its version; returns it.

    Checks the names/shapes against the local model and the bytes against the
    model hash in the checkpoint's metadata before touching the model.
    """
    data = store.get(ref.key, _max_checkpoint_bytes(gm))
    if data is None:
        raise SyncError(f"checkpoint {ref.key} is unavailable or larger than this model allows")
    try:
        state, meta = load_checkpoint_bytes(data)
    except ModelError as exc:
        raise SyncError(f"checkpoint {ref.key}: {exc}") from exc
    if meta.get("schema") != CHECKPOINT_SCHEMA or meta.get("netuid") != netuid:
        raise SyncError(f"checkpoint {ref.key}: unexpected schema/netuid in metadata {meta!r}")
    version = _meta_int(meta, "version", ref.key)
    window = _meta_int(meta, "last_manifest_window", ref.key)
    if version != ref.version:
        raise SyncError(f"checkpoint {ref.key} claims version {version}")
    local = gm.model.state_dict()
    if set(state) != set(local):
        missing, extra = sorted(set(local) - set(state))[:3], sorted(set(state) - set(local))[:3]
        raise SyncError(f"checkpoint {ref.key} does not fit this model: missing {missing}, unexpected {extra}")
    for name, t in state.items():
        if t.shape != local[name].shape or t.dtype != local[name].dtype:
            raise SyncError(f"checkpoint {ref.key}: {name} is {t.dtype}{tuple(t.shape)}, "
                            f"model has {local[name].dtype}{tuple(local[name].shape)}")
    if model_hash(state) != meta.get("model_hash"):
        raise SyncError(f"checkpoint {ref.key}: tensors do not match the model hash in its metadata")
    with torch.no_grad():
        for name, t in state.items():
            local[name].copy_(t)
    gm.version = version
    gm.last_manifest_window = window
    logger.info("loaded checkpoint {} (version {}, window {})", ref.key, version, window)
    return version


# --------------------------------------------------------------------------- catch-up


def catch_up(
    gm: GlobalModel,
    lead_store: Store,
    netuid: int,
    current_window: int,
    fetch_artifact: FetchArtifact,
    *,
    use_checkpoint: bool = True,
    decode: DecodeArtifact | None = None,
    max_artifact_bytes: int = 64 * 1024 * 1024,
    verify_hash: bool = True,
) -> int:
    """Bring `gm` to the lead's newest version visible up to `current_window`; return it.

    1. If the lead has a checkpoint newer than `gm.version`, load it.
    2. Apply every manifest with last_manifest_window < window <= current_window,
       in window order.
    A missing artifact or a version gap raises SyncError; the model then stays
    at the last version applied in full, and a later call can jump over the
    gap with a newer checkpoint.
    """
    if use_checkpoint:
        ref = latest_checkpoint(lead_store, netuid)
        if ref is not None and ref.version > gm.version:
            load_checkpoint_into(gm, lead_store, netuid, ref)
    for window in manifest_windows(lead_store, netuid):
        if window <= gm.last_manifest_window or window > current_window:
            continue
        manifest = read_manifest(lead_store, netuid, window)
        if manifest is None:  # deleted between list and get
            raise SyncError(f"manifest for window {window} disappeared from the lead's store")
        if manifest.new_version <= gm.version:
            continue  # already contained in what we hold
        apply_manifest(gm, manifest, fetch_artifact, decode=decode, max_artifact_bytes=max_artifact_bytes,
                       verify_hash=verify_hash)
    return gm.version
