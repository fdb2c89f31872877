"""Prometheus metrics fed by the event log: scrape a real endpoint and compare with the log file.

The events are shaped like the neurons' (validator/loop.py, miner/loop.py):
`window_scored`, `manifest_published`, `weights_set` (commit-reveal pending
and refused), `weights_revealed`, miner `uploaded`/`late`/`synced`, plus the
`chain_error`/`store_error` events and `gpu` fields neurons may add.
"""

from __future__ import annotations

import json
import math
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from harness.devnet import free_port
from loguru import logger
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from subnet.config import parse_config
from subnet.errors import ConfigError
from subnet.node.config import MinerNeuronConfig, ValidatorNeuronConfig
from subnet.telemetry.config import WandbConfig
from subnet.telemetry.events import EventLog, read_events, uid_map
from subnet.telemetry.metrics import METRICS, PREFIX, MetricsServer, MetricsSink
from subnet.telemetry.observe import start_observability
from subnet.telemetry.outcomes import OUTCOMES, peer_outcome, store_error_kind
from subnet.telemetry.wandb_sink import WandbSink, wandb_row

ROOT = Path(__file__).resolve().parents[1]
HK_V = "5ValidatorHotkeyxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
HK_M = "5MinerHotkeyxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"


def _score(score, reason, fragment=0, **extra):
    return {"score": score, "norm_score": None if score is None else score / 2, "reason": reason,
            "fragment": fragment, **extra}


def _validator_events(log: EventLog) -> None:
    """Two scored windows, a manifest, a commit-reveal cycle and a refusal, as the validator writes them."""
    log.emit("window_scored", window=7, version=3, heldout_loss=6.25, leader=2, round=5, seconds=12.5,
             scores={"2": _score(0.04, "ok", heldout_improvement=0.04),
                     "3": _score(None, "absent"),
                     "4": _score(None, "absent (store failing: TimeoutError: read timed out; 3 attempts)")},
             ratings={"2": {"mu": 27.0, "sigma": 7.5, "ordinal": 4.5},
                      "3": {"mu": 24.0, "sigma": 8.1, "ordinal": -0.3}},
             weights={"2": 0.9, "3": 0.1}, gpu={"memory_allocated_bytes": 1024, "utilization": 0.5})
    log.emit("manifest_published", window=7, new_version=4, model_hash="ab" * 32, heldout_loss_after=6.1,
             selected=[{"uid": 2, "fragment": 0, "coef": 1.0}])
    log.emit("weights_set", block=140, weights={"2": 0.9, "3": 0.1}, success=True, error=None,
             outcome="committed_pending", detail="reveal at drand round 99",
             pending={"commit_block": 140, "reveal_round": 99, "uids": [2, 3], "values": [60000, 5535],
                      "deadline_block": 900, "adopted": False})
    log.emit("window_scored", window=8, version=4, heldout_loss=float("nan"), leader=2, round=6, seconds=3.0,
             scores={"2": _score(0.0, "no held-out improvement"),
                     "3": _score(0.0, "copy of uid 2"),
                     "5": _score(None, "late (first seen at block 181, deadline 180)"),
                     "6": _score(0.0, "rejected: BadSignature: bad signature"),
                     "7": _score(None,
                                 "absent (store failing: store used its 60s budget this window (x); 9 attempts)")},
             ratings={"2": {"mu": 28.0, "sigma": 7.0, "ordinal": 7.0}}, weights={"2": 1.0})
    log.emit("weights_revealed", block=170, weights={"2": 0.915, "3": 0.085}, success=True, error=None,
             outcome="revealed", detail="", pending={"commit_block": 140, "reveal_round": 99})
    log.emit("weights_set", block=260, weights={"2": 1.0}, success=False, error="SettingWeightsTooFast",
             outcome="refused", detail="rate limited by the chain", pending=None)
    log.emit("chain_error", kind="timeout", error="read block number failed after 5 attempts")
    log.emit("store_error", error="StorageError: put 1/8/x.0.safetensors: 503")


