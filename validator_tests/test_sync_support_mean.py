"""The support-mean aggregation rule: exact values, same bits on every node, followers reach the lead's hash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from bittensor.sp_core import Keypair
from harness.pages import stride_pages
from harness.threads import digests_across_thread_counts

from subnet.codec.config import CodecConfig
from subnet.codec.sparseloco import Encoder, decode
from subnet.codec.wire import ArtifactHeader, write_artifact
from subnet.data.pages import TokenPages
from subnet.miner.config import TrainConfig
from subnet.miner.train import inner_train
from subnet.model.fragments import partition
from subnet.model.presets import build_model
from subnet.protocol.keys import artifact_key
from subnet.sync.aggregate import DEFAULT_RULE, RULE, RULES, SUPPORT_RULE, Contribution, build_manifest, combine
from subnet.sync.apply import GlobalModel, apply_decoded, apply_manifest, artifact_sha256
from subnet.sync.config import SyncConfig
from subnet.sync.errors import SyncError

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
CODEC = CodecConfig()
NETUID = 3


def test_support_mean_averages_each_entry_over_the_contributions_that_sent_it() -> None:
    d1 = {"w": torch.tensor([2.0, 0.0, 4.0, 0.0])}
    d2 = {"w": torch.tensor([0.0, 6.0, 2.0, 0.0])}
    assert torch.equal(combine([d1, d2], [0.5, 0.5], rule=RULE)["w"], torch.tensor([1.0, 3.0, 3.0, 0.0]))
    assert torch.equal(combine([d1, d2], [0.5, 0.5], rule=SUPPORT_RULE)["w"], torch.tensor([2.0, 6.0, 3.0, 0.0]))
    # the clip coefficient still scales a contribution: coef 0.25 = scale 0.5 of n=2
    assert torch.equal(combine([d1, d2], [0.25, 0.5], rule=SUPPORT_RULE)["w"], torch.tensor([1.0, 6.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="unknown aggregation rule"):
        combine([d1], [1.0], rule="sum")


def test_the_default_rule_is_the_configs_and_the_manifest_names_it() -> None:
    assert SyncConfig().rule == DEFAULT_RULE and set(RULES) == {RULE, SUPPORT_RULE}
    m = build_manifest(netuid=1, window=2, base_version=1, contributions=[], outer_lr=1.0)
    assert m.aggregation["rule"] == DEFAULT_RULE
    with pytest.raises(ValueError):
        build_manifest(netuid=1, window=2, base_version=1, contributions=[], outer_lr=1.0, rule="median")


_THREADS_SCRIPT = """
import sys, hashlib, torch
torch.set_num_threads(int(sys.argv[1]))
from subnet.sync.aggregate import SUPPORT_RULE, combine
g = torch.Generator().manual_seed(0)
deltas = []
for i in range(5):
    d = torch.randn(513, 1031, generator=g)
    d[torch.rand(513, 1031, generator=g) < 0.9] = 0.0   # sparse, partly overlapping supports
    deltas.append({"w": d})
step = combine(deltas, [0.2, 0.13, 0.07, 0.31, 0.05], rule=SUPPORT_RULE)["w"]
p = torch.sub(torch.randn(513, 1031, generator=g), torch.mul(step, 0.7))
print(hashlib.sha256(p.numpy().tobytes()).hexdigest())
"""


def test_support_mean_is_bitwise_identical_across_thread_counts() -> None:
    outs = digests_across_thread_counts(_THREADS_SCRIPT)
    assert len(outs[0]) == 64 and outs[0] == outs[1]


def _gm() -> GlobalModel:
    model = build_model("tiny", seed=5)
    return GlobalModel(model=model, fragments=partition(model, 2))


def _pages() -> TokenPages:
    return stride_pages(seed=4, docs=160, step=5, modulus=301, start_high=300)


def _artifact(gm: GlobalModel, uid: int, pages: TokenPages) -> tuple[bytes, Contribution]:
    """A real miner's artifact for fragment 0: inner AdamW, the default codec, a signed file."""
    kp = Keypair.create_from_uri(f"//SupportMiner{uid}")
    frag = gm.fragment(0)
    batches = iter([pages.batch([uid * 6 + j, uid * 6 + j + 1], "train") for j in range(3)])
    res = inner_train(gm.model, frag, batches, TrainConfig(inner_steps=3, batch_size=2, lr=3e-3, warmup_steps=0))
    shapes = gm.shapes(0)
    encoded = Encoder(shapes, CODEC).encode(res.pseudo_grad)
    header = ArtifactHeader(netuid=NETUID, window=4, uid=uid, hotkey=kp.ss58_address, fragment=0,
                            base_version=gm.version)
    data = write_artifact(encoded, header, kp)
    key = artifact_key(NETUID, 4, kp.ss58_address, 0)
    return data, Contribution(fragment=0, uid=uid, hotkey=kp.ss58_address, key=key, sha256=artifact_sha256(data),
                              score=1.0, delta=decode(encoded, shapes))


def test_followers_reach_the_lead_hash_and_the_rules_differ() -> None:
    pages = _pages()
    lead = _gm()
    base = lead.model_hash
    made = [_artifact(lead, uid, pages) for uid in (1, 2, 3)]
    blobs = {c.key: data for data, c in made}
    contribs = [c for _, c in made]
    hashes = {}
    for rule in RULES:
        node = _gm()
        m = build_manifest(netuid=NETUID, window=4, base_version=0, contributions=contribs, outer_lr=1.0, rule=rule)
        apply_decoded(node, m, [c.delta for c in contribs], verify_hash=False)
        m = dataclasses.replace(m, model_hash=node.model_hash)
        follower = _gm()
        apply_manifest(follower, m, lambda e: blobs.get(e.key), codec=CODEC)  # verify_hash: raises on a fork
        assert follower.model_hash == m.model_hash != base
        hashes[rule] = m.model_hash
    assert hashes[RULE] != hashes[SUPPORT_RULE]  # overlapping but unequal supports: the rule matters


def test_a_manifest_with_an_unknown_rule_is_refused_untouched() -> None:
    gm = _gm()
    before = gm.model_hash
    m = build_manifest(netuid=NETUID, window=0, base_version=0, contributions=[], outer_lr=1.0)
    m = dataclasses.replace(m, aggregation={**m.aggregation, "rule": "trimmed_sum"})
    with pytest.raises(SyncError, match="aggregation rule"):
        apply_decoded(gm, m, [])
    assert gm.model_hash == before and gm.version == 0
