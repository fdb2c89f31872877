"""Manifests and checkpoints in the lead validator's store, and catch-up for late joiners.

The lead publishes, for every window it merges, the manifest at
`protocol.keys.manifest_key(netuid, window)` (canonical JSON) and every few
versions a full checkpoint at `checkpoint_key(netuid, version)` (safetensors via
subnet.model.state, with version / window / model hash in its metadata). Both
carry the lead's hotkey signature (signing.py); a follower checks it against
the hotkey the chain names as lead, and the claimed versions against the window
count (bounds.py), before anything touches its model. Stores write
atomically, so a reader sees a whole object or none.

A node that joins late, or that could not apply a manifest, loads the newest
valid checkpoint newer than its version and replays the manifests after it in
window order; it ends with the lead's model hash. Only manifests newer than
the node's last window are read: by key when it is at most PROBE_WINDOWS
behind, else from one listing (`windows_to_replay`). The lead's store keeps a
horizon (sync/retention.py) that never drops what a late joiner needs after
the oldest kept checkpoint. A node whose state is off
the lead's signed history is reset (see `catch_up`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from loguru import logger

from subnet.codec.config import CodecConfig
from subnet.errors import ModelError, ProtocolError, SubnetError
from subnet.model.state import checkpoint_bytes, load_checkpoint_bytes, model_hash, read_checkpoint_meta
from subnet.protocol.keys import checkpoint_key, manifest_key, parse_checkpoint_key, parse_manifest_key
from subnet.protocol.manifest import Manifest, Signer
from subnet.sync.apply import DecodeArtifact, FetchArtifact, GlobalModel, apply_manifest
from subnet.sync.bounds import ManifestPolicy, check_manifest_bounds, check_state_bounds, max_version
from subnet.sync.errors import Diverged, FutureWindow, SyncError, VersionMismatch, VersionOutOfBounds
from subnet.sync.signing import sign_checkpoint_meta, verify_checkpoint_signature, verify_manifest_signature

MAX_MANIFEST_BYTES = 8 * 1024 * 1024
CHECKPOINT_SCHEMA = 2
CHECKPOINT_META_KEYS = frozenset({"schema", "netuid", "version", "last_manifest_window", "model_hash", "signer",
                                  "signature"})
MAX_CHECKPOINT_TRIES = 3  # refused checkpoints downloaded per call before falling back to manifests
STATE_WINDOW_SLACK = 2  # a local window this far past the caller's window is a bad state, not a clock skew
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)


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


def publish_manifest(store: Store, manifest: Manifest, keypair: Signer) -> str:
    """Sign the manifest with the lead's `keypair` and write its canonical JSON at its key; returns the key."""
    signed = manifest.sign(keypair)
    key = manifest_key(signed.netuid, signed.window)
    store.put(key, signed.canonical_bytes())
    logger.info("published manifest {} (version {} -> {}, signed by {})", key, signed.base_version,
                signed.new_version, keypair.ss58_address)
    return key


def read_manifest(store: Store, netuid: int, window: int, *, expected_signer: str) -> Manifest | None:
    """The lead's manifest of `window`, None if absent.

    SyncError if present but malformed, unsigned, signed by anyone but
    `expected_signer` (SignatureError subclasses) or claiming versions the
    window count does not allow (VersionOutOfBounds).
    """
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
    verify_manifest_signature(manifest, expected_signer)
    check_manifest_bounds(manifest)
    return manifest


def manifest_ready(store: Store, netuid: int, window: int, *, expected_signer: str) -> bool:
    """True once the lead's validly signed manifest for `window` is in `store`; never raises (for polling)."""
    try:
        return read_manifest(store, netuid, window, expected_signer=expected_signer) is not None
    except SubnetError as exc:
        logger.debug("manifest for window {} not ready: {}", window, exc)
        return False


PROBE_WINDOWS = 8
"""A node at most this many windows behind reads the manifests it lacks by key instead of listing the store."""


