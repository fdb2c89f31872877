"""Retention: every store a node owns keeps a fixed horizon, so storage stays flat as the run grows.

What a node's own store holds, and how long it is kept (``--store.retention_windows``
H, ``--store.retention_checkpoints`` C):

* artifacts ``<netuid>/<w>/<hotkey>.<f>.safetensors`` (a miner's uploads; the
  lead's mirrors of selected ones) and manifests ``<netuid>/manifests/<w>.json``:
  kept while ``w >= now - H``;
* checkpoints ``<netuid>/checkpoints/<v>.safetensors``: the newest C by version;
* anything at or after ``protect_from_window`` is kept whatever its age: the
  lead passes the window of the oldest checkpoint it keeps (`protect_window`),
  because a node that joins after the horizon loads a checkpoint and then
  replays every manifest (and mirrored artifact) after it. Without a
  checkpoint that is 0: a late joiner replays from version 0, so nothing goes.
* keys of any other shape (or another netuid) are never deleted.

Why the defaults (H = 16 windows, C = 2): validators fetch window w's
artifacts during w+1 and recheck them once, so a miner needs 2 windows; H = 16
leaves room for slow followers and audits, about 2.7 hours of 12 s blocks at
50-block windows. C = 2 keeps one checkpoint in reserve if the
newest turns out unreadable. The lead's protection rule keeps catch-up working
whatever H is, so H only sets how far back history can be audited.

The alternative for S3 stores is a bucket lifecycle rule (docs/RELIABILITY.md):
it expires artifacts by age without any requests from the node, but it cannot
see the checkpoint protection, so on the lead's bucket its age must exceed the
checkpoint interval by a margin; set ``--store.retention_windows 0`` then.

`plan_deletions` is pure; `prune_store` lists the store once and deletes what
the plan names; a failed delete is logged and retried on the next sweep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from loguru import logger

from subnet.errors import ConfigError, ProtocolError, SubnetError
from subnet.protocol.keys import parse_artifact_key, parse_checkpoint_key, parse_manifest_key


class KeyKind(Enum):
    ARTIFACT = "artifact"
    MANIFEST = "manifest"
    CHECKPOINT = "checkpoint"


@dataclass(frozen=True, kw_only=True)
class RetentionPolicy:
    """The horizon of a node's own store (see the module docstring)."""

    windows: int = 16
    """Artifacts and manifests older than this many windows are deleted (0 keeps all)."""
    checkpoints: int = 2
    """Newest checkpoints kept (0 keeps all)."""

    def __post_init__(self) -> None:
        if self.windows < 0 or self.checkpoints < 0:
            raise ConfigError(f"retention horizon must be >= 0, got windows={self.windows} "
                              f"checkpoints={self.checkpoints}")

    @classmethod
    def from_store_config(cls, cfg: object) -> RetentionPolicy:
        """``--store.retention_windows`` / ``--store.retention_checkpoints``."""
        return cls(windows=int(cfg.retention_windows), checkpoints=int(cfg.retention_checkpoints))  # type: ignore[attr-defined]


def classify(key: str, netuid: int) -> tuple[KeyKind, int] | None:
    """(kind, window or version) of one of this subnet's keys; None for anything else (never deleted)."""
    for kind, parse in ((KeyKind.MANIFEST, parse_manifest_key), (KeyKind.CHECKPOINT, parse_checkpoint_key)):
        try:
            key_netuid, n = parse(key)
        except ProtocolError:
            continue
        return (kind, n) if key_netuid == netuid else None
    try:
        key_netuid, window, _, _ = parse_artifact_key(key)
    except ProtocolError:
        return None
    return (KeyKind.ARTIFACT, window) if key_netuid == netuid else None


def plan_deletions(keys: Iterable[str], *, netuid: int, now_window: int, policy: RetentionPolicy,
                   protect_from_window: int | None = None) -> list[str]:
    """The keys past the horizon, sorted; ``protect_from_window``: windows at or after it are kept (lead)."""
    doomed: list[str] = []
    checkpoints: list[tuple[int, str]] = []
    oldest_kept = now_window - policy.windows
    if protect_from_window is not None:
        oldest_kept = min(oldest_kept, protect_from_window)
    for key in keys:
        found = classify(key, netuid)
        if found is None:
            continue
        kind, n = found
        if kind is KeyKind.CHECKPOINT:
            checkpoints.append((n, key))
        elif policy.windows > 0 and n < oldest_kept:
            doomed.append(key)
    if policy.checkpoints > 0:
        checkpoints.sort(reverse=True)
        doomed.extend(key for _, key in checkpoints[policy.checkpoints:])
    return sorted(doomed)