def _miner_events(log: EventLog) -> None:
    log.emit("synced", version=4, model_hash="cd" * 32)
    log.emit("uploaded", window=8, fragment=1, bytes=110_000, base_version=4, behaviour="honest",
             loss_first=7.5, loss_last=7.1, tokens=10 * 8 * 128, train_seconds=4.0, gpu=[{"device": "cuda:0",
             "memory_reserved_bytes": 2048, "memory_total_bytes": 8 << 30}])
    log.emit("late", window=9, fragment=0)
    log.emit("uploaded", window=10, fragment=0, bytes=90_000, base_version=4, behaviour="honest",
             loss_first=7.2, loss_last=float("inf"))


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode("utf-8")
    out: dict[tuple[str, frozenset], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(samples: dict, name: str, **labels: str) -> float:
    return samples[(PREFIX + name, frozenset(labels.items()))]


def per_uid(samples: dict, name: str) -> dict[int, float]:
    return {int(dict(lbl)["uid"]): v for (n, lbl), v in samples.items() if n == PREFIX + name}


@pytest.fixture()
def served(tmp_path: Path):
    """A real EventLog per neuron feeding one MetricsSink, and a real /metrics server on a free port."""
    sink = MetricsSink(CollectorRegistry(), netuid=3, preset="tiny")
    server = MetricsServer(sink.registry, "127.0.0.1", 0)
    vpath = tmp_path / "validator-1.jsonl"
    try:
        with EventLog(vpath, component="validator", uid=1, hotkey=HK_V, sinks=[sink]) as vlog:
            _validator_events(vlog)
        yield sink, server, read_events(vpath)
    finally:
        server.close()


def test_validator_metrics_equal_the_event_log(served):
    sink, server, events = served
    s = scrape(server.url)
    scored = [e for e in events if e["event"] == "window_scored"]
    last = scored[-1]

    assert val(s, "node_info", component="validator", uid="1", hotkey=HK_V, netuid="3", preset="tiny") == 1
    for name, n in Counter(e["event"] for e in events).items():
        assert val(s, "events_total", event=name) == n
    assert val(s, "last_event_timestamp_seconds") == events[-1]["ts"]
    assert val(s, "window") == last["window"]
    assert val(s, "window_last_duration_seconds", phase="score") == last["seconds"]
    assert val(s, "window_duration_seconds_count", phase="score") == len(scored)
    assert val(s, "window_duration_seconds_sum", phase="score") == pytest.approx(sum(e["seconds"] for e in scored))
    # the log wrote NaN as null, so the gauge keeps the last finite loss the log holds
    assert last["heldout_loss"] is None
    assert val(s, "heldout_loss") == next(e["heldout_loss"] for e in reversed(scored) if e["heldout_loss"] is not None)
    manifest = next(e for e in events if e["event"] == "manifest_published")
    assert val(s, "heldout_loss_after") == manifest["heldout_loss_after"]
    assert val(s, "manifests_published_total") == 1 and val(s, "manifest_entries") == len(manifest["selected"])
    assert val(s, "model_version") == last["version"]
    assert val(s, "model_info", model_hash=manifest["model_hash"]) == 1

    # per-uid families hold exactly the last window's uids (uid 4 left, uid 7 came)
    scores = uid_map(last["scores"])
    assert per_uid(s, "peer_score") == {u: v["score"] for u, v in scores.items() if v["score"] is not None}
    assert per_uid(s, "peer_norm_score") == {u: v["norm_score"] for u, v in scores.items()
                                             if v["norm_score"] is not None}
    assert per_uid(s, "peer_rating_ordinal") == {u: r["ordinal"] for u, r in uid_map(last["ratings"]).items()}
    assert per_uid(s, "peer_weight") == {u: w for u, w in uid_map(last["weights"]).items()}
    assert val(s, "peers_scored") == sum(v["score"] is not None for v in scores.values())
    assert val(s, "leader_uid") == last["leader"] and val(s, "competition_round") == last["round"]

    outcomes = Counter(peer_outcome(v["score"], v["reason"]) for e in scored for v in e["scores"].values())
    assert outcomes == {"scored": 1, "absent": 1, "store_failing": 2, "no_improvement": 1, "copy": 1, "late": 1,
                        "rejected": 1}
    for outcome, n in outcomes.items():
        assert val(s, "peer_outcomes_total", outcome=outcome) == n
    assert val(s, "store_errors_total", store="peer", kind="TimeoutError") == 1
    assert val(s, "store_errors_total", store="peer", kind="over_budget") == 1
    assert val(s, "store_errors_total", store="own", kind="StorageError") == 1
    assert val(s, "chain_errors_total", kind="timeout") == 1
    assert val(s, "chain_errors_total", kind="weights_refused") == 1

    # weights: commit pending, then revealed (pending cleared), then a refusal
    ws = [e for e in events if e["event"] in ("weights_set", "weights_revealed")]
    assert val(s, "weights_set_total", outcome="committed_pending") == 1
    assert val(s, "weights_set_total", outcome="refused") == 1
    assert val(s, "weights_reveals_total", outcome="revealed") == 1
    revealed = next(e for e in ws if e["event"] == "weights_revealed")
    assert val(s, "weights_last_block") == revealed["block"]
    assert per_uid(s, "weights_sent") == {u: w for u, w in uid_map(revealed["weights"]).items()}
    assert val(s, "weights_last_success") == 0  # the refusal came last
    assert val(s, "weights_last_timestamp_seconds") == ws[-1]["ts"]
    assert val(s, "weights_pending_reveal") == 0 and val(s, "weights_pending_commit_block") == -1
    assert val(s, "gpu_memory_allocated_bytes", device="0") == 1024
    assert val(s, "gpu_utilization_ratio", device="0") == 0.5


def test_pending_commit_is_visible_until_revealed(tmp_path):
    sink = MetricsSink()
    with EventLog(tmp_path / "v.jsonl", component="validator", uid=1, sinks=[sink]) as log:
        log.emit("weights_set", block=140, weights={"2": 1.0}, success=True, outcome="committed_pending",
                 pending={"commit_block": 140, "reveal_round": 9})
        g = sink.registry.get_sample_value
        assert g("tessera_weights_pending_reveal") == 1 and g("tessera_weights_pending_commit_block") == 140
        assert g("tessera_weights_last_block") == 140
        log.emit("weights_revealed", block=180, weights={}, success=False, outcome="reveal_failed", pending=None)
        assert g("tessera_weights_pending_reveal") == 0
        assert g("tessera_weights_reveals_total", {"outcome": "reveal_failed"}) == 1
        assert g("tessera_weights_last_block") == 140  # a failed reveal landed nothing


def test_miner_metrics_equal_the_event_log(served, tmp_path):
    sink, server, _ = served
    with EventLog(tmp_path / "m.jsonl", component="miner", uid=5, hotkey=HK_M, sinks=[sink]) as mlog:
        _miner_events(mlog)
    events = read_events(tmp_path / "m.jsonl")
    s = scrape(server.url)
    ups = [e for e in events if e["event"] == "uploaded"]
    assert val(s, "node_info", component="miner", uid="5", hotkey=HK_M, netuid="3", preset="tiny") == 1
    assert not any(n == PREFIX + "node_info" and ("component", "validator") in lbl for n, lbl in s)  # replaced
    assert val(s, "uploads_total", outcome="uploaded") == len(ups)
    assert val(s, "uploads_total", outcome="late") == 1
    assert val(s, "upload_size_bytes") == ups[-1]["bytes"]
    assert val(s, "upload_bytes_total") == sum(e["bytes"] for e in ups)
    assert val(s, "window") == ups[-1]["window"]
    assert val(s, "train_loss", at="first") == ups[-1]["loss_first"]
    assert ups[-1]["loss_last"] is None and val(s, "train_loss", at="last") == ups[0]["loss_last"]
    assert val(s, "tokens_per_second") == ups[0]["tokens"] / ups[0]["train_seconds"]
    assert val(s, "tokens_trained_total") == ups[0]["tokens"]
    assert val(s, "window_last_duration_seconds", phase="train") == ups[0]["train_seconds"]
    assert val(s, "syncs_total") == 1
    assert val(s, "model_info", model_hash=events[0]["model_hash"]) == 1
    assert val(s, "gpu_memory_reserved_bytes", device="cuda:0") == 2048
    assert val(s, "gpu_memory_total_bytes", device="cuda:0") == 8 << 30


def test_gauges_a_role_never_feeds_have_no_sample(tmp_path):
    """A miner has no held-out loss or leader: those series stay absent (not 0, which reads as uid 0)."""
    from prometheus_client import generate_latest

    sink = MetricsSink()
    with EventLog(tmp_path / "m.jsonl", component="miner", uid=5, sinks=[sink]) as log:
        _miner_events(log)
    g = sink.registry.get_sample_value
    assert g("tessera_heldout_loss") is None and g("tessera_leader_uid") is None
    assert g("tessera_weights_pending_reveal") is None and g("tessera_upload_size_bytes") == 90_000
    text = generate_latest(sink.registry).decode()
    assert "# TYPE tessera_heldout_loss gauge" in text and "\ntessera_heldout_loss " not in text


def test_gpu_figures_feed_the_gpu_gauges(tmp_path, monkeypatch):
    """gpu_figures() (what a loop adds to its events) has the shape the sink reads; None without CUDA."""
    import torch

    from subnet.telemetry.gpu import gpu_figures

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_figures() is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda i: 3 << 20)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda i: 4 << 20)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i: 5 << 20)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: type("P", (), {"total_memory": 80 << 30})())
    monkeypatch.setattr(torch.cuda, "utilization", lambda i: 37)
    sink = MetricsSink()
    with EventLog(tmp_path / "m.jsonl", component="miner", uid=5, sinks=[sink]) as log:
        log.emit("uploaded", window=1, bytes=10, gpu=gpu_figures())
    g = sink.registry.get_sample_value
    dev = {"device": "cuda:0"}
    assert g("tessera_gpu_memory_allocated_bytes", dev) == 3 << 20
    assert g("tessera_gpu_memory_reserved_bytes", dev) == 4 << 20
    assert g("tessera_gpu_max_memory_allocated_bytes", dev) == 5 << 20
    assert g("tessera_gpu_memory_total_bytes", dev) == 80 << 30 and g("tessera_gpu_utilization_ratio", dev) == 0.37


