"""A node's copy of the global model: build it, persist it, keep it in step with the lead.

Version 0 is the seeded initialisation every node builds identically (and can
rebuild: `GlobalModel.init_model`). The lead validator's store holds signed
manifests (one per merged window), the artifacts they select (mirrored there
by the lead, so followers depend on one store, not on every miner's) and
signed periodic checkpoints. `follow_lead` replays what is new;
`persist`/`restore` keep the local copy across restarts so a restart does not
replay history (a bad copy is caught and reset by the next `follow_lead`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path

from loguru import logger

from subnet.codec.config import CodecConfig
from subnet.model.fragments import partition
from subnet.model.presets import build_model
from subnet.model.state import load_checkpoint, save_checkpoint
from subnet.protocol.manifest import ManifestEntry
from subnet.storage.base import ArtifactStore
from subnet.sync.apply import GlobalModel
from subnet.sync.bounds import ManifestPolicy
from subnet.sync.checkpoints import catch_up_report

LOCAL_FILE = "global_model.safetensors"


class FollowStatus(Enum):
    """How a `follow_lead` call ended."""

    UP_TO_DATE = "up_to_date"  # nothing new in the lead's store
    ADVANCED = "advanced"  # applied a checkpoint and/or manifests
    REFUSED = "refused"  # something was refused (detail); the model holds the last version applied in full
    RESET = "reset"  # the local state was off the lead's signed history: reset, then replayed


@dataclass(frozen=True, kw_only=True)
class FollowOutcome:
    """Result of one `follow_lead` call.

    changed: the model's version or bytes moved (the caller persists it).
    detail: the typed refusal or the reset reason, for logs and events.
    """

    status: FollowStatus
    version: int
    changed: bool
    detail: str = ""


def build_global_model(preset: str, n_fragments: int, seed: int) -> GlobalModel:
    model = build_model(preset, seed=seed)
    return GlobalModel(model=model, fragments=partition(model, n_fragments),
                       init_model=partial(build_model, preset, seed=seed))


def persist(gm: GlobalModel, state_dir: str | Path) -> None:
    """Atomically save the model with its version (tmp + fsync + rename inside save_checkpoint)."""
    path = Path(state_dir).expanduser() / LOCAL_FILE
    save_checkpoint(gm.model, path, {"version": gm.version, "last_manifest_window": gm.last_manifest_window})


def restore(gm: GlobalModel, state_dir: str | Path) -> bool:
    """Load the persisted copy if present and compatible; False means start from version 0."""
    path = Path(state_dir).expanduser() / LOCAL_FILE
    if not path.exists():
        return False
    try:
        state, meta = load_checkpoint(path)
        gm.model.load_state_dict(state, strict=True)
        gm.version = int(meta["version"])
        gm.last_manifest_window = int(meta["last_manifest_window"])
    except Exception as exc:  # incompatible or unreadable: the lead's store is the source of truth
        logger.warning("ignoring local model copy {}: {}", path, exc)
        return False
    logger.info("restored local global model: version {} (window {})", gm.version, gm.last_manifest_window)
    return True


def manifest_policy(cfg: object, rt: object = None) -> ManifestPolicy:
    """The manifest policy of a node's config: outer step, consensus settings, spec version (sync.bounds).

    `cfg` is a neuron config (a bare SyncConfig gives the outer-step checks only); `rt`'s
    version guard, when it has one, hears the lead's spec version from each manifest.
    """
    guard = getattr(rt, "version_guard", None)
    return ManifestPolicy.from_config(cfg, on_spec_version=guard.observe_manifest if guard is not None else None)


def follow_lead(gm: GlobalModel, lead_store: ArtifactStore, netuid: int, upto_window: int,
                max_artifact_bytes: int, *, lead_hotkey: str, codec: CodecConfig,
                reset: Callable[[], None] | None = None, policy: ManifestPolicy | None = None) -> FollowOutcome:
    """Apply the lead's signed manifests up to `upto_window`; never raises for what the store holds.

    Only manifests and checkpoints signed by `lead_hotkey` (the hotkey the
    chain names as lead) and within the version bounds are applied; artifacts
    are read from the lead's store (the lead mirrors what it selects) and
    decoded with the pinned `codec`. A refusal is logged with its typed error
    and the node keeps the last version applied in full; a later call jumps
    the gap through a newer checkpoint. If the local state is off the lead's
    signed history (see checkpoints.catch_up for the rule), the node resets:
    `reset` (default: `gm.reset_to_init`, the seeded version 0), then the
    lead's newest valid checkpoint, then replay. `policy` refuses correctly
    signed manifests no honest lead would publish (sync.bounds.ManifestPolicy).
    """
    before = (gm.version, gm.last_manifest_window)
    hook = reset if reset is not None else (gm.reset_to_init if gm.init_model is not None else None)

    def fetch(entry: ManifestEntry) -> bytes | None:
        return lead_store.get(entry.key, max_artifact_bytes)

    try:
        report = catch_up_report(gm, lead_store, netuid, upto_window, fetch, expected_signer=lead_hotkey,
                                 codec=codec, max_artifact_bytes=max_artifact_bytes, reset=hook, policy=policy)
    except Exception as exc:  # noqa: BLE001 - a bug must not end Miner.run / Validator.run either
        logger.exception("following the lead {} to window {} failed", lead_hotkey, upto_window)
        return FollowOutcome(status=FollowStatus.REFUSED, version=gm.version,
                             changed=(gm.version, gm.last_manifest_window) != before,
                             detail=f"{type(exc).__name__}: {exc}")
    changed = report.reset_reason is not None or (gm.version, gm.last_manifest_window) != before
    if report.error is not None:
        logger.warning("could not follow the lead {} to window {}: {}: {}", lead_hotkey, upto_window,
                       type(report.error).__name__, report.error)
        return FollowOutcome(status=FollowStatus.REFUSED, version=gm.version, changed=changed,
                             detail=f"{type(report.error).__name__}: {report.error}")
    if report.reset_reason is not None:
        return FollowOutcome(status=FollowStatus.RESET, version=gm.version, changed=True,
                             detail=report.reset_reason)
    status = FollowStatus.ADVANCED if changed else FollowStatus.UP_TO_DATE
    return FollowOutcome(status=status, version=gm.version, changed=changed)
