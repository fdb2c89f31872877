"""Retention: stores keep a horizon, and a node joining after it still reaches the lead's model hash.

A real lead (tiny model, two fragments, signed SparseLoCo artifacts, real
LocalDirStores) runs more windows than the horizon, mirroring what it selects,
publishing signed manifests and checkpoints and sweeping its own store and the
miners' stores every window, as the loops do.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from bittensor.sp_core import Keypair
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.codec.config import CodecConfig
from subnet.codec.sparseloco import Encoder, decode
from subnet.codec.wire import ArtifactHeader, write_artifact
from subnet.errors import ConfigError
from subnet.model.fragments import partition
from subnet.model.presets import build_model
from subnet.protocol.keys import artifact_key, checkpoint_key, manifest_key
from subnet.storage.local import LocalDirStore
from subnet.sync.aggregate import Contribution, build_manifest, select_top
from subnet.sync.apply import GlobalModel, apply_decoded, artifact_sha256
from subnet.sync.checkpoints import (
    PROBE_WINDOWS,
    catch_up_report,
    publish_checkpoint,
    publish_manifest,
    should_checkpoint,
    windows_to_replay,
)
from subnet.sync.retention import (
    RetentionPolicy,
    classify,
    lead_sweep,
    plan_deletions,
    protect_window,
    prune_store,
)

torch.set_num_threads(1)
NETUID = 5
CODEC = CodecConfig(chunk=256, topk=16, value_bits=2)
MAX = 4 << 20
LEAD = Keypair.create_from_uri("//RetentionLead")
MINERS = [Keypair.create_from_uri(f"//RetentionMiner{u}") for u in range(4)]
LEAD_POLICY = RetentionPolicy(windows=4, checkpoints=1)
MINER_POLICY = RetentionPolicy(windows=2, checkpoints=0)
CHECKPOINT_EVERY = 3
WINDOWS = 14


def _gm() -> GlobalModel:
    model = build_model("tiny", seed=0)
    return GlobalModel(model=model, fragments=partition(model, 2))


class CountingStore(LocalDirStore):
    """The real local store, counting its listings (what the sweep's cost is made of)."""

    list_calls = 0

    def list(self, prefix: str) -> list[str]:
        self.list_calls += 1
        return super().list(prefix)


def _store_bytes(store: LocalDirStore) -> int:
    return sum(p.stat().st_size for p in store.root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("retention")
    lead = CountingStore(root / "lead")
    miners = {kp.ss58_address: LocalDirStore(root / "miners" / kp.ss58_address) for kp in MINERS}
    gm = _gm()
    hashes, sizes, known = {}, [], {}
    for window in range(1, WINDOWS + 1):
        contribs: list[Contribution] = []
        for uid, kp in enumerate(MINERS):
            fragment = uid % 2
            shapes = gm.shapes(fragment)
            g = torch.Generator().manual_seed(100 * window + uid)
            encoded = Encoder(shapes, CODEC).encode({n: torch.randn(s, generator=g) * 0.01 for n, s in shapes.items()})
            header = ArtifactHeader(netuid=NETUID, window=window, uid=uid, hotkey=kp.ss58_address, fragment=fragment,
                                    base_version=gm.version)
            key = artifact_key(NETUID, window, kp.ss58_address, fragment)
            data = write_artifact(encoded, header, kp)
            miners[kp.ss58_address].put(key, data)
            contribs.append(Contribution(fragment=fragment, uid=uid, hotkey=kp.ss58_address, key=key,
                                         sha256=artifact_sha256(data), score=float((uid + window) % 3 + 1),
                                         delta=decode(encoded, shapes)))
        chosen = [c for f in (0, 1) for c in select_top([c for c in contribs if c.fragment == f], 1)]
        for c in chosen:  # the lead mirrors what it selects; followers read only its store
            lead.put(c.key, miners[c.hotkey].get(c.key, MAX))
        manifest = build_manifest(netuid=NETUID, window=window, base_version=gm.version, contributions=chosen,
                                  outer_lr=0.8, top_g=1)
        by_key = {c.key: c.delta for c in chosen}
        apply_decoded(gm, manifest, [by_key[e.key] for e in manifest.entries])
        publish_manifest(lead, dataclasses.replace(manifest, model_hash=gm.model_hash), LEAD)
        hashes[window] = gm.model_hash
        if should_checkpoint(gm.version, CHECKPOINT_EVERY):
            publish_checkpoint(lead, NETUID, gm, LEAD)
            known[gm.version] = gm.last_manifest_window
        listed_before = lead.list_calls
        lead_sweep(lead, netuid=NETUID, now_window=window, policy=LEAD_POLICY, known=known, max_bytes=64 << 20)
        assert lead.list_calls == listed_before + 1  # protect and prune share one listing
        for store in miners.values():
            prune_store(store, netuid=NETUID, now_window=window, policy=MINER_POLICY)
        sizes.append(_store_bytes(lead))
    return lead, miners, hashes, sizes, known


def test_old_keys_are_gone_from_every_store(run) -> None:
    lead, miners, _, sizes, known = run
    keys = lead.list(f"{NETUID}/")
    checkpoints = [k for k in keys if classify(k, NETUID)[0].value == "checkpoint"]
    assert checkpoints == [checkpoint_key(NETUID, 12)]  # versions 3, 6, 9 were dropped, 12 kept
    assert known[12] == 12
    windows = sorted({classify(k, NETUID)[1] for k in keys if k not in checkpoints})
    # the horizon (>= 14 - 4 = 10) and nothing older: the checkpoint at window 12 protects nothing extra
    assert windows == list(range(10, WINDOWS + 1)), windows
    assert lead.get(manifest_key(NETUID, 1), MAX) is None
    for hk, store in miners.items():
        assert sorted({classify(k, NETUID)[1] for k in store.list(f"{NETUID}/")}) == [12, 13, 14], hk
    # flat: the lead's store stops growing once the horizon is reached
    assert max(sizes[8:]) <= 1.3 * min(sizes[8:]), sizes


def test_a_node_joining_after_the_horizon_reaches_the_leads_hash(run) -> None:
    lead, _, hashes, _, _ = run
    gm = _gm()

    def fetch(entry):
        return lead.get(entry.key, MAX)

    report = catch_up_report(gm, lead, NETUID, WINDOWS, fetch, expected_signer=LEAD.ss58_address, codec=CODEC)
    assert report.error is None, report.error
    assert gm.model_hash == hashes[WINDOWS] and gm.last_manifest_window == WINDOWS
    # a follower one window behind replays by key, without listing the store
    assert windows_to_replay(lead, NETUID, after=WINDOWS - 1, upto=WINDOWS) == ([WINDOWS], True)
    assert windows_to_replay(lead, NETUID, after=-1, upto=WINDOWS)[1] is False


def test_the_lead_keeps_history_after_its_oldest_kept_checkpoint(tmp_path) -> None:
    keys = [manifest_key(NETUID, w) for w in range(0, 30)] + [artifact_key(NETUID, w, "hk", 0) for w in range(30)]
    keys += [checkpoint_key(NETUID, v) for v in (5, 10, 15)]
    plan = plan_deletions(keys, netuid=NETUID, now_window=29, policy=RetentionPolicy(windows=4, checkpoints=2),
                          protect_from_window=12)
    assert checkpoint_key(NETUID, 5) in plan and checkpoint_key(NETUID, 10) not in plan
    assert manifest_key(NETUID, 11) in plan and manifest_key(NETUID, 12) not in plan
    assert artifact_key(NETUID, 12, "hk", 0) not in plan
    # no checkpoint yet: the lead protects everything
    store = LocalDirStore(tmp_path / "s")
    assert protect_window(store, NETUID, RetentionPolicy(), {}, max_bytes=1) == 0


_KEYS = st.one_of(
    st.builds(lambda w: manifest_key(NETUID, w), st.integers(0, 200)),
    st.builds(lambda w, f: artifact_key(NETUID, w, "hk", f), st.integers(0, 200), st.integers(0, 3)),
    st.builds(lambda v: checkpoint_key(NETUID, v), st.integers(0, 50)),
    st.builds(lambda w: manifest_key(NETUID + 1, w), st.integers(0, 200)),  # another subnet's: never touched
    st.sampled_from(["notes/readme.txt", f"{NETUID}/misc/x.bin"]),
)


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(_KEYS, unique=True, max_size=60), now=st.integers(0, 250), windows=st.integers(0, 50),
       checkpoints=st.integers(0, 4), protect=st.one_of(st.none(), st.integers(0, 250)))
def test_plan_deletes_exactly_what_is_past_the_horizon(keys, now, windows, checkpoints, protect) -> None:
    policy = RetentionPolicy(windows=windows, checkpoints=checkpoints)
    plan = set(plan_deletions(keys, netuid=NETUID, now_window=now, policy=policy, protect_from_window=protect))
    assert plan <= set(keys)
    ckpts = sorted((classify(k, NETUID)[1] for k in keys if (c := classify(k, NETUID)) and c[0].value == "checkpoint"),
                   reverse=True)
    kept_ckpts = set(ckpts if checkpoints == 0 else ckpts[:checkpoints])
    limit = now - windows if protect is None else min(now - windows, protect)
    for k in keys:
        c = classify(k, NETUID)
        if c is None:
            assert k not in plan
        elif c[0].value == "checkpoint":
            assert (k in plan) == (c[1] not in kept_ckpts)
        else:
            assert (k in plan) == (windows > 0 and c[1] < limit)


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ConfigError):
        RetentionPolicy(windows=-1)
    assert PROBE_WINDOWS >= 1