def windows_to_replay(store: Store, netuid: int, *, after: int, upto: int) -> tuple[list[int], bool]:
    """Windows in (after, upto] that may hold a manifest, ascending, and whether they were probed, not listed.

    Why: listing the lead's store every window costs a request per 1000 keys
    and grows with the run. A node in step (the normal case: one window
    behind) asks for the one key it needs; a node far behind lists once
    (bounded by the lead's retention horizon) after loading a checkpoint.
    """
    if upto <= after:
        return [], True
    if upto - after <= PROBE_WINDOWS:
        return list(range(max(after + 1, 0), upto + 1)), True
    return [w for w in manifest_windows(store, netuid) if after < w <= upto], False


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


def publish_checkpoint(store: Store, netuid: int, gm: GlobalModel, keypair: Signer) -> str:
    """Write the full model at `checkpoint_key(netuid, gm.version)`, metadata signed by the lead; returns the key."""
    key = checkpoint_key(netuid, gm.version)
    meta = sign_checkpoint_meta({
        "schema": CHECKPOINT_SCHEMA,
        "netuid": netuid,
        "version": gm.version,
        "last_manifest_window": gm.last_manifest_window,
        "model_hash": gm.model_hash,
    }, keypair)
    data = checkpoint_bytes(gm.model, meta)
    store.put(key, data)
    logger.info("published checkpoint {} ({} bytes, hash {})", key, len(data), str(meta["model_hash"])[:16])
    return key


def should_checkpoint(version: int, every: int) -> bool:
    """The lead checkpoints every `every` versions (version 0 is the seeded init: never)."""
    return every > 0 and version > 0 and version % every == 0


def checkpoint_refs(store: Store, netuid: int) -> list[CheckpointRef]:
    """Every checkpoint key in `store` (by the version its key names), newest first."""
    refs = []
    for key in store.list(f"{netuid}/checkpoints/"):
        try:
            key_netuid, version = parse_checkpoint_key(key)
        except ProtocolError:
            logger.debug("ignoring non-checkpoint key {}", key)
            continue
        if key_netuid == netuid:
            refs.append(CheckpointRef(version=version, key=key))
    return sorted(refs, key=lambda r: r.version, reverse=True)


def latest_checkpoint(store: Store, netuid: int) -> CheckpointRef | None:
    """The highest-version checkpoint key in `store`, or None (unverified: see load_checkpoint_into)."""
    refs = checkpoint_refs(store, netuid)
    return refs[0] if refs else None


def max_checkpoint_bytes(gm: GlobalModel) -> int:
    state = gm.model.state_dict()
    raw = sum(t.numel() * t.element_size() for t in state.values())
    return raw + (16 << 20) + 256 * len(state)


def _meta_int(meta: Mapping[str, Any], name: str, key: str) -> int:
    value = meta.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SyncError(f"checkpoint {key}: metadata {name!r} missing or not an int")
    return value


def _verified_claims(data: bytes, ref: CheckpointRef, netuid: int, *, expected_signer: str,
                     current_window: int) -> tuple[int, int, str]:
    """(version, last_manifest_window, model_hash) from the header alone, signature and bounds checked."""
    try:
        meta = read_checkpoint_meta(data)
    except ModelError as exc:
        raise SyncError(f"checkpoint {ref.key}: {exc}") from exc
    verify_checkpoint_signature(meta, expected_signer, what=f"checkpoint {ref.key}")
    if set(meta) != CHECKPOINT_META_KEYS:
        raise SyncError(f"checkpoint {ref.key}: metadata fields {sorted(meta)[:10]} are not schema "
                        f"{CHECKPOINT_SCHEMA}'s")
    if _meta_int(meta, "schema", ref.key) != CHECKPOINT_SCHEMA or _meta_int(meta, "netuid", ref.key) != netuid:
        raise SyncError(f"checkpoint {ref.key}: schema {meta['schema']!r} / netuid {meta['netuid']!r}, "
                        f"expected {CHECKPOINT_SCHEMA} / {netuid}")
    version = _meta_int(meta, "version", ref.key)
    window = _meta_int(meta, "last_manifest_window", ref.key)
    if version != ref.version:
        raise SyncError(f"checkpoint {ref.key} claims version {version}")
    check_state_bounds(version, window, current_window=current_window, what=f"checkpoint {ref.key}")
    digest = meta["model_hash"]
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise SyncError(f"checkpoint {ref.key}: metadata model_hash is not 64 lowercase hex chars")
    return version, window, digest


