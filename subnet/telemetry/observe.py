"""Wire a neuron's observability at start: metrics endpoint, W&B and the web dashboard, all fed by its event log.

`start_observability(cfg, role)` is what `subnet.node.entry.run_neuron` calls
before building the node (so a busy port refuses the start before any chain
work); once the loop exists, `Observability.attach(loop.events)` makes its
event log feed the sinks. The loops write events only when `--telemetry.dir`
is set, so with metrics, W&B or the dashboard on and no directory given, the
event log goes to `<state_dir>/events` (what `tessera status` reads by default
too): the file and the endpoints then always agree. The dashboard
(`--dashboard.port`, validator) tails that directory rather than being a sink,
so it shows the same thing as `tessera dashboard` on the same files. The
handle is closed when the neuron stops.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from subnet.telemetry.config import DashboardConfig, MetricsConfig, WandbConfig
from subnet.telemetry.events import EventLog, Sink

EVENTS_SUBDIR = "events"


@dataclass
class Observability:
    """What `start_observability` started; `close()` stops it (idempotent)."""

    sinks: list[Sink] = field(default_factory=list)
    server: Any = None  # MetricsServer | None
    metrics: Any = None  # MetricsSink | None
    dashboard: Any = None  # DashboardServer | None

    def attach(self, log: EventLog | None) -> None:
        """Feed `log`'s records to every sink (a no-op without sinks or without a log)."""
        if log is None:
            return
        for sink in self.sinks:
            log.add_sink(sink)

    def close(self) -> None:
        for sink in self.sinks:
            closer = getattr(sink, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # noqa: BLE001 - shutting down: report and go on
                    logger.warning("closing {!r} failed: {}", sink, exc)
        self.sinks = []
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.dashboard is not None:
            self.dashboard.close()
            self.dashboard = None


def default_events_dir(state_dir: str | Path) -> Path:
    return Path(state_dir).expanduser() / EVENTS_SUBDIR


def start_observability(cfg: Any, role: str) -> tuple[Any, Observability]:
    """(cfg, handle): cfg with an event-log directory when a sink needs one; the sinks built, the server up."""
    mcfg: MetricsConfig = getattr(cfg, "metrics", MetricsConfig())
    wcfg: WandbConfig = getattr(cfg, "wandb", WandbConfig())
    dcfg: DashboardConfig = getattr(cfg, "dashboard", DashboardConfig())
    obs = Observability()
    if not (mcfg.enabled or wcfg.enabled or dcfg.enabled):
        return cfg, obs
    if not cfg.telemetry.dir:
        events = default_events_dir(cfg.state_dir)
        logger.info("metrics/W&B/dashboard read the event log: writing it to {} (set --telemetry.dir to move it)",
                    events)
        cfg = dataclasses.replace(cfg, telemetry=dataclasses.replace(cfg.telemetry, dir=str(events)))
    try:
        if mcfg.enabled:
            from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

            from subnet.telemetry.metrics import MetricsServer, MetricsSink

            registry = CollectorRegistry()
            for collector in (ProcessCollector, PlatformCollector, GCCollector):
                collector(registry=registry)
            obs.metrics = MetricsSink(registry, netuid=cfg.netuid, preset=cfg.model.preset)
            obs.server = MetricsServer(registry, mcfg.host, mcfg.port)
            obs.sinks.append(obs.metrics)
        if wcfg.enabled:
            from subnet.config import to_dict
            from subnet.telemetry.wandb_sink import WandbSink

            obs.sinks.append(WandbSink(wcfg, role, config=to_dict(cfg)))
        if dcfg.enabled:
            from subnet.telemetry.dashboard import DashboardFeed
            from subnet.telemetry.dashboard_http import DashboardServer

            feed = DashboardFeed(cfg.telemetry.dir, state_dir=cfg.state_dir, history=dcfg.history,
                                 min_poll_s=min(1.0, dcfg.refresh_s / 2), validator=dcfg.validator)
            obs.dashboard = DashboardServer(feed, dcfg.host, dcfg.port, refresh_s=dcfg.refresh_s)
    except BaseException:
        obs.close()
        raise
    return cfg, obs