def test_every_declared_metric_is_exported():
    sink = MetricsSink()
    names = {m.name for m in sink.registry.collect()}
    for name, (_, _, _) in METRICS.items():
        assert PREFIX + name.removesuffix("_total") in names, name


def test_a_failing_sink_never_fails_the_write(tmp_path):
    def broken(record):
        raise RuntimeError("dashboard bug")

    seen = []
    with EventLog(tmp_path / "e.jsonl", component="miner", sinks=[broken, seen.append]) as log:
        log.emit("late", window=1, x=math.nan)
    assert [e["event"] for e in read_events(tmp_path / "e.jsonl")] == ["late"]
    assert seen == read_events(tmp_path / "e.jsonl")  # sinks get the line as written (NaN -> null)


def test_sink_added_to_a_log_built_elsewhere(tmp_path):
    """The loops build their own EventLog; entry.py adds the sinks to it afterwards (EventLog.add_sink)."""
    seen = []
    with EventLog(tmp_path / "v.jsonl", component="validator", uid=1) as log:
        log.emit("window_scored", window=1)
        log.add_sink(seen.append)
        log.add_sink(seen.append)  # once only
        log.emit("window_scored", window=2)
    assert [e["window"] for e in seen] == [2]


def test_outcome_names():
    assert store_error_kind("absent (store failing: ConnectionError: refused; 2 attempts)") == "ConnectionError"
    assert store_error_kind("absent") is None
    assert peer_outcome(None, "no store committed") == "no_store"
    assert peer_outcome(0.0, "no proof of work") == "no_proof_of_work"
    assert peer_outcome(None, "something new") == "other"
    assert set(OUTCOMES) >= {"scored", "copy_tie", "shared_store", "norm_outlier", "below_floor", "stale"}


