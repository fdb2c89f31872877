"""The signed shared model: followers take manifests and checkpoints only from the lead's hotkey.

A lead (//Alice) merges 3 windows of real SparseLoCo artifacts from four
miners, mirrors the selected artifacts into its own LocalDirStore, and
publishes signed manifests plus a signed checkpoint at version 2. Each test
damages a private copy of that store as an attacker with write access would
(or as a hostile lead would, with a valid signature) and checks that
`follow_lead` refuses with a typed error, keeps the model, never raises, and
that a node holding a bad state recovers to the lead's model hash.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from bittensor.sp_core import Keypair

from subnet.codec.bitpack import unpack_bits
from subnet.codec.config import CodecConfig
from subnet.codec.errors import ArtifactError, Malformed
from subnet.codec.sparseloco import Encoder, decode
from subnet.codec.wire import ArtifactHeader, header_metadata, read_artifact, sign_and_pack, write_artifact
from subnet.model.state import checkpoint_bytes
from subnet.model.state import model_hash as hash_of
from subnet.node.globalmodel import FollowStatus, build_global_model, follow_lead, persist, restore
from subnet.protocol.keys import artifact_key, checkpoint_key, manifest_key
from subnet.protocol.manifest import Manifest, ManifestEntry
from subnet.storage.local import LocalDirStore
from subnet.sync.aggregate import Contribution, build_manifest
from subnet.sync.apply import GlobalModel, apply_decoded, artifact_sha256
from subnet.sync.checkpoints import (
    CHECKPOINT_SCHEMA,
    CheckpointRef,
    catch_up,
    load_checkpoint_into,
    manifest_ready,
    publish_checkpoint,
    publish_manifest,
    read_manifest,
)
from subnet.sync.errors import (
    ArtifactRefused,
    ArtifactUnavailable,
    BadCheckpointSignature,
    BadManifestSignature,
    Diverged,
    SyncError,
    UnsignedCheckpoint,
    UnsignedManifest,
    VersionOutOfBounds,
    WrongSigner,
)
from subnet.sync.signing import sign_checkpoint_meta, verify_manifest_signature

torch.set_num_threads(1)
NETUID = 5
CODEC = CodecConfig(chunk=256, topk=16, value_bits=2)
MAX = 4 << 20
LEAD = Keypair.create_from_uri("//Alice")
MALLORY = Keypair.create_from_uri("//Mallory")
MINERS = [Keypair.create_from_uri(f"//TesseraSignedMiner{uid}") for uid in range(4)]
WINDOWS = (1, 2, 3)


def new_gm() -> GlobalModel:
    return build_global_model("tiny", 2, 0)


@dataclass
class Lead:
    root: Path
    hashes: dict[int, str]  # version -> the lead's model hash

    @property
    def store(self) -> LocalDirStore:
        return LocalDirStore(self.root)

    def copy(self, dest: Path) -> Lead:
        shutil.copytree(self.root, dest)
        return dataclasses.replace(self, root=dest)


def _contribution(gm: GlobalModel, store: LocalDirStore, window: int, uid: int) -> Contribution:
    kp, fragment = MINERS[uid], uid % 2
    shapes = gm.shapes(fragment)
    g = torch.Generator().manual_seed(100 * window + uid)
    encoded = Encoder(shapes, CODEC).encode({n: torch.randn(s, generator=g) * 0.01 for n, s in shapes.items()})
    header = ArtifactHeader(netuid=NETUID, window=window, uid=uid, hotkey=kp.ss58_address, fragment=fragment,
                            base_version=gm.version)
    data = write_artifact(encoded, header, kp)
    key = artifact_key(NETUID, window, kp.ss58_address, fragment)
    store.put(key, data)  # the lead mirrors what it selects
    art = read_artifact(data, expected_hotkey=kp.ss58_address, max_bytes=MAX, shapes=shapes, codec=CODEC)
    return Contribution(fragment=fragment, uid=uid, hotkey=kp.ss58_address, key=key, sha256=artifact_sha256(data),
                        score=1.0 + uid, delta=decode(art.encoded, shapes))


def _run_lead(root: Path) -> Lead:
    gm = new_gm()
    lead = Lead(root=root, hashes={0: gm.model_hash})
    store = lead.store
    for window in WINDOWS:
        chosen = [_contribution(gm, store, window, uid) for uid in range(len(MINERS))]
        manifest = build_manifest(netuid=NETUID, window=window, base_version=gm.version, contributions=chosen,
                                  outer_lr=0.8, top_g=2)
        by_key = {c.key: c.delta for c in chosen}
        apply_decoded(gm, manifest, [by_key[e.key] for e in manifest.entries])
        publish_manifest(store, dataclasses.replace(manifest, model_hash=gm.model_hash), LEAD)
        lead.hashes[gm.version] = gm.model_hash
        if gm.version == 2:
            publish_checkpoint(store, NETUID, gm, LEAD)
    return lead


@pytest.fixture(scope="module")
def base_lead(tmp_path_factory) -> Lead:
    return _run_lead(tmp_path_factory.mktemp("signed") / "lead")


@pytest.fixture
def lead(base_lead: Lead, tmp_path: Path) -> Lead:
    """A private copy of the lead's store, free to damage."""
    return base_lead.copy(tmp_path / "lead")