def load_checkpoint_into(gm: GlobalModel, store: Store, netuid: int, ref: CheckpointRef, *, expected_signer: str,
                         current_window: int) -> int:
    """Replace the model's tensors with checkpoint `ref` and adopt its version; returns it.

    Order: size cap, header-only metadata (signature by `expected_signer`,
    schema, version bounds), then the tensors (names/shapes against the local
    model, bytes against the signed model hash); the model is touched last.
    """
    data = store.get(ref.key, max_checkpoint_bytes(gm))
    if data is None:
        raise SyncError(f"checkpoint {ref.key} is unavailable or larger than this model allows")
    version, window, digest = _verified_claims(data, ref, netuid, expected_signer=expected_signer,
                                               current_window=current_window)
    try:
        state, _ = load_checkpoint_bytes(data)
    except ModelError as exc:
        raise SyncError(f"checkpoint {ref.key}: {exc}") from exc
    local = gm.model.state_dict()
    if set(state) != set(local):
        missing, extra = sorted(set(local) - set(state))[:3], sorted(set(state) - set(local))[:3]
        raise SyncError(f"checkpoint {ref.key} does not fit this model: missing {missing}, unexpected {extra}")
    for name, t in state.items():
        if t.shape != local[name].shape or t.dtype != local[name].dtype:
            raise SyncError(f"checkpoint {ref.key}: {name} is {t.dtype}{tuple(t.shape)}, "
                            f"model has {local[name].dtype}{tuple(local[name].shape)}")
    if model_hash(state) != digest:
        raise SyncError(f"checkpoint {ref.key}: tensors do not match the model hash in its metadata")
    with torch.no_grad():
        for name, t in state.items():
            local[name].copy_(t)
    gm.version = version
    gm.last_manifest_window = window
    logger.info("loaded checkpoint {} (version {}, window {})", ref.key, version, window)
    return version


# --------------------------------------------------------------------------- catch-up


@dataclass(kw_only=True)
class CatchUpReport:
    """What one catch-up did: the version reached, whether the node was reset, what was refused.

    error: the first refusal (or the failure that stopped the replay); None if
    everything in the lead's store up to the window was applied or already held.
    """

    version: int
    reset_reason: str | None = None
    error: SyncError | None = None
    refusals: list[SyncError] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class _Lead:
    store: Store
    netuid: int
    current_window: int
    signer: str


def _state_divergence(gm: GlobalModel, lead: _Lead) -> str | None:
    """Why this node's state is provably off the lead's signed history, or None.

    Checked before replaying: a (version, window) no honest history reaches by
    now, or the lead's signed manifest for our last window pinning another
    version or model hash.
    """
    try:
        check_state_bounds(gm.version, gm.last_manifest_window,
                           current_window=lead.current_window + STATE_WINDOW_SLACK,
                           what=f"this node's model (window {lead.current_window} + {STATE_WINDOW_SLACK} of slack)")
    except VersionOutOfBounds as exc:
        return str(exc)
    w = gm.last_manifest_window
    if w < 0:
        return None
    try:
        anchor = read_manifest(lead.store, lead.netuid, w, expected_signer=lead.signer)
    except SyncError as exc:  # not evidence either way
        logger.debug("no usable anchor manifest for window {}: {}", w, exc)
        return None
    if anchor is None:
        return None
    if anchor.new_version != gm.version:
        return f"the lead's manifest for window {w} reaches version {anchor.new_version}, this node holds {gm.version}"
    if anchor.model_hash is not None and anchor.model_hash != gm.model_hash:
        return f"the lead's manifest for window {w} pins model hash {anchor.model_hash[:16]}..., this node's differs"
    return None


