"""Consensus settings (subnet/consensus.py): grouped in --help, published in manifests, refused when they differ."""

from __future__ import annotations

import dataclasses
import json

import pytest
from bittensor.sp_core import Keypair
from loguru import logger

from subnet.config import config_parser, parse_config
from subnet.consensus import consensus_diff, consensus_values, fingerprint, is_consensus
from subnet.errors import ProtocolError
from subnet.node.config import MinerNeuronConfig, ValidatorNeuronConfig
from subnet.protocol.manifest import Manifest
from subnet.sync.bounds import ConsensusMismatch, ManifestPolicy, check_manifest_policy
from subnet.sync.errors import PolicyViolation

LEAD_KEY = Keypair.create_from_uri("//Alice")
DEVNET = ["--subtensor.network", "devnet"]


def node_cfg(cls: type, *flags: str):
    return parse_config(cls, [*DEVNET, *flags], env={})


def lead_manifest(lead_cfg, **changes) -> Manifest:
    """A signed, honest, empty manifest the way the lead stamps it (validator/loop.py `_aggregate`)."""
    m = Manifest(netuid=1, window=4, base_version=4, new_version=5, outer_lr=lead_cfg.sync.outer_lr,
                 aggregation={"rule": lead_cfg.sync.rule, "top_g": lead_cfg.sync.top_g}, model_hash="ab" * 32,
                 consensus=consensus_values(lead_cfg), spec_version=None)
    return dataclasses.replace(m, **changes).sign(LEAD_KEY)


def refusal(manifest: Manifest, follower_cfg) -> ConsensusMismatch:
    with pytest.raises(ConsensusMismatch) as exc:
        check_manifest_policy(Manifest.from_json(manifest.to_json()), ManifestPolicy.from_config(follower_cfg))
    assert isinstance(exc.value, PolicyViolation)  # callers that refuse a policy violation refuse this too
    return exc.value


def test_registry_marks_the_settings_that_decide_the_aggregate() -> None:
    for name in ("codec.topk", "sync.rule", "sync.outer_lr", "score.pow_ratio", "competition.top_k",
                 "protocol.window_blocks", "model.preset", "validator.norm_outlier", "validator.copy_threshold"):
        assert is_consensus(name), name
    for name in ("sync.checkpoint_every", "validator.poll_interval", "train.lr", "store.location", "wallet.name",
                 "compute.precision", "codec", "codec.topk.x"):
        assert not is_consensus(name), name


def test_help_lists_consensus_settings_in_their_own_group() -> None:
    parser = config_parser(ValidatorNeuronConfig, prog="validator")
    groups = {g.title: [a.option_strings[0] for a in g._group_actions] for g in parser._action_groups}
    title = "consensus settings: every validator must use the same values"
    assert title in groups and title in parser.format_help()
    flags = groups[title]
    assert {"--codec.topk", "--sync.rule", "--score.pow_ratio", "--competition.curve",
            "--validator.min_score", "--validator.aggregate_z"} <= set(flags)
    assert "--sync.checkpoint_every" in groups["sync"] and "--validator.poll_interval" in groups["validator"]
    assert not any(f.startswith(("--wallet.", "--train.", "--store.")) for f in flags)


def test_equal_settings_accept_and_the_manifest_round_trips_signed() -> None:
    lead = node_cfg(ValidatorNeuronConfig)
    signed = lead_manifest(lead)
    again = Manifest.from_json(signed.to_json())
    assert again == signed and again.consensus == consensus_values(lead)
    assert Keypair(ss58_address=LEAD_KEY.ss58_address).verify(again.signing_message(), bytes.fromhex(again.signature))
    check_manifest_policy(again, ManifestPolicy.from_config(node_cfg(ValidatorNeuronConfig)))
    # a miner holds no score/competition/validator groups: only what it holds is compared
    check_manifest_policy(again, ManifestPolicy.from_config(node_cfg(MinerNeuronConfig)))


def test_a_follower_with_another_sync_rule_refuses_and_names_the_field() -> None:
    lead = node_cfg(ValidatorNeuronConfig)
    err = refusal(lead_manifest(lead), node_cfg(ValidatorNeuronConfig, "--sync.rule", "median_norm_clip_support_mean"))
    assert [d.name for d in err.fields] == ["sync.rule"] and "sync.rule" in str(err)
    # an old manifest (no consensus field) still names its rule in `aggregation`: refused as well
    old = lead_manifest(lead, consensus=None)
    assert "consensus" not in json.loads(old.to_json())
    miner = node_cfg(MinerNeuronConfig, "--sync.rule", "median_norm_clip_support_mean")
    assert [d.name for d in refusal(old, miner).fields] == ["sync.rule"]


def test_a_miner_with_another_codec_topk_refuses_and_names_the_field() -> None:
    lead = node_cfg(ValidatorNeuronConfig)
    err = refusal(lead_manifest(lead), node_cfg(MinerNeuronConfig, "--codec.topk", "32"))
    assert [(d.name, d.lead, d.ours) for d in err.fields] == [("codec.topk", 64, 32)]
    assert "codec.topk: lead 64, this node 32" in str(err) and "codec.topk" in (err.remediation or "")


def test_several_differences_are_all_named_and_a_missing_setting_differs() -> None:
    lead = node_cfg(ValidatorNeuronConfig, "--score.pow_ratio", "0.2", "--competition.top_k", "4")
    ours = consensus_values(node_cfg(ValidatorNeuronConfig))
    names = [d.name for d in consensus_diff(consensus_values(lead), ours)]
    assert names == ["competition.top_k", "score.pow_ratio"]
    partial = {k: v for k, v in ours.items() if k != "codec.chunk"}  # a lead on code without the setting
    (diff,) = consensus_diff(partial, ours)
    assert diff.name == "codec.chunk" and not diff.lead_has and "<absent>" in diff.describe()
    assert fingerprint(ours) != fingerprint(partial) and fingerprint(ours) == fingerprint(dict(reversed(ours.items())))


def test_an_old_manifest_without_consensus_values_is_read_with_a_warning() -> None:
    lead = node_cfg(ValidatorNeuronConfig)
    old = Manifest(netuid=1, window=4, base_version=4, new_version=5, aggregation={"rule": lead.sync.rule},
                   model_hash="cd" * 32).sign(Keypair.create_from_uri("//Bob"))
    raw = json.loads(old.to_json())
    assert "consensus" not in raw and "spec_version" not in raw  # bytes of a pre-consensus manifest
    seen: list[str] = []
    sink = logger.add(lambda msg: seen.append(str(msg)), level="WARNING")
    try:
        check_manifest_policy(Manifest.from_json(old.to_json()), ManifestPolicy.from_config(lead))
    finally:
        logger.remove(sink)
    assert any("no consensus settings" in line for line in seen)


@pytest.mark.parametrize("bad", [
    {"codec.topk": {"nested": 1}},
    {"codec.topk": float("inf")},
    {"": 1},
    {f"k{i}": i for i in range(600)},
    {"codec.topk": ["x"] * 100},
    ["codec.topk", 64],
])
def test_hostile_consensus_values_are_a_protocol_error(bad) -> None:
    with pytest.raises(ProtocolError):
        Manifest(netuid=1, window=0, base_version=0, new_version=1, consensus=bad)
    with pytest.raises(ProtocolError):
        Manifest(netuid=1, window=0, base_version=0, new_version=1, spec_version=-1)
