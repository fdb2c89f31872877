"""The global model's bytes do not depend on the device that trained, scored or applied.

Two miners train real artifacts: one on the CPU in fp32, one through the CUDA
code path (a DeviceReplica, bf16 autocast, micro-batches; here on the CPU,
since CPU autocast is the nearest thing to it without a GPU). The lead
applies the manifest on its host copy; followers apply it (a) plainly in fp32
and (b) from inside a bf16 autocast region after training on a device replica.
All must land on the lead's published model hash; applying to a bf16 copy
(what a device-side apply would do) must not, or the test proves nothing.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from bittensor.sp_core import Keypair
from harness.pages import stride_pages

from subnet.codec.config import CodecConfig
from subnet.codec.sparseloco import Encoder, decode
from subnet.codec.wire import ArtifactHeader, write_artifact
from subnet.data.pages import TokenPages
from subnet.device.config import DeviceConfig
from subnet.device.consensus import ConsensusError, DeviceReplica, check_host_fp32, host_apply
from subnet.miner.config import TrainConfig
from subnet.miner.distributed import shard_batches
from subnet.miner.train import TrainRuntime, inner_train, prepare_training
from subnet.model.fragments import partition
from subnet.model.presets import build_model
from subnet.model.state import model_hash
from subnet.protocol.keys import artifact_key
from subnet.sync.aggregate import Contribution, build_manifest
from subnet.sync.apply import GlobalModel, apply_decoded, apply_manifest, artifact_sha256

torch.set_num_threads(1)
CODEC = CodecConfig()
NETUID = 7


def _gm() -> GlobalModel:
    model = build_model("tiny", seed=3)
    return GlobalModel(model=model, fragments=partition(model, 2))


def _pages() -> TokenPages:
    return stride_pages(seed=2, docs=200, step=3, modulus=301, start_high=300)


def _artifact(gm: GlobalModel, uid: int, run: TrainRuntime, model: torch.nn.Module) -> tuple[str, bytes, Contribution]:
    kp = Keypair.create_from_uri(f"//DeviceMiner{uid}")
    frag = gm.fragment(uid % 2)
    cfg = TrainConfig(inner_steps=3, batch_size=4, lr=3e-3, warmup_steps=0)
    res = inner_train(model, frag, shard_batches(_pages(), tuple(range(uid * 8, uid * 8 + 8)), 4, 3), cfg,
                      runtime=run)
    shapes = gm.shapes(frag.index)
    encoded = Encoder(shapes, CODEC).encode(res.pseudo_grad)
    header = ArtifactHeader(netuid=NETUID, window=1, uid=uid, hotkey=kp.ss58_address, fragment=frag.index,
                            base_version=gm.version)
    data = write_artifact(encoded, header, kp)
    key = artifact_key(NETUID, 1, kp.ss58_address, frag.index)
    return key, data, Contribution(fragment=frag.index, uid=uid, hotkey=kp.ss58_address, key=key,
                                   sha256=artifact_sha256(data), score=1.0, delta=decode(encoded, shapes))


@pytest.fixture(scope="module")
def window():
    lead = _gm()
    base_hash = lead.model_hash
    # miner 0: CPU fp32 on the host model; miner 1: the CUDA code path (replica, bf16 autocast, micro-batches)
    cpu_key, cpu_data, cpu_c = _artifact(lead, 0, TrainRuntime(), lead.model)
    replica = DeviceReplica(lead.model, "cpu")
    run = prepare_training(replica.model, torch.device("cpu"), torch.bfloat16, DeviceConfig(micro_batch_size=2))
    dev_key, dev_data, dev_c = _artifact(lead, 1, run, replica.refresh())
    assert lead.model_hash == base_hash  # training, on either path, never moved the global model
    manifest = build_manifest(netuid=NETUID, window=1, base_version=0, contributions=[cpu_c, dev_c], outer_lr=0.7)
    with host_apply(lead.model):
        apply_decoded(lead, manifest, [cpu_c.delta, dev_c.delta])
    manifest = dataclasses.replace(manifest, model_hash=lead.model_hash)
    return manifest, {cpu_key: cpu_data, dev_key: dev_data}, base_hash


def test_fp32_follower_and_device_path_follower_reach_the_lead_hash(window) -> None:
    manifest, blobs, base_hash = window
    fetch = lambda entry: blobs.get(entry.key)  # noqa: E731
    plain = _gm()
    with host_apply(plain.model):
        apply_manifest(plain, manifest, fetch, codec=CODEC)
    assert plain.model_hash == manifest.model_hash != base_hash

    device_node = _gm()
    replica = DeviceReplica(device_node.model, "cpu")
    run = prepare_training(replica.model, torch.device("cpu"), torch.bfloat16, DeviceConfig(micro_batch_size=1))
    frag = device_node.fragment(0)
    inner_train(replica.refresh(), frag, shard_batches(_pages(), (1, 2, 3, 4), 2, 2),
                TrainConfig(inner_steps=2, batch_size=2, warmup_steps=0), runtime=run)
    assert device_node.model_hash == base_hash
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a caller inside a scoring/training region
        with host_apply(device_node.model):
            apply_manifest(device_node, manifest, fetch, codec=CODEC)
    assert device_node.model_hash == manifest.model_hash


def test_a_bf16_apply_would_fork_and_the_guard_refuses_it(window) -> None:
    manifest, blobs, _ = window
    forked = _gm()
    forked.model.to(torch.bfloat16)
    with pytest.raises(ConsensusError, match="not float32"):
        check_host_fp32(forked.model)
    apply_manifest(forked, manifest, lambda e: blobs.get(e.key), codec=CODEC, verify_hash=False)
    forked.model.to(torch.float32)
    assert forked.model_hash != manifest.model_hash  # so the equality above is a real check


def test_device_replica_refresh_copies_the_host_bytes() -> None:
    gm = _gm()
    rep = DeviceReplica(gm.model, "cpu")
    assert rep.shared and rep.refresh() is gm.model  # CPU: no second copy of the weights
    sep = DeviceReplica(gm.model, "cpu", separate=True)  # the accelerator path: its own copy
    assert sep.model is not gm.model
    with torch.no_grad():
        for p in sep.model.parameters():
            p.add_(1.0)
    assert model_hash(sep.model) != gm.model_hash
    assert model_hash(sep.refresh()) == gm.model_hash