def follow(gm: GlobalModel, store: LocalDirStore, upto: int = 3, signer: str = LEAD.ss58_address, **kw):
    return follow_lead(gm, store, NETUID, upto, MAX, lead_hotkey=signer, codec=CODEC, **kw)


def _manifest(store: LocalDirStore, window: int) -> Manifest:
    return Manifest.from_json(store.get(manifest_key(NETUID, window), MAX))


def _drop_checkpoint(store: LocalDirStore) -> None:
    store.delete(checkpoint_key(NETUID, 2))


def _assert_refused_and_untouched(gm: GlobalModel, store: LocalDirStore, error: type[SyncError], hashes) -> None:
    before = gm.model_hash
    out = follow(gm, store)  # must not raise
    assert out.status is FollowStatus.REFUSED and error.__name__ in out.detail
    assert not out.changed and gm.version == 0 and gm.model_hash == before == hashes[0]


# --------------------------------------------------------------------------- the honest path


def test_honest_lead_is_followed_and_signed(base_lead: Lead) -> None:
    store = base_lead.store
    m = read_manifest(store, NETUID, 2, expected_signer=LEAD.ss58_address)
    assert m.signer == LEAD.ss58_address and m.model_hash == base_lead.hashes[2]
    verify_manifest_signature(m, LEAD.ss58_address)
    gm = new_gm()
    out = follow(gm, store)
    assert out.status is FollowStatus.ADVANCED and out.changed and out.version == 3
    assert gm.model_hash == base_lead.hashes[3]
    again = follow(gm, store)
    assert again.status is FollowStatus.UP_TO_DATE and not again.changed
    # A window bound holds back later manifests and the checkpoint of window 2 (not a refusal).
    gm1 = new_gm()
    assert follow(gm1, store, upto=1).status is FollowStatus.ADVANCED
    assert gm1.version == 1 and gm1.model_hash == base_lead.hashes[1]


def test_everything_refused_for_the_wrong_lead(base_lead: Lead) -> None:
    gm = new_gm()
    with pytest.raises(WrongSigner):
        read_manifest(base_lead.store, NETUID, 1, expected_signer=MALLORY.ss58_address)
    with pytest.raises(WrongSigner):
        catch_up(gm, base_lead.store, NETUID, 3, lambda e: None, expected_signer=MALLORY.ss58_address, codec=CODEC)
    out = follow(gm, base_lead.store, signer=MALLORY.ss58_address)
    assert out.status is FollowStatus.REFUSED and "WrongSigner" in out.detail
    assert gm.version == 0 and gm.model_hash == base_lead.hashes[0]


# --------------------------------------------------------------------------- manifests


def test_unsigned_manifest_refused(lead: Lead) -> None:
    store = lead.store
    _drop_checkpoint(store)
    m = _manifest(store, 1)
    store.put(manifest_key(NETUID, 1), dataclasses.replace(m, signer=None, signature=None).canonical_bytes())
    with pytest.raises(UnsignedManifest):
        read_manifest(store, NETUID, 1, expected_signer=LEAD.ss58_address)
    _assert_refused_and_untouched(new_gm(), store, UnsignedManifest, lead.hashes)


def test_manifest_signed_by_wrong_hotkey_refused(lead: Lead) -> None:
    store = lead.store
    _drop_checkpoint(store)
    m = _manifest(store, 1)
    forged = dataclasses.replace(m, signer=None, signature=None).sign(MALLORY)
    store.put(manifest_key(NETUID, 1), forged.canonical_bytes())
    with pytest.raises(WrongSigner):
        read_manifest(store, NETUID, 1, expected_signer=LEAD.ss58_address)
    _assert_refused_and_untouched(new_gm(), store, WrongSigner, lead.hashes)