def _load_newest_checkpoint(gm: GlobalModel, lead: _Lead, *, above: int, report: CatchUpReport) -> bool:
    """Load the newest valid checkpoint with version > `above` (key-level bounds first); True if one loaded."""
    limit = max_version(lead.current_window)
    candidates = [r for r in checkpoint_refs(lead.store, lead.netuid) if above < r.version]
    for ref in candidates:
        if ref.version > limit:
            logger.warning("ignoring checkpoint {}: version {} is past what window {} allows ({})", ref.key,
                           ref.version, lead.current_window, limit)
    for ref in [r for r in candidates if r.version <= limit][:MAX_CHECKPOINT_TRIES]:
        try:
            load_checkpoint_into(gm, lead.store, lead.netuid, ref, expected_signer=lead.signer,
                                 current_window=lead.current_window)
            return True
        except FutureWindow as exc:  # the lead is ahead of our clock: not a refusal, just not yet
            logger.info("skipping checkpoint {} for now: {}", ref.key, exc)
        except SyncError as exc:
            logger.warning("refused checkpoint {}: {}: {}", ref.key, type(exc).__name__, exc)
            report.refusals.append(exc)
    return False


def _replay(gm: GlobalModel, lead: _Lead, apply: Callable[[Manifest], int], report: CatchUpReport) -> str | None:
    """Apply the lead's manifests after our window, in order; a divergence reason, or None when done.

    A manifest that fails verification is skipped (and reported): the version
    chain makes that safe, since the next valid one then no longer builds on
    our version and stops the replay with VersionMismatch.
    """
    windows, probed = windows_to_replay(lead.store, lead.netuid, after=gm.last_manifest_window,
                                        upto=lead.current_window)
    for window in windows:
        if window <= gm.last_manifest_window:  # a manifest applied may have moved us on (never: one per window)
            continue
        try:
            manifest = read_manifest(lead.store, lead.netuid, window, expected_signer=lead.signer)
        except SyncError as exc:
            logger.warning("refused the lead's manifest for window {}: {}: {}", window, type(exc).__name__, exc)
            report.refusals.append(exc)
            continue
        if manifest is None:
            if not probed:  # listed, then gone before the get
                report.refusals.append(SyncError(f"manifest for window {window} disappeared from the lead's store"))
            continue
        if manifest.base_version < gm.version:
            return (f"the lead's manifest for window {window} builds on version {manifest.base_version}, "
                    f"this node holds {gm.version} (window {gm.last_manifest_window})")
        apply(manifest)
    return None


def _recover(gm: GlobalModel, lead: _Lead, reason: str, *, use_checkpoint: bool,
             reset: Callable[[], None] | None, report: CatchUpReport) -> None:
    logger.warning("this node's model is off the lead's signed history: {}; resetting", reason)
    report.reset_reason = reason
    if reset is not None:
        reset()  # seeded version 0; the caller then jumps to the newest valid checkpoint
        if use_checkpoint:
            _load_newest_checkpoint(gm, lead, above=gm.version, report=report)
        return
    if not (use_checkpoint and _load_newest_checkpoint(gm, lead, above=-1, report=report)):
        raise Diverged(f"{reason}; no valid signed checkpoint and no reset hook",
                       remediation="restart from the seeded init (delete the local model copy)")


