"""End to end: a devnet, one validator and four miners as processes, for several windows.

Asserts the outcomes a subnet operator cares about: weights land on chain,
honest miners out-earn a lazy (noise) miner and a copier, the global model's
held-out loss goes down, every node that synced holds the lead's exact model
hash, and a validator killed with SIGKILL resumes its ratings and does not
set weights twice inside the rate limit.
"""

from __future__ import annotations

import signal

import bittensor as bt
import pytest
import torch
from harness.devnet import rpc, running_devnet
from harness.network import read_json, start_network, wait_for_weights_in_effect

from subnet.chain import make_subtensor
from subnet.model.presets import build_model
from subnet.model.state import load_checkpoint
from subnet.node.runtime import load_data
from subnet.validator.scoring import mean_loss

pytestmark = pytest.mark.slow

BEHAVIOURS = ["honest", "honest", "noise", "copier"]


def _scored(net) -> list[dict]:
    return net.events("validator", "window_scored")


def _heldout_loss(state: dict, pages) -> float:
    model = build_model("tiny", seed=0)
    model.load_state_dict(state)
    batches = [pages.batch(list(range(i, i + 8)), "heldout") for i in range(0, 64, 8)]
    return mean_loss(model, batches)


def _neuron_extrinsics(devnet, hotkeys: set[str]) -> dict[str, bool]:
    """`module.function` -> whether every such extrinsic the neurons' hotkeys signed came as SCALE."""
    seen: dict[str, bool] = {}
    for number in range(1, devnet.head()["number"] + 1):
        for ext in rpc(devnet.url, "devnet_getBlock", number)["extrinsics"][1:]:  # [0] is the timestamp
            if ext and ext.get("signer") in hotkeys:
                name = f"{ext['call']['module']}.{ext['call']['function']}"
                seen[name] = seen.get(name, True) and "scale" in ext
    return seen


def test_network_trains_and_pays_honest_miners(tmp_path):
    torch.set_num_threads(1)
    with running_devnet(tmp_path, block_ms=500) as devnet:
        net = start_network(devnet, tmp_path / "net", miners=len(BEHAVIOURS))
        try:
            net.start_validator()
            for i, b in enumerate(BEHAVIOURS):
                net.start_miner(i, b)
            net.wait_for("4 scored windows", lambda: len(_scored(net)) >= 4, timeout=240)

            # -- SIGKILL the validator mid-run, then restart it from its state dir
            victim = next(c for c in net.procs.children if c.name == "validator")
            state_file = net.state_dir(net.boot.validator.wallet) / "validator_state.json"
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            net.procs.children.remove(victim)  # killed on purpose: not a crash to report
            before = read_json(state_file)
            rounds_before = before["competition"]["round"]
            assert rounds_before >= 4
            n_before = len(_scored(net))
            net.start_validator("validator-restarted")
            net.wait_for("scoring after the restart", lambda: len(_scored(net)) >= n_before + 4, timeout=240)
            first_after = _scored(net)[n_before]
            assert first_after["round"] == rounds_before + 1, "ratings did not resume from the saved state"
            leader_before = before["competition"]["leader"]
            assert leader_before is not None and first_after["leader"] is not None
            # a player's rating continues from its saved value (not the default 25 +- 8.33)
            uid = str(leader_before)
            saved = before["competition"]["players"][uid]
            assert abs(first_after["ratings"][uid]["sigma"] - 25 / 3) > 1e-6
            assert first_after["ratings"][uid]["sigma"] <= saved["sigma"] + 0.2

            # the latest weights revealed (commit-reveal is on, as on the chain), then a Yuma epoch on them
            wait_for_weights_in_effect(net, tempo_blocks=20, block_s=0.5)
            sub = make_subtensor(devnet.network)
            mg = sub.subnets.metagraph(net.boot.netuid)
            neuron_calls = _neuron_extrinsics(devnet, {n.hotkey for n in mg.neurons})
        finally:
            net.procs.stop_all()

    # the neurons wrote over the SDK's own transport (SCALE, signed extrinsics on the Substrate face):
    # the store commitments and the timelocked weight commits (commit-reveal is on), each revealed
    assert isinstance(sub._client._substrate, bt.RpcSubstrate)
    assert {"Commitments.set_commitment", "SubtensorModule.commit_timelocked_mechanism_weights"} <= set(neuron_calls)
    assert all(neuron_calls.values()), neuron_calls

    uids = [m.uid for m in net.boot.miners]
    honest, noise, copier = uids[:2], uids[2], uids[3]
    incentive = {n.uid: n.incentive for n in mg.neurons}
    val_uid = net.boot.validator.uid

    # weights were set on chain by the validator
    assert mg.neuron(val_uid).last_update > 0
    ok_sets = [e for e in net.events("validator", "weights_set") if e["success"]]
    assert ok_sets, "the validator never set weights successfully"
    # never twice inside the chain's rate limit (2 blocks), also across the restart
    blocks = sorted(e["block"] for e in ok_sets)
    assert all(b2 - b1 >= 2 for b1, b2 in zip(blocks, blocks[1:])), blocks

    # honest miners out-earn the lazy miner and the copier
    for h in honest:
        assert incentive[h] > incentive[noise], incentive
        assert incentive[h] > incentive[copier], incentive
    assert mg.neuron(val_uid).dividends > 0

    # the copier was caught at least once, and never led
    reasons = [e["scores"].get(str(copier), {}).get("reason", "") for e in _scored(net)]
    # charged (slashed) when the evidence orders the pair, tied (zero, unslashed) when it cannot
    assert any(r.startswith(("copy of uid", "copy tie uid")) for r in reasons), reasons
    assert all(e["leader"] != copier and e["leader"] != noise for e in _scored(net))

    # every node that synced holds the lead's exact model for that version
    published = {e["new_version"]: e["model_hash"] for e in net.events("validator", "manifest_published")}
    synced = net.events("miner", "synced")
    assert synced and max(e["version"] for e in synced) >= 2
    for e in synced:
        assert published[e["version"]] == e["model_hash"], (e["uid"], e["version"])

    # the global model's held-out loss went down (fixed held-out pages, not the scoring sample)
    pages = load_data("tiny")
    state, meta = load_checkpoint(net.state_dir(net.boot.validator.wallet) / "global_model.safetensors")
    assert meta["version"] >= 6
    initial = _heldout_loss(build_model("tiny", seed=0).state_dict(), pages)
    final = _heldout_loss(state, pages)
    assert final < initial - 0.02, (initial, final)