class PrunableStore(Protocol):
    """The part of `subnet.storage.ArtifactStore` a sweep uses."""

    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...


class CheckpointStore(Protocol):
    def list(self, prefix: str) -> list[str]: ...
    def get(self, key: str, max_bytes: int) -> bytes | None: ...


class LeadStore(PrunableStore, CheckpointStore, Protocol):
    """A validator's own store: listed, read (checkpoint headers) and pruned."""


@dataclass(frozen=True, kw_only=True)
class PruneReport:
    listed: int
    deleted: tuple[str, ...]
    failed: tuple[str, ...]


def prune_store(store: PrunableStore, *, netuid: int, now_window: int, policy: RetentionPolicy,
                protect_from_window: int | None = None, keys: list[str] | None = None) -> PruneReport:
    """One sweep of our own store: list ``<netuid>/``, delete what `plan_deletions` names; never raises for a key.

    ``keys`` is a listing of ``<netuid>/`` the caller already made this
    window (`lead_sweep`); without it the store is listed here. A store that
    cannot even be listed raises its StorageError (the caller logs it and
    sweeps again next window).
    """
    keys = store.list(f"{netuid}/") if keys is None else keys
    plan = plan_deletions(keys, netuid=netuid, now_window=now_window, policy=policy,
                          protect_from_window=protect_from_window)
    deleted, failed = [], []
    for key in plan:
        try:
            store.delete(key)
            deleted.append(key)
        except SubnetError as exc:
            logger.warning("retention: could not delete {}: {}", key, exc)
            failed.append(key)
    if deleted:
        logger.info("retention: window {}: deleted {} of {} keys (horizon {} windows, {} checkpoints)", now_window,
                    len(deleted), len(keys), policy.windows, policy.checkpoints)
    return PruneReport(listed=len(keys), deleted=tuple(deleted), failed=tuple(failed))


def protect_window(store: CheckpointStore, netuid: int, policy: RetentionPolicy, known: dict[int, int], *,
                   max_bytes: int, keys: list[str] | None = None) -> int:
    """The lead's ``protect_from_window``: the earliest last_manifest_window of the checkpoints it keeps (0: none).

    ``known`` (version -> last_manifest_window) is the lead's memory of what it
    published; a kept checkpoint not in it (after a restart) is read once from
    our own store for its header and remembered. An unreadable one protects
    everything (0): deleting too little is the safe mistake.
    """
    from subnet.model.state import read_checkpoint_meta

    refs = []
    listed = store.list(f"{netuid}/checkpoints/") if keys is None else keys
    for key in listed:
        found = classify(key, netuid)
        if found is not None and found[0] is KeyKind.CHECKPOINT:
            refs.append((found[1], key))
    refs.sort(reverse=True)
    kept = refs if policy.checkpoints == 0 else refs[: policy.checkpoints]
    if not kept:
        return 0
    windows = []
    for version, key in kept:
        if version not in known:
            data = store.get(key, max_bytes)
            try:
                known[version] = int(read_checkpoint_meta(data)["last_manifest_window"]) if data else -1
            except (SubnetError, KeyError, TypeError, ValueError) as exc:
                logger.warning("retention: cannot read checkpoint {}: {}; keeping all history", key, exc)
                known[version] = -1
        windows.append(known[version])
    return max(0, min(windows))


def lead_sweep(store: LeadStore, *, netuid: int, now_window: int, policy: RetentionPolicy,
               known: dict[int, int], max_bytes: int) -> PruneReport:
    """A validator's window of retention with one listing: protect since its oldest kept checkpoint, then prune.

    `protect_window` and `prune_store` each listed the store; at 256 UIDs and
    weeks of windows a listing is the sweep's main cost, so both read one.
    """
    keys = store.list(f"{netuid}/")
    protect = protect_window(store, netuid, policy, known, max_bytes=max_bytes, keys=keys)
    return prune_store(store, netuid=netuid, now_window=now_window, policy=policy, protect_from_window=protect,
                       keys=keys)