# -- wiring: flags, env, and the neuron entry point ------------------------------------------------------


def test_metrics_flags_and_env():
    cfg = parse_config(ValidatorNeuronConfig, ["--netuid", "1"], env={})
    assert cfg.metrics.port == 0 and cfg.metrics.host == "127.0.0.1" and cfg.wandb.project is None
    cfg = parse_config(MinerNeuronConfig, ["--netuid", "1", "--metrics.host", "0.0.0.0"],
                       env={"TESSERA_METRICS_PORT": "9501"})
    assert cfg.metrics.port == 9501 and cfg.metrics.host == "0.0.0.0"
    with pytest.raises(SystemExit):
        parse_config(MinerNeuronConfig, ["--netuid", "1", "--metrics.port", "70000"], env={})


def test_metrics_off_by_default_starts_nothing(tmp_path):
    cfg = parse_config(ValidatorNeuronConfig, ["--netuid", "1", "--state_dir", str(tmp_path)], env={})
    out, obs = start_observability(cfg, "validator")
    assert out is cfg and obs.server is None and obs.sinks == []
    obs.close()


def test_busy_port_is_a_config_error(tmp_path):
    sink = MetricsSink()
    first = MetricsServer(sink.registry, "127.0.0.1", 0)
    try:
        cfg = parse_config(ValidatorNeuronConfig, ["--netuid", "1", "--state_dir", str(tmp_path), "--metrics.port",
                                                   str(first.port)],
                           env={})
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            start_observability(cfg, "validator")
    finally:
        first.close()


