"""The lead's spec version on its manifests: a follower on older code warns or stops (exit 4), per --version.check."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from bittensor.sp_core import Keypair

import subnet
from subnet.config import parse_config
from subnet.consensus import consensus_values
from subnet.node.config import MinerNeuronConfig, ValidatorNeuronConfig
from subnet.node.globalmodel import FollowStatus, build_global_model, follow_lead, manifest_policy
from subnet.storage.local import LocalDirStore
from subnet.sync.aggregate import build_manifest
from subnet.sync.apply import apply_decoded
from subnet.sync.bounds import ManifestPolicy, NewerSpecManifest, check_manifest_policy
from subnet.sync.checkpoints import publish_manifest
from subnet.version import (
    EXIT_OUTDATED,
    VersionConfig,
    VersionGuard,
    VersionOutcome,
    VersionOutdated,
    compare_lead,
)

LEAD = Keypair.create_from_uri("//Alice")
OURS = subnet.SPEC_VERSION


def chain_key(value: int = 0):
    """The subnet's WeightsVersionKey as read from the chain (0: the subnet requires nothing)."""
    return lambda: value


def test_compare_lead_golden_values() -> None:
    assert compare_lead(OURS, OURS).outcome is VersionOutcome.CURRENT
    assert compare_lead(OURS, OURS - 1).outcome is VersionOutcome.AHEAD
    out = compare_lead(OURS, OURS + 1)
    assert out.outcome is VersionOutcome.OUTDATED and f"spec version {OURS + 1}" in out.detail and "lead" in out.detail


def test_guard_refuses_at_the_next_window_after_a_newer_lead_manifest() -> None:
    guard = VersionGuard(cfg=VersionConfig(check="refuse", every_windows=10), read_key=chain_key())
    assert guard.at_start().outcome is VersionOutcome.CURRENT
    guard.observe_manifest(OURS)  # same version: nothing to do
    assert guard.tick() is None
    guard.observe_manifest(OURS + 1)
    with pytest.raises(VersionOutdated) as exc:
        guard.tick()
    assert exc.value.exit_status == EXIT_OUTDATED == 4 and "lead validator's manifests" in str(exc.value)


def test_guard_warns_then_repeats_every_n_windows_and_off_ignores() -> None:
    guard = VersionGuard(cfg=VersionConfig(check="warn", every_windows=3), read_key=chain_key())
    guard.observe_manifest(OURS + 2)
    guard.observe_manifest(OURS + 1)  # an older manifest later does not lower what was seen
    assert guard.lead_spec == OURS + 2
    first = guard.tick()  # window 1: acted on at once (logged, not raised)
    assert first is not None and first.outcome is VersionOutcome.OUTDATED and first.required == OURS + 2
    assert guard.tick() is None  # window 2: already reported
    again = guard.tick()  # window 3: the every-N check repeats it alongside the chain's key
    assert again is not None and again.outcome is VersionOutcome.OUTDATED
    off = VersionGuard(cfg=VersionConfig(check="off", every_windows=1), read_key=chain_key())
    off.observe_manifest(OURS + 5)
    assert off.tick() is None


def test_chain_key_outdated_wins_over_an_equal_lead() -> None:
    guard = VersionGuard(cfg=VersionConfig(check="warn", every_windows=1), read_key=chain_key(OURS + 3))
    guard.observe_manifest(OURS)
    res = guard.tick()
    assert res.outcome is VersionOutcome.OUTDATED and res.required == OURS + 3 and "WeightsVersionKey" in res.detail


def test_policy_refuses_a_newer_spec_only_under_refuse() -> None:
    cfg = parse_config(MinerNeuronConfig, ["--subtensor.network", "devnet", "--version.check", "refuse"], env={})
    newer = build_manifest(netuid=1, window=0, base_version=0, contributions=[], outer_lr=cfg.sync.outer_lr,
                           top_g=cfg.sync.top_g, rule=cfg.sync.rule, model_hash="ef" * 32)
    newer = dataclasses.replace(newer, spec_version=OURS + 1)
    seen: list[int] = []
    with pytest.raises(NewerSpecManifest):
        check_manifest_policy(newer, ManifestPolicy.from_config(cfg, on_spec_version=seen.append))
    assert seen == [OURS + 1]
    warn = dataclasses.replace(cfg, version=VersionConfig(check="warn"))
    check_manifest_policy(newer, ManifestPolicy.from_config(warn, on_spec_version=seen.append))
    check_manifest_policy(dataclasses.replace(newer, spec_version=None), ManifestPolicy.from_config(cfg))  # old lead
    assert seen == [OURS + 1, OURS + 1]


@pytest.mark.parametrize("check", ["refuse", "warn"])
def test_follower_reading_a_real_signed_manifest_from_a_newer_lead(tmp_path, check) -> None:
    """The real path: the lead publishes a signed manifest to its store; a miner follows it with its guard."""
    devnet = ["--subtensor.network", "devnet"]
    lead_cfg = parse_config(ValidatorNeuronConfig, devnet, env={})
    lead_gm = build_global_model(lead_cfg.model.preset, lead_cfg.model.n_fragments, lead_cfg.model.seed)
    manifest = build_manifest(netuid=1, window=0, base_version=0, contributions=[], outer_lr=lead_cfg.sync.outer_lr,
                              top_g=lead_cfg.sync.top_g, rule=lead_cfg.sync.rule)
    apply_decoded(lead_gm, manifest, [], verify_hash=False)
    manifest = dataclasses.replace(manifest, model_hash=lead_gm.model_hash, consensus=consensus_values(lead_cfg),
                                   spec_version=OURS + 1)  # the lead already runs the next release
    store = LocalDirStore(tmp_path / "lead-store")
    publish_manifest(store, manifest, LEAD)

    cfg = parse_config(MinerNeuronConfig, [*devnet, "--version.check", check], env={})
    gm = build_global_model(cfg.model.preset, cfg.model.n_fragments, cfg.model.seed)
    rt = SimpleNamespace(version_guard=VersionGuard(cfg=cfg.version, read_key=chain_key(), role="miner"))
    out = follow_lead(gm, store, 1, 0, cfg.store.max_artifact_bytes, lead_hotkey=LEAD.ss58_address, codec=cfg.codec,
                      policy=manifest_policy(cfg, rt))
    assert rt.version_guard.lead_spec == OURS + 1
    if check == "refuse":
        assert out.status is FollowStatus.REFUSED and "NewerSpecManifest" in out.detail and gm.version == 0
        with pytest.raises(VersionOutdated) as exc:
            rt.version_guard.tick()  # RegistrationCheck ticks it once per window: the neuron exits 4
        assert exc.value.exit_status == EXIT_OUTDATED
    else:
        assert out.status is FollowStatus.ADVANCED and gm.version == 1 and gm.model_hash == lead_gm.model_hash
        assert rt.version_guard.tick().outcome is VersionOutcome.OUTDATED  # warned, still running
