"""A node's copy of the global model: build it, persist it, keep it in step with the lead.

Version 0 is the seeded initialisation every node builds identically. The lead
validator's store holds manifests (one per merged window), the artifacts they
select (mirrored there by the lead, so followers depend on one store, not on
every miner's) and periodic checkpoints. `follow_lead` replays what is new;
`persist`/`restore` keep the local copy across restarts so a restart does not
replay history.
"""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from subnet.model.fragments import partition
from subnet.model.presets import build_model
from subnet.model.state import load_checkpoint, save_checkpoint
from subnet.storage.base import ArtifactStore
from subnet.sync.apply import GlobalModel
from subnet.sync.checkpoints import catch_up
from subnet.sync.errors import SyncError

LOCAL_FILE = "global_model.safetensors"


def build_global_model(preset: str, n_fragments: int, seed: int) -> GlobalModel:
    model = build_model(preset, seed=seed)
    return GlobalModel(model=model, fragments=partition(model, n_fragments))


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


def follow_lead(gm: GlobalModel, lead_store: ArtifactStore, netuid: int, upto_window: int,
                max_artifact_bytes: int) -> bool:
    """Apply the lead's manifests up to `upto_window`; True if the version changed.

    Artifacts are read from the lead's store (the lead mirrors what it selects).
    A SyncError is logged and the node keeps the last version applied in full;
    a later call jumps the gap through a newer checkpoint.
    """
    before = gm.version

    def fetch(entry):  # noqa: ANN001 - ManifestEntry
        return lead_store.get(entry.key, max_artifact_bytes)

    try:
        catch_up(gm, lead_store, netuid, upto_window, fetch, max_artifact_bytes=max_artifact_bytes)
    except SyncError as exc:
        logger.warning("could not follow the lead to window {}: {}", upto_window, exc)
    return gm.version != before