@pytest.mark.parametrize("field,value", [
    ("outer_lr", 8.0),
    ("model_hash", "0" * 64),
    ("entry_weight", 5.0),
    ("signer", MALLORY.ss58_address),  # claims another signer with the lead's signature
])
def test_tampered_manifest_refused(lead: Lead, field: str, value: object) -> None:
    store = lead.store
    _drop_checkpoint(store)
    data = json.loads(store.get(manifest_key(NETUID, 1), MAX))
    if field.startswith("entry_"):
        data["entries"][0][field[6:]] = value
    else:
        data[field] = value
    store.put(manifest_key(NETUID, 1), Manifest.from_dict(data).canonical_bytes())  # well-formed, re-canonical
    expected = WrongSigner if field == "signer" else BadManifestSignature
    with pytest.raises(expected):
        read_manifest(store, NETUID, 1, expected_signer=LEAD.ss58_address)
    _assert_refused_and_untouched(new_gm(), store, expected, lead.hashes)


def test_refused_manifest_does_not_block_later_windows_past_a_checkpoint(lead: Lead) -> None:
    store = lead.store
    m = _manifest(store, 1)
    store.put(manifest_key(NETUID, 1), dataclasses.replace(m, signer=None, signature=None).canonical_bytes())
    gm = new_gm()
    out = follow(gm, store)  # checkpoint (version 2) jumps over the refused window 1
    assert out.status is FollowStatus.ADVANCED and gm.model_hash == lead.hashes[3]


def test_manifest_claiming_too_high_a_version_refused(lead: Lead) -> None:
    store = lead.store
    _drop_checkpoint(store)
    m = _manifest(store, 1)
    for lie in (dict(base_version=10**12 - 1, new_version=10**12), dict(base_version=0, new_version=2)):
        store.put(manifest_key(NETUID, 1), dataclasses.replace(m, **lie).sign(LEAD).canonical_bytes())
        with pytest.raises(VersionOutOfBounds):
            read_manifest(store, NETUID, 1, expected_signer=LEAD.ss58_address)
        _assert_refused_and_untouched(new_gm(), store, VersionOutOfBounds, lead.hashes)


# --------------------------------------------------------------------------- checkpoints


def _plant_checkpoint(store: LocalDirStore, state, version: int, *, signer: Keypair | None, window: int | None = None,
                      model_hash: str | None = None, key_version: int | None = None, **meta_changes) -> CheckpointRef:
    meta = {"schema": CHECKPOINT_SCHEMA, "netuid": NETUID, "version": version,
            "last_manifest_window": version if window is None else window,
            "model_hash": model_hash or hash_of(state)}
    if signer is not None:
        meta = sign_checkpoint_meta(meta, signer)
    meta.update(meta_changes)
    key = checkpoint_key(NETUID, version if key_version is None else key_version)
    store.put(key, checkpoint_bytes(state, meta))
    return CheckpointRef(version=version if key_version is None else key_version, key=key)


def _zero_state(gm: GlobalModel) -> dict[str, torch.Tensor]:
    return {n: torch.zeros_like(t) for n, t in gm.model.state_dict().items()}


def _load(gm: GlobalModel, store: LocalDirStore, ref: CheckpointRef):
    return load_checkpoint_into(gm, store, NETUID, ref, expected_signer=LEAD.ss58_address, current_window=3)


@pytest.mark.parametrize("signer,tamper,error", [
    (None, {}, UnsignedCheckpoint),
    (MALLORY, {}, WrongSigner),
    (LEAD, {"last_manifest_window": 1}, BadCheckpointSignature),  # signed, then a field changed
    (LEAD, {"signature": "00" * 64}, BadCheckpointSignature),
])
def test_unsigned_or_wrongly_signed_checkpoint_refused(lead: Lead, signer, tamper, error) -> None:
    store = lead.store
    gm = new_gm()
    ref = _plant_checkpoint(store, _zero_state(gm), 3, signer=signer, window=2, **tamper)
    with pytest.raises(error):
        _load(gm, store, ref)
    assert gm.version == 0 and gm.model_hash == lead.hashes[0]


