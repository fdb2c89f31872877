"""Prometheus metrics of a neuron, fed by its event log records: one source of truth.

Why this shape: the JSONL event log (events.py) is what the scoreboard, the
report and `tessera status` read; the metrics must never say something else.
So `MetricsSink` is an EventLog sink: it sees each record as written and
updates a private `CollectorRegistry`; `MetricsServer` serves that registry
over HTTP (`/metrics`, Prometheus text format). Nothing here reads the chain,
a store or the model itself.

Metric names (all `tessera_`; the table is `METRICS`, the dashboard is
contrib/grafana-tessera.json). Fields an event does not carry yet leave their
metric unset (e.g. `gpu`, `train_seconds`): the series appears once a neuron
reports it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from subnet.telemetry.events import as_number as _num
from subnet.telemetry.events import uid_map
from subnet.telemetry.outcomes import peer_outcome, store_error_kind

PREFIX = "tessera_"
WINDOW_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)
GPU_FIELDS = {  # key in an event's `gpu` object -> metric suffix
    "memory_allocated_bytes": "gpu_memory_allocated_bytes",
    "memory_reserved_bytes": "gpu_memory_reserved_bytes",
    "max_memory_allocated_bytes": "gpu_max_memory_allocated_bytes",
    "memory_total_bytes": "gpu_memory_total_bytes",
    "utilization": "gpu_utilization_ratio",
}

# name (without the prefix) -> (type, help, labels). The single list of what a neuron exports.
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "node_info": ("gauge", "1 for this neuron (labels say who it is)",
                  ("component", "uid", "hotkey", "netuid", "preset")),
    "events_total": ("counter", "Event-log records written, by event", ("event",)),
    "last_event_timestamp_seconds": ("gauge", "Unix time of the last event-log record", ()),
    "window": ("gauge", "Last window finished (validator: scored; miner: uploaded or late)", ()),
    "window_duration_seconds": ("histogram", "Seconds a window's phase took (score, train, encode, upload)",
                                ("phase",)),
    "window_last_duration_seconds": ("gauge", "Seconds the last window's phase took", ("phase",)),
    "tokens_per_second": ("gauge", "Training throughput of the last window (tokens / train seconds)", ()),
    "tokens_trained_total": ("counter", "Tokens trained on, summed over windows", ()),
    "upload_size_bytes": ("gauge", "Size of the last uploaded artifact", ()),
    "upload_bytes_total": ("counter", "Bytes of artifacts uploaded", ()),
    "uploads_total": ("counter", "Miner windows by result (uploaded, late)", ("outcome",)),
    "train_loss": ("gauge", "Training loss of the last window at its first and last inner step", ("at",)),
    "heldout_loss": ("gauge", "Held-out loss of the global model before the window's update (validator)", ()),
    "heldout_loss_after": ("gauge", "Held-out loss after the lead applied its manifest", ()),
    "model_version": ("gauge", "Version of the node's copy of the global model", ()),
    "model_info": ("gauge", "1 for the current model hash", ("model_hash",)),
    "syncs_total": ("counter", "Times the node moved its model to the lead's newest version", ()),
    "manifests_published_total": ("counter", "Manifests this node published as lead", ()),
    "manifest_entries": ("gauge", "Contributions selected by the last manifest", ()),
    "peer_score": ("gauge", "Raw score of each uid in the last window scored", ("uid",)),
    "peer_norm_score": ("gauge", "Cohort-normalised score of each uid in the last window scored", ("uid",)),
    "peer_heldout_improvement": ("gauge", "Held-out loss improvement of each uid's update", ("uid",)),
    "peer_rating_mu": ("gauge", "OpenSkill mu of each uid", ("uid",)),
    "peer_rating_sigma": ("gauge", "OpenSkill sigma of each uid", ("uid",)),
    "peer_rating_ordinal": ("gauge", "OpenSkill ordinal (mu - z sigma) of each uid", ("uid",)),
    "peer_weight": ("gauge", "Weight the competition gives each uid (what the next weights call sends)", ("uid",)),
    "peer_outcomes_total": ("counter", "Peer submissions by outcome (subnet.telemetry.outcomes)", ("outcome",)),
    "peers_scored": ("gauge", "Submissions with a score in the last window", ()),
    "leader_uid": ("gauge", "Competition leader uid (-1: none)", ()),
    "competition_round": ("gauge", "Competition rounds played", ()),
    "weights_set_total": ("counter", "Weights calls by outcome (set, committed_pending, refused, impossible ...)",
                          ("outcome",)),
    "weights_reveals_total": ("counter", "Commit-reveal verifications by outcome (revealed, reveal_failed)",
                              ("outcome",)),
    "weights_sent": ("gauge", "Share of the row each uid got in the last weights that landed", ("uid",)),
    "weights_last_block": ("gauge", "Block of the last weights that landed (set, committed or revealed)", ()),
    "weights_last_success": ("gauge", "1 if the last weights call landed, 0 if it failed", ()),
    "weights_last_timestamp_seconds": ("gauge", "Unix time of the last weights call", ()),
    "weights_pending_reveal": ("gauge", "1 while a timelocked commit waits for its reveal", ()),
    "weights_pending_commit_block": ("gauge", "Block of the commit waiting for its reveal (-1: none)", ()),
    "chain_errors_total": ("counter", "Chain errors by kind", ("kind",)),
    "store_errors_total": ("counter", "Store errors by store (own, peer) and kind", ("store", "kind")),
    **{suffix: ("gauge", f"GPU figure '{key}' as the neuron reported it", ("device",))
       for key, suffix in GPU_FIELDS.items()},
}


class _LastValue:
    """An unlabelled gauge that exports no sample until set: a miner has no held-out loss, not 0."""

    def __init__(self, name: str, doc: str) -> None:
        self.name, self.doc = name, doc
        self.value: float | None = None

    def set(self, value: float) -> None:
        self.value = float(value)

    def family(self) -> GaugeMetricFamily:
        fam = GaugeMetricFamily(self.name, self.doc)
        if self.value is not None:
            fam.add_metric([], self.value)
        return fam


class _LastValues(Collector):
    """Collector of the `_LastValue` gauges of one sink."""

    def __init__(self, gauges: list[_LastValue]) -> None:
        self.gauges = gauges

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(g.name, g.doc) for g in self.gauges]

    def collect(self) -> list[GaugeMetricFamily]:
        return [g.family() for g in self.gauges]


class MetricsSink:
    """Updates a Prometheus registry from event-log records (an `EventLog` sink)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, netuid: int | None = None,
                 preset: str | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._static = {"netuid": "" if netuid is None else str(netuid), "preset": preset or ""}
        self._lock = threading.Lock()  # per-uid families are cleared and refilled as one step
        self.m: dict[str, Any] = {}
        last_values: list[_LastValue] = []
        for name, (kind, doc, labels) in METRICS.items():
            full = PREFIX + name
            if kind == "counter":
                # prometheus_client appends _total itself; give it the base name.
                self.m[name] = Counter(full.removesuffix("_total"), doc, labels, registry=self.registry)
            elif kind == "histogram":
                self.m[name] = Histogram(full, doc, labels, registry=self.registry, buckets=WINDOW_BUCKETS)
            elif labels:
                self.m[name] = Gauge(full, doc, labels, registry=self.registry)
            else:
                self.m[name] = _LastValue(full, doc)
                last_values.append(self.m[name])
        self.registry.register(_LastValues(last_values))
        self._hash: str | None = None
        self._who: tuple[str, str, str] | None = None

    def __call__(self, record: Mapping[str, Any]) -> None:
        event = str(record.get("event"))
        with self._lock:
            self.m["events_total"].labels(event=event).inc()
            ts = _num(record.get("ts"))
            if ts is not None:
                self.m["last_event_timestamp_seconds"].set(ts)
            self._identify(record)
            handler = getattr(self, "_on_" + event, None)
            if handler is not None:
                handler(record)
            gpu = record.get("gpu")
            if gpu is not None:
                self._gpu(gpu)

    # -- shared ---------------------------------------------------------------------------------
    def _identify(self, ev: Mapping[str, Any]) -> None:
        if ev.get("component") not in ("validator", "miner"):
            return
        who = (str(ev.get("component")), "" if ev.get("uid") is None else str(ev.get("uid")),
               str(ev.get("hotkey") or ""))
        if who != self._who:
            self.m["node_info"].clear()
            self.m["node_info"].labels(component=who[0], uid=who[1], hotkey=who[2], **self._static).set(1)
            self._who = who

    def _model(self, version: Any, model_hash: Any) -> None:
        v = _num(version)
        if v is not None:
            self.m["model_version"].set(v)
        if isinstance(model_hash, str) and model_hash and model_hash != self._hash:
            self.m["model_info"].clear()
            self.m["model_info"].labels(model_hash=model_hash).set(1)
            self._hash = model_hash

    def _phase(self, phase: str, seconds: Any) -> None:
        s = _num(seconds)
        if s is not None and s >= 0:
            self.m["window_duration_seconds"].labels(phase=phase).observe(s)
            self.m["window_last_duration_seconds"].labels(phase=phase).set(s)

    def _window(self, window: Any) -> None:
        w = _num(window)
        if w is not None:
            self.m["window"].set(w)

    def _per_uid(self, name: str, values: Mapping[int, float | None]) -> None:
        """Replace a per-uid family: uids no longer reported disappear instead of going stale."""
        fam = self.m[name]
        fam.clear()
        for uid, v in sorted(values.items()):
            if v is not None:
                fam.labels(uid=str(uid)).set(v)

    def _gpu(self, gpu: Any) -> None:
        devices = gpu if isinstance(gpu, list) else [gpu]
        for i, dev in enumerate(devices):
            if not isinstance(dev, Mapping):
                continue
            device = str(dev.get("device", i))
            for key, suffix in GPU_FIELDS.items():
                v = _num(dev.get(key))
                if v is not None:
                    self.m[suffix].labels(device=device).set(v)

    # -- validator events -----------------------------------------------------------------------
    def _on_window_scored(self, ev: Mapping[str, Any]) -> None:
        self._window(ev.get("window"))
        self._phase("score", ev.get("seconds"))
        self._model(ev.get("version"), ev.get("model_hash"))
        loss = _num(ev.get("heldout_loss"))
        if loss is not None:
            self.m["heldout_loss"].set(loss)
        scores = {u: s if isinstance(s, Mapping) else {} for u, s in uid_map(ev.get("scores")).items()}
        self._per_uid("peer_score", {u: _num(s.get("score")) for u, s in scores.items()})
        self._per_uid("peer_norm_score", {u: _num(s.get("norm_score")) for u, s in scores.items()})
        self._per_uid("peer_heldout_improvement", {u: _num(s.get("heldout_improvement")) for u, s in scores.items()})
        self.m["peers_scored"].set(sum(_num(s.get("score")) is not None for s in scores.values()))
        for s in scores.values():
            self.m["peer_outcomes_total"].labels(
                outcome=peer_outcome(s.get("score"), s.get("reason"), s.get("outcome"))).inc()
            kind = store_error_kind(s.get("reason"))
            if kind is not None:
                self.m["store_errors_total"].labels(store="peer", kind=kind).inc()
        ratings = {u: r if isinstance(r, Mapping) else {} for u, r in uid_map(ev.get("ratings")).items()}
        for field in ("mu", "sigma", "ordinal"):
            self._per_uid(f"peer_rating_{field}", {u: _num(r.get(field)) for u, r in ratings.items()})
        if ev.get("weights") is not None:
            self._per_uid("peer_weight", {u: _num(w) for u, w in uid_map(ev.get("weights")).items()})
        leader = _num(ev.get("leader"))
        self.m["leader_uid"].set(-1 if leader is None else leader)
        rnd = _num(ev.get("round"))
        if rnd is not None:
            self.m["competition_round"].set(rnd)

    def _on_manifest_published(self, ev: Mapping[str, Any]) -> None:
        self.m["manifests_published_total"].inc()
        self._model(ev.get("new_version"), ev.get("model_hash"))
        self.m["manifest_entries"].set(len(ev.get("selected") or []))
        after = _num(ev.get("heldout_loss_after"))
        if after is not None:
            self.m["heldout_loss_after"].set(after)

    def _on_weights_set(self, ev: Mapping[str, Any]) -> None:
        outcome = str(ev.get("outcome") or ("set" if ev.get("success") else "refused"))
        self.m["weights_set_total"].labels(outcome=outcome).inc()
        ok = bool(ev.get("success"))
        self.m["weights_last_success"].set(1 if ok else 0)
        ts = _num(ev.get("ts"))
        if ts is not None:
            self.m["weights_last_timestamp_seconds"].set(ts)
        if ok:
            self._landed(ev)
        elif outcome == "refused":
            self.m["chain_errors_total"].labels(kind="weights_refused").inc()
        pending = ev.get("pending")
        if outcome == "committed_pending" and isinstance(pending, Mapping):
            self.m["weights_pending_reveal"].set(1)
            block = _num(pending.get("commit_block"))
            self.m["weights_pending_commit_block"].set(-1 if block is None else block)
        elif outcome == "set":
            self._no_pending()

    def _on_weights_revealed(self, ev: Mapping[str, Any]) -> None:
        outcome = str(ev.get("outcome") or ("revealed" if ev.get("success") else "reveal_failed"))
        self.m["weights_reveals_total"].labels(outcome=outcome).inc()
        self._no_pending()
        if outcome == "revealed":
            self._landed(ev)

    def _landed(self, ev: Mapping[str, Any]) -> None:
        block = _num(ev.get("block"))
        if block is not None:
            self.m["weights_last_block"].set(block)
        if ev.get("weights") is not None:
            self._per_uid("weights_sent", {u: _num(w) for u, w in uid_map(ev.get("weights")).items()})

    def _no_pending(self) -> None:
        self.m["weights_pending_reveal"].set(0)
        self.m["weights_pending_commit_block"].set(-1)

    # -- both roles -----------------------------------------------------------------------------
    def _on_synced(self, ev: Mapping[str, Any]) -> None:
        self.m["syncs_total"].inc()
        self._model(ev.get("version"), ev.get("model_hash"))

    def _on_chain_error(self, ev: Mapping[str, Any]) -> None:
        self.m["chain_errors_total"].labels(kind=str(ev.get("kind") or _kind_of(ev.get("error")))).inc()

    def _on_store_error(self, ev: Mapping[str, Any]) -> None:
        self.m["store_errors_total"].labels(store=str(ev.get("store") or "own"),
                                            kind=str(ev.get("kind") or _kind_of(ev.get("error")))).inc()

    # -- miner events ---------------------------------------------------------------------------
    def _on_uploaded(self, ev: Mapping[str, Any]) -> None:
        self._window(ev.get("window"))
        self.m["uploads_total"].labels(outcome="uploaded").inc()
        nbytes = _num(ev.get("bytes"))
        if nbytes is not None:
            self.m["upload_size_bytes"].set(nbytes)
            self.m["upload_bytes_total"].inc(max(0.0, nbytes))
        self._model(ev.get("base_version"), None)
        for at in ("first", "last"):
            loss = _num(ev.get(f"loss_{at}"))
            if loss is not None:
                self.m["train_loss"].labels(at=at).set(loss)
        for phase in ("train", "encode", "upload"):
            self._phase(phase, ev.get(f"{phase}_seconds"))
        tokens, secs = _num(ev.get("tokens")), _num(ev.get("train_seconds"))
        if tokens is not None and tokens >= 0:
            self.m["tokens_trained_total"].inc(tokens)
        rate = _num(ev.get("tokens_per_s"))
        if rate is None and tokens is not None and secs:
            rate = tokens / secs
        if rate is not None:
            self.m["tokens_per_second"].set(rate)

    def _on_late(self, ev: Mapping[str, Any]) -> None:
        self._window(ev.get("window"))
        self.m["uploads_total"].labels(outcome="late").inc()


def _kind_of(error: Any) -> str:
    """An error kind from an error text: its leading exception name ("ChainError: ...") or 'unknown'."""
    head = str(error or "").split(":", 1)[0].strip()
    return head if head.isidentifier() else "unknown"


class MetricsServer:
    """The `/metrics` HTTP endpoint of one registry, on its own daemon thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        self.registry = registry
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            from subnet.errors import ConfigError

            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}",
                              remediation="pick a free --metrics.port (or 0 to turn metrics off)") from exc
        self.host = host
        self.port = int(self._httpd.server_port)  # the bound port (port 0: one the OS picked)
        logger.info("metrics on http://{}:{}/metrics", host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
