"""`tessera status` on state directories written by the real code (ValidatorState, MinerState, persist, ...)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from harness.devnet import bootstrap, free_port, running_devnet

from subnet.cli import main
from subnet.miner.state import MinerState
from subnet.node.globalmodel import build_global_model, persist
from subnet.storage.local import LocalDirStore
from subnet.telemetry.events import EventLog
from subnet.telemetry.status import collect_status
from subnet.telemetry.status_cli import rows
from subnet.validator.competition import CompetitionConfig, CompetitionState, play_round
from subnet.validator.evidence import EvidenceBook, Sighting
from subnet.validator.state import ValidatorState
from subnet.validator.weights_loop import PendingCommit

HK_V = "5F3sa2TJAWMqDhXG6jhV4N8ko9SxwGy8TpaNS1repo5EYjQX"
HK_OTHER = "5GNJqTPyNqANBkUVMN1LPPrxXnFouWXoe2wNSmmEoLctxiZY"
NETUID = 3
TORCH_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(TORCH_THREADS)


def _model(sd: Path, version: int, window: int):
    gm = build_global_model("tiny", 2, 0)
    with torch.no_grad():
        next(gm.model.parameters()).add_(0.01)  # not the seeded init: a trained copy
    gm.version, gm.last_manifest_window = version, window
    persist(gm, sd)
    return gm


def _scores(**by_uid):
    return {str(u[1:]): {"score": s, "reason": r, "fragment": 0} for u, (s, r) in by_uid.items()}


@pytest.fixture()
def validator_dir(tmp_path: Path):
    sd = tmp_path / "validator"
    sd.mkdir()
    gm = _model(sd, version=5, window=12)
    comp = play_round(CompetitionState(), {2: 0.1, 3: 0.0}, [2, 3], CompetitionConfig())
    pending = PendingCommit(commit_block=140, reveal_round=99, uids=(2, 3), values=(60000, 5535), deadline_block=900)
    ValidatorState(competition=comp, last_scored_window=12, last_weights_block=140, weights_windows=0,
                   identity={"netuid": NETUID, "hotkey": HK_V, "preset": "tiny", "n_fragments": 2, "seed": 0},
                   pending_commit=pending.to_dict()).save(sd)
    EvidenceBook(sd / "evidence").record(
        Sighting(window=13, hotkey=HK_OTHER, fragment=0, first_seen=1.0, block=200, seen_after=None,
                 sha256="6fd977db9b2afe87a9ceee4843288129", nbytes=3), b"abc")
    with EventLog(sd / "events" / "validator-1.jsonl", component="validator", uid=1, hotkey=HK_V) as log:
        log.emit("window_scored", window=11, version=4, heldout_loss=6.3, leader=2, round=1,
                 scores=_scores(u2=(0.05, "ok"), u3=(None, "absent")), ratings={"2": {"ordinal": 1.5}},
                 weights={"2": 1.0})
        log.emit("window_scored", window=12, version=5, heldout_loss=6.2, leader=2, round=2,
                 scores=_scores(u2=(0.02, "ok"), u3=(0.0, "copy of uid 2"),
                                u4=(None, "absent (store failing: TimeoutError: slow; 2 attempts)")),
                 ratings={"2": {"ordinal": 2.5}, "3": {"ordinal": -1.0}}, weights={"2": 0.9, "3": 0.1})
        log.emit("manifest_published", window=12, new_version=5, model_hash=gm.model_hash, selected=[{"uid": 2}])
        log.emit("weights_set", block=140, weights={"2": 0.9, "3": 0.1}, success=True, error=None,
                 outcome="committed_pending", detail="reveal at drand round 99", pending=pending.to_dict())
    with EventLog(sd / "events" / "miner-7.jsonl", component="miner", uid=7, hotkey=HK_OTHER) as log:
        log.emit("uploaded", window=12, fragment=0, bytes=10)  # a shared directory: not this node's
    store = LocalDirStore(tmp_path / "store")
    store.put(f"{NETUID}/12/{HK_V}.0.safetensors", b"x" * 100)
    store.put(f"{NETUID}/manifests/12.json", b"{}")
    store.put("9/1/other.bin", b"y" * 7)  # another netuid
    return sd, gm, tmp_path / "store"


def _status_json(capsys, *argv: str) -> tuple[int, dict]:
    rc = main(["status", *argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_validator_status_json(validator_dir, capsys):
    sd, gm, store = validator_dir
    rc, s = _status_json(capsys, "--state_dir", str(sd), "--store.location", str(store))
    assert rc == 0 and s["role"] == "validator" and s["problems"] == []
    assert s["uid"] == 1 and s["hotkey"] == HK_V and s["identity"]["netuid"] == NETUID
    assert s["last_window"] == 12 and s["last_window_kind"] == "scored"
    assert s["model"]["version"] == 5 and s["model"]["last_manifest_window"] == 12
    assert s["model"]["model_hash"] == gm.model_hash  # the file's tensors hash like the model in memory
    assert s["competition"]["round"] == 1 and s["competition"]["players"] == 2
    assert s["lead"]["is_self"] and "window 12" in s["lead"]["source"]  # no chain: the events say it led
    w = s["weights"]
    assert w["last_block"] == 140 and w["pending_commit"]["commit_block"] == 140
    assert w["pending_commit"]["reveal_round"] == 99
    assert w["last_call"]["outcome"] == "committed_pending" and w["last_call"]["success"] is True
    assert w["last_reveal"] is None
    peers = {p["uid"]: p for p in s["peers"]}
    assert set(peers) == {2, 3, 4}  # the miner's own log in the same directory is not a peer
    assert peers[2]["outcomes"] == {"scored": 2} and peers[2]["windows"] == 2 and peers[2]["last_score"] == 0.02
    assert (peers[3]["outcomes"] == {"absent": 1, "copy": 1} and peers[3]["ordinal"] == -1.0
            and peers[3]["weight"] == 0.1)
    assert peers[4]["outcomes"] == {"store_failing": 1}
    assert s["events"] == 4 and s["last_event"]["event"] == "weights_set"
    st = s["store"]
    assert st["evidence_pins"] == 1 and st["evidence_windows"] == 1 and st["evidence_bytes"] >= 3
    assert st["store_objects"] == 2 and st["store_bytes"] == 102  # netuid 3 only
    assert st["state_dir_bytes"] >= (sd / "global_model.safetensors").stat().st_size
    assert s["chain"] is None


def test_validator_status_table(validator_dir, capsys, monkeypatch):
    sd, gm, _ = validator_dir
    monkeypatch.setenv("COLUMNS", "240")
    assert main(["status", "--state_dir", str(sd)]) == 0
    out = capsys.readouterr().out
    for text in ("tessera status: validator", gm.model_hash, "committed_pending at block 140",
                 "commit at block 140, drand round 99, deadline block 900", "(this node)", "peers seen",
                 "store_failing 1", "copy 1"):
        assert text in out, text
    table = dict(rows(collect_status(sd)))
    assert table["last window scored"] == "12" and table["model version"] == "5"
    assert table["competition"] == "round 1, leader uid 2, 2 players"


def test_miner_status(tmp_path, capsys):
    sd = tmp_path / "miner"
    gm = _model(sd, version=4, window=8)
    MinerState(version=4, last_manifest_window=8, last_window_uploaded=9, step=30,
               identity={"netuid": NETUID, "hotkey": HK_OTHER, "preset": "tiny"}).save(sd)
    with EventLog(sd / "events" / "miner-7.jsonl", component="miner", uid=7, hotkey=HK_OTHER) as log:
        log.emit("synced", version=4, model_hash=gm.model_hash)
        log.emit("uploaded", window=8, fragment=1, bytes=1200, base_version=4, loss_first=7.5, loss_last=7.0)
        log.emit("late", window=9, fragment=0)
    rc, s = _status_json(capsys, "--state_dir", str(sd), "--hash", "false")
    assert rc == 0 and s["role"] == "miner" and s["uid"] == 7
    assert s["last_window"] == 9 and s["last_window_kind"] == "trained"
    assert s["model"]["version"] == 4 and s["model"]["model_hash"] is None  # --hash false
    m = s["miner"]
    assert m["uploads"] == 1 and m["late"] == 1 and m["syncs"] == 1 and m["step"] == 30
    assert m["last_upload"]["bytes"] == 1200 and m["last_upload"]["loss_last"] == 7.0
    assert s["weights"] is None and s["peers"] == []
    table = dict(rows(collect_status(sd)))
    assert table["uploads / late"] == "1 / 1" and table["last window trained"] == "9"
    assert table["model hash"] == gm.model_hash
    assert table["lead validator"].startswith("unknown")  # only the chain names a miner's lead


def test_unreachable_chain_still_shows_the_local_part(validator_dir, capsys):
    sd, gm, _ = validator_dir
    network = f"devnet+ws://127.0.0.1:{free_port()}"  # nothing listens there
    rc, s = _status_json(capsys, "--state_dir", str(sd), "--subtensor.network", network, "--subtensor.timeout_s", "3")
    assert rc == 0
    assert s["chain"]["reachable"] is False and s["chain"]["error"].startswith("chain unreachable")
    assert s["chain"]["netuid"] == NETUID  # from the state directory
    assert any("chain unreachable" in p for p in s["problems"])
    assert s["model"]["model_hash"] == gm.model_hash and s["last_window"] == 12  # the local part is all there


def test_not_a_state_dir(tmp_path, capsys):
    rc, s = _status_json(capsys, "--state_dir", str(tmp_path / "nothing"))
    assert rc == 1 and s["role"] == "unknown" and "does not exist" in s["problems"][0]


def test_status_reads_the_chain_on_a_devnet(tmp_path, capsys):
    """Chain part against a real (devnet) chain: registration, stake, and the lead from commitments."""
    import bittensor as bt

    from subnet.chain import make_subtensor
    from subnet.node.chain import ChainView
    from subnet.protocol.windows import WindowParams

    with running_devnet(tmp_path, block_ms=0) as devnet:
        boot = bootstrap(devnet, tmp_path / "wallets", miners=1)
        wallet = bt.Wallet(boot.validator.wallet, "default", str(tmp_path / "wallets"))
        sub = make_subtensor(devnet.network)
        ChainView(sub, boot.netuid, WindowParams(window_blocks=20)).commit_location(wallet, str(tmp_path / "vstore"))
        sd = tmp_path / "validator"
        ValidatorState(identity={"netuid": boot.netuid, "hotkey": boot.validator.hotkey, "preset": "tiny"}).save(sd)
        rc, s = _status_json(capsys, "--state_dir", str(sd), "--subtensor.network", devnet.network)
    assert rc == 0, s["problems"]
    ch = s["chain"]
    assert ch["reachable"] and ch["registered"] and ch["uid"] == boot.validator.uid and ch["validator_permit"]
    assert ch["neurons"] >= 3 and ch["block"] >= 1 and ch["committed_location"] == str(tmp_path / "vstore")
    assert s["lead"]["uid"] == boot.validator.uid and s["lead"]["is_self"]
    assert s["uid"] == boot.validator.uid
    assert s["model"]["present"] is False and s["last_window"] is None