def test_checkpoint_signature_is_checked_before_its_tensors_are_parsed(lead: Lead) -> None:
    store = lead.store
    gm = new_gm()
    ref = _plant_checkpoint(store, _zero_state(gm), 3, signer=MALLORY, window=2)
    data = store.get(ref.key, 1 << 30)
    store.put(ref.key, data[: len(data) - 100])  # the tensor section no longer parses; the header does
    with pytest.raises(WrongSigner):
        _load(gm, store, ref)
    assert gm.version == 0 and gm.model_hash == lead.hashes[0]


def test_all_zero_checkpoint_signed_by_attacker_is_not_adopted(lead: Lead, tmp_path: Path) -> None:
    store = lead.store
    gm = new_gm()
    zero = _zero_state(gm)
    ref = _plant_checkpoint(store, zero, 3, signer=MALLORY, window=3)
    with pytest.raises(WrongSigner):
        _load(gm, store, ref)
    out = follow(gm, store)  # refuses the planted file, then reaches the lead through the signed manifests
    assert out.status is FollowStatus.REFUSED and "WrongSigner" in out.detail
    assert gm.model_hash == lead.hashes[3] and all(t.abs().sum() > 0 for t in gm.model.parameters())
    # An attacker who wiped everything else: nothing is adopted, the model stays as it was.
    wiped = LocalDirStore(tmp_path / "wiped")
    _plant_checkpoint(wiped, zero, 3, signer=MALLORY, window=3)
    gm2 = new_gm()
    out2 = follow(gm2, wiped)
    assert out2.status is FollowStatus.REFUSED and not out2.changed and gm2.model_hash == lead.hashes[0]


def test_checkpoint_claiming_version_10_12_is_refused_and_not_persisted(lead: Lead, tmp_path: Path) -> None:
    store = lead.store
    gm = new_gm()
    big = 10**12
    # Signed by the lead itself: the bound refuses it whoever signed it.
    ref = _plant_checkpoint(store, _zero_state(gm), big, signer=LEAD, window=big - 1)
    with pytest.raises(VersionOutOfBounds):
        _load(gm, store, ref)
    ref2 = _plant_checkpoint(store, _zero_state(gm), big, signer=LEAD, window=2, key_version=3)
    with pytest.raises(SyncError):
        _load(gm, store, ref2)  # the key says 3, the metadata 10**12
    store.delete(ref2.key)
    ref3 = _plant_checkpoint(store, _zero_state(gm), 3, signer=LEAD, window=big)  # a window from the future
    with pytest.raises(VersionOutOfBounds):
        _load(gm, store, ref3)
    store.delete(ref3.key)
    assert gm.version == 0 and gm.model_hash == lead.hashes[0]
    # With the honest content next to it, the follower ignores the claim and reaches the lead ...
    out = follow(gm, store)
    assert out.status is FollowStatus.ADVANCED and gm.version == 3 and gm.model_hash == lead.hashes[3]
    # ... and what it persists is that, so after a restart it still follows the honest lead.
    persist(gm, tmp_path / "state")
    gm2 = new_gm()
    assert restore(gm2, tmp_path / "state") and gm2.version == 3
    assert follow(gm2, store).status is FollowStatus.UP_TO_DATE and gm2.model_hash == lead.hashes[3]
    # Alone in a store, the claim changes nothing.
    alone = LocalDirStore(tmp_path / "alone")
    _plant_checkpoint(alone, _zero_state(gm), big, signer=LEAD, window=big - 1)
    gm3 = new_gm()
    out3 = follow(gm3, alone)
    assert not out3.changed and gm3.version == 0 and gm3.model_hash == lead.hashes[0]


# --------------------------------------------------------------------------- recovery from a bad state


def _zero_model(gm: GlobalModel) -> None:
    with torch.no_grad():
        for p in gm.model.parameters():
            p.zero_()