def catch_up_report(
    gm: GlobalModel,
    lead_store: Store,
    netuid: int,
    current_window: int,
    fetch_artifact: FetchArtifact,
    *,
    expected_signer: str,
    codec: CodecConfig,
    use_checkpoint: bool = True,
    decode: DecodeArtifact | None = None,
    max_artifact_bytes: int = 64 * 1024 * 1024,
    verify_hash: bool = True,
    reset: Callable[[], None] | None = None,
    policy: ManifestPolicy | None = None,
) -> CatchUpReport:
    """`catch_up` without raising for what the lead's store holds: refusals come back in the report."""
    lead = _Lead(store=lead_store, netuid=netuid, current_window=current_window, signer=expected_signer)
    report = CatchUpReport(version=gm.version)

    def apply(manifest: Manifest) -> int:
        return apply_manifest(gm, manifest, fetch_artifact, codec=codec, decode=decode,
                              max_artifact_bytes=max_artifact_bytes, verify_hash=verify_hash, policy=policy)

    try:
        reason = _state_divergence(gm, lead)
        if reason is None:
            if use_checkpoint:
                _load_newest_checkpoint(gm, lead, above=gm.version, report=report)
            reason = _replay(gm, lead, apply, report)
        if reason is not None:
            _recover(gm, lead, reason, use_checkpoint=use_checkpoint, reset=reset, report=report)
            again = _replay(gm, lead, apply, report)
            if again is not None:
                raise Diverged(f"still off the lead's history after a reset: {again}")
    except SyncError as exc:
        report.error = exc
    except SubnetError as exc:  # the store itself failed (unreachable, refused a key)
        report.error = SyncError(f"lead store: {type(exc).__name__}: {exc}")
        report.error.__cause__ = exc
    if report.refusals and (report.error is None or isinstance(report.error, VersionMismatch)):
        report.error = report.refusals[0]  # the refusal explains the gap it left
    report.version = gm.version
    return report


def catch_up(
    gm: GlobalModel,
    lead_store: Store,
    netuid: int,
    current_window: int,
    fetch_artifact: FetchArtifact,
    *,
    expected_signer: str,
    codec: CodecConfig,
    use_checkpoint: bool = True,
    decode: DecodeArtifact | None = None,
    max_artifact_bytes: int = 64 * 1024 * 1024,
    verify_hash: bool = True,
    reset: Callable[[], None] | None = None,
    policy: ManifestPolicy | None = None,
) -> int:
    """Bring `gm` to the lead's newest signed version visible up to `current_window`; return it.

    1. If this node's state is off the lead's signed history, recover (below).
    2. Else, if the lead has a valid checkpoint newer than `gm.version`, load it
       (newest first, at most MAX_CHECKPOINT_TRIES downloads; key versions past
       the window bound are not even fetched).
    3. Apply every manifest with last_manifest_window < window <= current_window
       in window order; each must be signed by `expected_signer` and within the
       version bounds; artifacts are decoded with the pinned `codec`.

    Recovery rule (no sticky wedge): the node is reset when its own state is
    impossible by now (version > last window + 1, or a last window past
    current_window + STATE_WINDOW_SLACK), when the lead's signed manifest for
    the node's last window pins another version or model hash, or when a
    signed manifest after that window builds on an older version than the
    node holds (the node is ahead of the lead). Reset means `reset()` (the
    seeded version 0) then the newest valid signed checkpoint, whatever its
    version, then replay; without a `reset` hook, that checkpoint or Diverged.
    At most one reset per call.

    Anything refused raises its SyncError after everything that could be
    applied was (a refused manifest is skipped; the version chain stops the
    replay at the gap it leaves). The model then holds the last version
    applied in full; a later call can jump the gap with a newer checkpoint.
    """
    report = catch_up_report(gm, lead_store, netuid, current_window, fetch_artifact,
                             expected_signer=expected_signer, codec=codec, use_checkpoint=use_checkpoint,
                             decode=decode, max_artifact_bytes=max_artifact_bytes, verify_hash=verify_hash,
                             reset=reset, policy=policy)
    if report.error is not None:
        raise report.error
    return report.version
