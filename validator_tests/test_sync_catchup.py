"""Manifests, checkpoints and catch-up end to end with real artifacts and stores (subnet.sync).

A lead aggregates 3 windows of signed, SparseLoCo-encoded artifacts from six
miners (two fragments, top 2 per fragment), applies them, publishes each
manifest and a checkpoint after the 2nd, both signed with the lead's hotkey;
followers must reach its exact bytes. (Refusals of unsigned, mis-signed and
out-of-bounds content: test_sync_signed.py.)
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from bittensor.sp_core import Keypair

from subnet.codec.config import CodecConfig
from subnet.codec.sparseloco import Encoder, decode
from subnet.codec.wire import ArtifactHeader, read_artifact, write_artifact
from subnet.model.fragments import partition
from subnet.model.presets import build_model
from subnet.protocol.keys import artifact_key, checkpoint_key, manifest_key
from subnet.protocol.manifest import Manifest
from subnet.storage.local import LocalDirStore
from subnet.sync.aggregate import Contribution, build_manifest, select_top
from subnet.sync.apply import GlobalModel, apply_decoded, apply_manifest, artifact_sha256, fetch_from_stores
from subnet.sync.checkpoints import (
    CheckpointRef,
    catch_up,
    latest_checkpoint,
    load_checkpoint_into,
    manifest_windows,
    publish_checkpoint,
    publish_manifest,
    read_manifest,
    should_checkpoint,
)
from subnet.sync.errors import (
    ArtifactHashMismatch,
    ArtifactUnavailable,
    ModelHashMismatch,
    SyncError,
    VersionMismatch,
)

torch.set_num_threads(1)
NETUID = 3
CODEC = CodecConfig(chunk=256, topk=16, value_bits=2)
MAX = 4 << 20
N_MINERS = 6
TOP_G = 2
LEAD = Keypair.create_from_uri("//TesseraLead")
SIGNER = LEAD.ss58_address


def new_gm() -> GlobalModel:
    model = build_model("tiny", seed=0)
    return GlobalModel(model=model, fragments=partition(model, 2))


@dataclass
class Net:
    root: Path
    hashes: dict[int, str]  # version -> lead model hash
    keys_by_window: dict[int, list[str]]  # artifact keys selected in each window's manifest
    hotkeys: list[str]

    def lead_store(self) -> LocalDirStore:
        return LocalDirStore(self.root / "lead")

    def miner_stores(self) -> dict[str, LocalDirStore]:
        return {hk: LocalDirStore(self.root / "miners" / hk) for hk in self.hotkeys}

    def fetch(self):
        return fetch_from_stores(self.miner_stores(), MAX)

    def copy(self, dest: Path) -> Net:
        shutil.copytree(self.root, dest)
        return dataclasses.replace(self, root=dest)


def _run_lead(root: Path) -> Net:
    gm = new_gm()
    keypairs = [Keypair.create_from_uri(f"//TesseraMiner{uid}") for uid in range(N_MINERS)]
    hotkeys = [kp.ss58_address for kp in keypairs]
    net = Net(root=root, hashes={0: gm.model_hash}, keys_by_window={}, hotkeys=hotkeys)
    lead, miners = net.lead_store(), net.miner_stores()
    for window in (1, 2, 3):
        scored: dict[int, list[Contribution]] = {0: [], 1: []}
        for uid, kp in enumerate(keypairs):
            fragment = uid % 2
            shapes = gm.shapes(fragment)
            g = torch.Generator().manual_seed(1000 * window + uid)
            pg = {n: torch.randn(s, generator=g) * (0.01 * (1 + uid)) for n, s in shapes.items()}
            encoded = Encoder(shapes, CODEC).encode(pg)
            header = ArtifactHeader(netuid=NETUID, window=window, uid=uid, hotkey=kp.ss58_address,
                                    fragment=fragment, base_version=gm.version)
            key = artifact_key(NETUID, window, kp.ss58_address, fragment)
            miners[kp.ss58_address].put(key, write_artifact(encoded, header, kp))
            # The lead's side: fetch, verify, decode, score.
            data = miners[kp.ss58_address].get(key, MAX)
            art = read_artifact(data, expected_hotkey=kp.ss58_address, max_bytes=MAX, shapes=shapes)
            scored[fragment].append(Contribution(
                fragment=fragment, uid=uid, hotkey=kp.ss58_address, key=key, sha256=artifact_sha256(data),
                score=float((uid * 7 + window) % 5), delta=decode(art.encoded, shapes)))
        chosen = [c for f in (0, 1) for c in select_top(scored[f], TOP_G)]
        manifest = build_manifest(netuid=NETUID, window=window, base_version=gm.version, contributions=chosen,
                                  outer_lr=0.8, top_g=TOP_G)
        by_key = {c.key: c.delta for c in chosen}
        apply_decoded(gm, manifest, [by_key[e.key] for e in manifest.entries])
        manifest = dataclasses.replace(manifest, model_hash=gm.model_hash)
        publish_manifest(lead, manifest, LEAD)
        net.hashes[gm.version] = gm.model_hash
        net.keys_by_window[window] = [e.key for e in manifest.entries]
        if should_checkpoint(gm.version, 2):
            publish_checkpoint(lead, NETUID, gm, LEAD)
    return net


@pytest.fixture(scope="module")
def base_net(tmp_path_factory) -> Net:
    return _run_lead(tmp_path_factory.mktemp("net") / "run")


@pytest.fixture
def net(base_net: Net, tmp_path: Path) -> Net:
    """A private copy of the lead's and miners' stores, free to damage."""
    return base_net.copy(tmp_path / "copy")


def test_lead_run_is_well_formed(base_net: Net) -> None:
    lead = base_net.lead_store()
    assert manifest_windows(lead, NETUID) == [1, 2, 3]
    ref = latest_checkpoint(lead, NETUID)
    assert ref is not None and ref.version == 2 and ref.key == checkpoint_key(NETUID, 2)
    assert len(set(base_net.hashes.values())) == 4  # every window moved the model
    raw = lead.get(manifest_key(NETUID, 2), MAX)
    m = Manifest.from_json(raw)
    assert raw == m.canonical_bytes() and read_manifest(lead, NETUID, 2, expected_signer=SIGNER) == m
    assert len(m.entries) == 2 * TOP_G and m.model_hash == base_net.hashes[2]
    assert read_manifest(lead, NETUID, 7, expected_signer=SIGNER) is None


def test_late_joiner_via_checkpoint_matches_lead(base_net: Net) -> None:
    gm = new_gm()
    assert catch_up(gm, base_net.lead_store(), NETUID, 3, base_net.fetch(), expected_signer=SIGNER,
                    codec=CODEC) == 3
    assert gm.model_hash == base_net.hashes[3] and gm.last_manifest_window == 3


def test_late_joiner_replaying_everything_matches_lead(base_net: Net, tmp_path: Path) -> None:
    gm = new_gm()
    assert catch_up(gm, base_net.lead_store(), NETUID, 3, base_net.fetch(), use_checkpoint=False,
                    expected_signer=SIGNER, codec=CODEC) == 3
    assert gm.model_hash == base_net.hashes[3]
    # And a lead store that never had a checkpoint.
    net = base_net.copy(tmp_path / "nockpt")
    net.lead_store().delete(checkpoint_key(NETUID, 2))
    assert latest_checkpoint(net.lead_store(), NETUID) is None
    gm2 = new_gm()
    catch_up(gm2, net.lead_store(), NETUID, 3, net.fetch(), expected_signer=SIGNER, codec=CODEC)
    assert gm2.model_hash == base_net.hashes[3]


def test_follower_applies_window_by_window(base_net: Net) -> None:
    gm = new_gm()
    lead = base_net.lead_store()
    for window in (1, 2, 3):
        m = read_manifest(lead, NETUID, window, expected_signer=SIGNER)
        assert apply_manifest(gm, m, base_net.fetch(), max_artifact_bytes=MAX, codec=CODEC) == window
        assert gm.model_hash == base_net.hashes[window]
    # Up to a window bound only.
    gm2 = new_gm()
    assert catch_up(gm2, lead, NETUID, 1, base_net.fetch(), use_checkpoint=False, expected_signer=SIGNER,
                    codec=CODEC) == 1
    assert gm2.model_hash == base_net.hashes[1]
    # jumps to the checkpoint, then window 3
    assert catch_up(gm2, lead, NETUID, 3, base_net.fetch(), expected_signer=SIGNER, codec=CODEC) == 3
    assert gm2.model_hash == base_net.hashes[3]


def test_missing_artifact_raises_instead_of_forking(net: Net) -> None:
    hk_of = {k: k.split("/")[2].split(".")[0] for w in net.keys_by_window.values() for k in w}
    gone = net.keys_by_window[3][0]
    net.miner_stores()[hk_of[gone]].delete(gone)
    gm = new_gm()
    with pytest.raises(ArtifactUnavailable, match="unavailable"):
        catch_up(gm, net.lead_store(), NETUID, 3, net.fetch(), expected_signer=SIGNER, codec=CODEC)
    # It stopped at the checkpoint, with exactly the lead's bytes for that version.
    assert gm.version == 2 and gm.model_hash == net.hashes[2]


def test_missing_old_artifact_is_bridged_by_the_checkpoint(net: Net) -> None:
    hk_of = {k: k.split("/")[2].split(".")[0] for w in net.keys_by_window.values() for k in w}
    gone = net.keys_by_window[1][1]
    net.miner_stores()[hk_of[gone]].delete(gone)
    gm = new_gm()
    with pytest.raises(SyncError):
        catch_up(gm, net.lead_store(), NETUID, 3, net.fetch(), use_checkpoint=False, expected_signer=SIGNER,
                 codec=CODEC)
    assert gm.version == 0 and gm.model_hash == net.hashes[0]  # untouched, not half-applied
    assert catch_up(gm, net.lead_store(), NETUID, 3, net.fetch(), expected_signer=SIGNER, codec=CODEC) == 3
    assert gm.model_hash == net.hashes[3]


def test_tampered_artifact_is_refused(net: Net) -> None:
    key = net.keys_by_window[1][0]
    store = net.miner_stores()[key.split("/")[2].split(".")[0]]
    data = bytearray(store.get(key, MAX))
    data[-1] ^= 0x01
    store.put(key, bytes(data))
    gm = new_gm()
    m = read_manifest(net.lead_store(), NETUID, 1, expected_signer=SIGNER)
    with pytest.raises(ArtifactHashMismatch):
        apply_manifest(gm, m, net.fetch(), codec=CODEC)
    assert gm.version == 0 and gm.model_hash == net.hashes[0]


def test_wrong_published_hash_restores_the_model(base_net: Net) -> None:
    gm = new_gm()
    m = read_manifest(base_net.lead_store(), NETUID, 1, expected_signer=SIGNER)
    bad = dataclasses.replace(m, model_hash="0" * 64)
    with pytest.raises(ModelHashMismatch):
        apply_manifest(gm, bad, base_net.fetch(), codec=CODEC)
    assert gm.version == 0 and gm.model_hash == base_net.hashes[0]
    # Without verification it applies (and reaches the real hash).
    apply_manifest(gm, bad, base_net.fetch(), verify_hash=False, codec=CODEC)
    assert gm.model_hash == base_net.hashes[1]


def test_manifest_for_another_version_is_refused(base_net: Net) -> None:
    gm = new_gm()
    m2 = read_manifest(base_net.lead_store(), NETUID, 2, expected_signer=SIGNER)
    with pytest.raises(VersionMismatch):
        apply_manifest(gm, m2, base_net.fetch(), codec=CODEC)


def test_corrupt_checkpoint_is_refused(net: Net) -> None:
    lead = net.lead_store()
    key = checkpoint_key(NETUID, 2)
    data = bytearray(lead.get(key, 1 << 30))
    data[-5] ^= 0xFF  # flip bits inside the last tensor, header (and its signature) intact
    lead.put(key, bytes(data))
    gm = new_gm()
    with pytest.raises(SyncError, match="model hash"):
        load_checkpoint_into(gm, lead, NETUID, CheckpointRef(version=2, key=key), expected_signer=SIGNER,
                             current_window=3)
    assert gm.version == 0 and gm.model_hash == net.hashes[0]
    # catch_up refuses it (and says so) but still reaches the lead through the signed manifests.
    with pytest.raises(SyncError, match="model hash"):
        catch_up(gm, lead, NETUID, 3, net.fetch(), expected_signer=SIGNER, codec=CODEC)
    assert gm.version == 3 and gm.model_hash == net.hashes[3]
    # With an artifact of window 1 gone too, nothing bridges the gap: the model stays untouched.
    gone = net.keys_by_window[1][0]
    net.miner_stores()[gone.split("/")[2].split(".")[0]].delete(gone)
    gm2 = new_gm()
    with pytest.raises(SyncError):
        catch_up(gm2, lead, NETUID, 3, net.fetch(), expected_signer=SIGNER, codec=CODEC)
    assert gm2.version == 0 and gm2.model_hash == net.hashes[0]


def test_invalid_manifest_in_store_is_a_sync_error(net: Net) -> None:
    net.lead_store().put(manifest_key(NETUID, 2), b'{"not": "a manifest"}')
    with pytest.raises(SyncError, match="invalid"):
        read_manifest(net.lead_store(), NETUID, 2, expected_signer=SIGNER)