@pytest.mark.parametrize("bad", ["version_10_12", "window_from_the_future", "wrong_bytes", "ahead_of_lead"])
def test_node_holding_a_bad_state_recovers(lead: Lead, tmp_path: Path, bad: str) -> None:
    store = lead.store
    gm = new_gm()
    assert follow(gm, store).status is FollowStatus.ADVANCED
    if bad == "version_10_12":  # what an older follower adopted from a planted checkpoint
        gm.version, gm.last_manifest_window = 10**12, 2
        _zero_model(gm)
    elif bad == "window_from_the_future":
        gm.version, gm.last_manifest_window = 10**12, 10**12 - 1
    elif bad == "wrong_bytes":  # a plausible version with the wrong weights: the signed manifest says so
        _zero_model(gm)
    else:  # claims window 1 at version 2, and the lead's manifest for window 1 is gone: window 2 builds on 1
        gm.version, gm.last_manifest_window = 2, 1
        store.delete(manifest_key(NETUID, 1))
    persist(gm, tmp_path / "state")  # and it survived a restart
    node = new_gm()
    assert restore(node, tmp_path / "state")
    out = follow(node, store)
    assert out.status is FollowStatus.RESET and out.changed and out.detail
    assert node.version == 3 and node.last_manifest_window == 3 and node.model_hash == lead.hashes[3]
    assert follow(node, store).status is FollowStatus.UP_TO_DATE


def test_recovery_without_a_checkpoint_replays_from_the_seed(lead: Lead) -> None:
    store = lead.store
    _drop_checkpoint(store)
    gm = new_gm()
    gm.version, gm.last_manifest_window = 10**12, 2
    _zero_model(gm)
    out = follow(gm, store)
    assert out.status is FollowStatus.RESET and gm.model_hash == lead.hashes[3]


def test_recovery_with_a_custom_reset_hook_and_without_one(lead: Lead) -> None:
    store = lead.store
    calls = []
    gm = new_gm()
    gm.version, gm.last_manifest_window = 10**12, 2

    def reset() -> None:
        calls.append(1)
        gm.reset_to_init()

    assert follow(gm, store, reset=reset).status is FollowStatus.RESET and calls == [1]
    assert gm.model_hash == lead.hashes[3]
    # No seeded init, no hook: the lead's newest signed checkpoint still recovers it ...
    bare = GlobalModel(model=gm.model, fragments=gm.fragments, version=10**12, last_manifest_window=2)
    assert follow(bare, store).status is FollowStatus.RESET and bare.model_hash == lead.hashes[3]
    # ... and with nothing to recover to, it is a typed refusal and the model is kept.
    _drop_checkpoint(store)
    bare.version = 10**12
    before = bare.model_hash
    out = follow(bare, store)
    assert out.status is FollowStatus.REFUSED and "Diverged" in out.detail and bare.model_hash == before
    with pytest.raises(Diverged):
        catch_up(bare, store, NETUID, 3, lambda e: None, expected_signer=LEAD.ss58_address, codec=CODEC)


# --------------------------------------------------------------------------- hostile artifacts


def _dense_artifact(gm: GlobalModel, window: int, uid: int, base_version: int) -> tuple[bytes, int]:
    """A validly signed artifact whose header says chunk == topk, sized as that layout would be."""
    kp, fragment = MINERS[uid], uid % 2
    shapes = gm.shapes(fragment)
    honest = Encoder(shapes, CODEC).encode({n: torch.zeros(s) for n, s in shapes.items()})
    header = ArtifactHeader(netuid=NETUID, window=window, uid=uid, hotkey=kp.ss58_address, fragment=fragment,
                            base_version=base_version)
    meta = header_metadata(honest, header)
    chunk = CODEC.chunk
    meta["topk"] = str(chunk)
    n_entries = sum(math.prod(s) for s in shapes.values())  # every element kept
    n_chunks = sum(math.ceil(math.prod(s) / chunk) for s in shapes.values())
    tensors = {
        "idx": torch.zeros(0, dtype=torch.uint8),  # 0-bit offsets: what crashed unpack_bits
        "occ": torch.zeros(math.ceil(2 * n_entries / 8), dtype=torch.uint8),
        "val": torch.zeros(math.ceil(n_entries * CODEC.value_bits / 8), dtype=torch.uint8),
        "scale": torch.zeros(n_chunks, 2, dtype=torch.bfloat16),
    }
    return sign_and_pack(tensors, meta, kp), fragment


def test_codec_refuses_chunk_equal_topk_with_a_typed_error(base_lead: Lead) -> None:
    gm = new_gm()
    data, fragment = _dense_artifact(gm, 4, 0, 3)
    for codec in (None, CODEC):
        with pytest.raises(Malformed):
            read_artifact(data, expected_hotkey=MINERS[0].ss58_address, max_bytes=MAX, shapes=gm.shapes(fragment),
                          codec=codec)
    with pytest.raises(Malformed):
        CodecConfig(chunk=256, topk=256)
    with pytest.raises(ArtifactError):
        unpack_bits(torch.zeros(0, dtype=torch.uint8), 0, 10)