def test_neuron_entry_with_metrics_port_serves_its_events(tmp_path, monkeypatch):
    """run_neuron starts the endpoint, feeds it the loop's event log, and stops it when the neuron stops.

    A validator cannot start without a chain, so NodeRuntime.build and the Validator loop are replaced by
    stand-ins that do what the real ones do with the event log: the runtime carries the config, the loop
    opens `EventLog(<telemetry.dir>/validator-<uid>.jsonl)` as `self.events` and emits while it runs. The
    stand-in's run() scrapes the endpoint, as Prometheus would while the neuron runs.
    """
    import subnet.validator.loop as vloop
    from subnet.node import entry
    from subnet.node.runtime import NodeRuntime

    port = free_port()
    state = tmp_path / "state"
    probe: dict = {}

    class StandInValidator:
        def __init__(self, rt):
            self.cfg = rt.cfg
            self.events = EventLog(Path(rt.cfg.telemetry.dir) / "validator-4.jsonl", component="validator",
                                   uid=4, hotkey=HK_V)

        def run(self):
            probe["events_dir"] = self.cfg.telemetry.dir
            self.events.emit("window_scored", window=11, version=2, heldout_loss=5.5, scores={}, ratings={},
                             leader=None, seconds=1.25)
            self.events.emit("weights_set", block=30, weights={"2": 1.0}, success=True, outcome="set")
            probe["samples"] = scrape(f"http://127.0.0.1:{port}/metrics")
            raise KeyboardInterrupt  # the operator's Ctrl-C: a clean stop

    monkeypatch.setattr(NodeRuntime, "build", classmethod(lambda cls, cfg, role: type("RT", (), {"cfg": cfg})()))
    monkeypatch.setattr(vloop, "Validator", StandInValidator)
    try:
        rc = entry.run_neuron(ValidatorNeuronConfig, "validator",
                              ["--metrics.port", str(port), "--state_dir", str(state), "--netuid", "3"])
    finally:
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
    assert rc == 0
    assert probe["events_dir"] == str(state / "events")  # metrics on: the event log defaults under the state dir
    s = probe["samples"]
    written = read_events(state / "events")
    assert [e["event"] for e in written] == ["window_scored", "weights_set"]
    assert val(s, "heldout_loss") == written[0]["heldout_loss"] and val(s, "window") == written[0]["window"]
    assert val(s, "weights_last_block") == written[1]["block"] and val(s, "weights_set_total", outcome="set") == 1
    assert val(s, "node_info", component="validator", uid="4", hotkey=HK_V, netuid="3", preset="tiny") == 1
    assert ("process_cpu_seconds_total", frozenset()) in s
    with pytest.raises(urllib.error.URLError):  # stopped with the neuron
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_neuron_entry_refuses_a_busy_metrics_port_before_building(tmp_path, monkeypatch):
    from subnet.node import entry
    from subnet.node.runtime import NodeRuntime

    def no_build(cls, cfg, role):
        raise AssertionError("must not build the node")

    monkeypatch.setattr(NodeRuntime, "build", classmethod(no_build))
    busy = MetricsServer(CollectorRegistry(), "127.0.0.1", 0)
    try:
        rc = entry.run_neuron(MinerNeuronConfig, "miner", ["--netuid", "1", "--metrics.port", str(busy.port),
                                                           "--state_dir", str(tmp_path)])
    finally:
        busy.close()
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
    assert rc == 1


# -- W&B (never imported or called here) -------------------------------------------------------------------


def test_wandb_rows_follow_the_events(tmp_path):
    with EventLog(tmp_path / "v.jsonl", component="validator", uid=1) as log:
        _validator_events(log)
    rows = [wandb_row(e) for e in read_events(tmp_path / "v.jsonl")]
    first = rows[0]
    assert first["heldout_loss"] == 6.25 and first["score/2"] == 0.04 and first["weight/3"] == 0.1
    assert first["outcomes/store_failing"] == 1 and first["rating_ordinal/2"] == 4.5
    assert rows[1]["heldout_loss_after"] == 6.1 and rows[2]["weights_set/success"] == 1.0
    assert "heldout_loss" not in rows[3]  # NaN in the neuron, null in the log: not logged
    assert wandb_row({"event": "chain_error"}) == {}


def test_wandb_without_the_package_refuses_at_start(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="wandb is not installed"):
        WandbSink(WandbConfig(project="tessera"), "validator")


# -- the dashboard uses these names -------------------------------------------------------------------------


def test_grafana_dashboard_uses_exported_metric_names():
    import re

    board = json.loads((ROOT / "contrib" / "grafana-tessera.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs
    known = {PREFIX + n for n in METRICS} | {PREFIX + n + s for n, (k, _, _) in METRICS.items() if k == "histogram"
                                             for s in ("_bucket", "_sum", "_count")}
    used = {m for e in exprs for m in re.findall(r"\btessera_[a-z_]+", e)}
    assert used and used <= known, used - known