def test_signed_dense_artifact_in_a_signed_manifest_is_refused(lead: Lead) -> None:
    store = lead.store
    gm = new_gm()
    assert follow(gm, store).status is FollowStatus.ADVANCED and gm.version == 3
    data, fragment = _dense_artifact(gm, 4, 0, gm.version)
    key = artifact_key(NETUID, 4, MINERS[0].ss58_address, fragment)
    store.put(key, data)
    entry = ManifestEntry(fragment=fragment, uid=0, hotkey=MINERS[0].ss58_address, key=key,
                          sha256=artifact_sha256(data), weight=1.0)
    hostile = Manifest(netuid=NETUID, window=4, base_version=3, new_version=4, entries=(entry,), outer_lr=1.0)
    publish_manifest(store, hostile, LEAD)  # a hostile lead: validly signed, within bounds
    out = follow(gm, store, upto=4)  # no exception
    assert out.status is FollowStatus.REFUSED and "ArtifactRefused" in out.detail and "topk" in out.detail
    assert not out.changed and gm.version == 3 and gm.model_hash == lead.hashes[3]


def test_any_decoder_exception_is_a_typed_refusal(base_lead: Lead) -> None:
    store = base_lead.store

    def fetch(entry):
        return store.get(entry.key, MAX)

    def exploding_decode(data, entry, shapes):
        raise ValueError("a bug-like failure on peer bytes")

    for kwargs, error in (({"decode": exploding_decode}, ArtifactRefused), ({}, ArtifactUnavailable)):
        gm = new_gm()
        fetcher = fetch if kwargs else _raising_fetch
        with pytest.raises(error):
            catch_up(gm, store, NETUID, 3, fetcher, expected_signer=LEAD.ss58_address, codec=CODEC,
                     use_checkpoint=False, **kwargs)
        assert gm.version == 0 and gm.model_hash == base_lead.hashes[0]


def _raising_fetch(entry):
    raise OSError("connection reset")


def test_manifest_ready_waits_for_a_validly_signed_manifest(lead: Lead) -> None:
    store = lead.store
    assert manifest_ready(store, NETUID, 3, expected_signer=LEAD.ss58_address)
    assert not manifest_ready(store, NETUID, 4, expected_signer=LEAD.ss58_address)
    assert not manifest_ready(store, NETUID, 3, expected_signer=MALLORY.ss58_address)
    store.put(manifest_key(NETUID, 3), b"{garbage")
    assert not manifest_ready(store, NETUID, 3, expected_signer=LEAD.ss58_address)  # never raises


# --------------------------------------------------------------------------- a hostile but correctly signed lead

from subnet.sync.bounds import ManifestPolicy  # noqa: E402
from subnet.sync.errors import PolicyViolation  # noqa: E402


@pytest.mark.parametrize("field,value", [
    ("outer_lr", 1e30),  # blows every parameter up by 30 orders of magnitude
    ("entry_weight", 3.4e38),
    ("model_hash", None),  # an honest lead always pins the hash its manifest produces
    ("many_entries", 9),  # more entries than top_g: a follower's memory is not the lead's to spend
])
def test_correctly_signed_manifest_no_honest_lead_would_publish_is_refused(lead: Lead, field: str,
                                                                           value: object) -> None:
    store = lead.store
    _drop_checkpoint(store)
    m = _manifest(store, 1)
    policy = ManifestPolicy(outer_lr=m.outer_lr, top_g=max(1, len(m.entries)))
    data = json.loads(m.to_json())
    if field == "entry_weight":
        data["entries"][0]["weight"] = value
    elif field == "many_entries":
        policy = ManifestPolicy(outer_lr=m.outer_lr, top_g=1)
        assert len(data["entries"]) > 1, "the fixture's manifest has one entry: the case proves nothing"
    else:
        data[field] = value
    data["signer"] = data["signature"] = None
    evil = Manifest.from_dict(data).sign(LEAD)  # the lead's own key: the signature is valid
    store.put(manifest_key(NETUID, 1), evil.canonical_bytes())
    gm = new_gm()
    before = gm.model_hash
    out = follow(gm, store, policy=policy)
    assert out.status is FollowStatus.REFUSED and PolicyViolation.__name__ in out.detail, out
    assert gm.version == 0 and gm.model_hash == before
