"""Flags of a neuron's observability: the Prometheus endpoint, optional W&B logging, the web dashboard.

All are off by default and both are fed from the neuron's event log (see
`subnet.telemetry.events`, "Sinks"), so turning one on turns the event log on
too (`--telemetry.dir`, by default `<state_dir>/events` then). The metrics
endpoint binds to loopback unless told otherwise: it is for a local
Prometheus or an SSH tunnel, not for the internet; so does the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass

from subnet.errors import ConfigError

SUGGESTED_PORTS = {"validator": 9500, "miner": 9501}
"""The ports the README and contrib/grafana-tessera.json use (one neuron of each role per host)."""
DASHBOARD_PORT = 9510
"""The dashboard port the README, deploy/ and `tessera dashboard` use."""


@dataclass(frozen=True, kw_only=True)
class MetricsConfig:
    """Prometheus metrics endpoint (`/metrics`) fed by the event log."""

    port: int = 0
    """TCP port of the /metrics endpoint; 0 turns it off (the README uses 9500 for a validator, 9501 for a miner)."""
    host: str = "127.0.0.1"
    """Address the endpoint binds to: loopback by default; 0.0.0.0 exposes it on every interface."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"metrics.port must be in 0..65535 (0 = off), got {self.port}")
        if not self.host:
            raise ConfigError("metrics.host must not be empty")

    @property
    def enabled(self) -> bool:
        return self.port != 0


@dataclass(frozen=True, kw_only=True)
class WandbConfig:
    """Optional Weights & Biases run fed by the same events (needs `pip install wandb` and a login)."""

    project: str | None = None
    """W&B project to log to; none: W&B off."""
    entity: str | None = None
    """W&B entity (user or team); none: the logged-in default."""
    run_name: str | None = None
    """W&B run name; none: <role>-<uid> once the uid is known."""

    @property
    def enabled(self) -> bool:
        return bool(self.project)


@dataclass(frozen=True, kw_only=True)
class DashboardConfig:
    """Read-only web dashboard (subnet.telemetry.dashboard) served from the neuron's event log."""

    port: int = 0
    """TCP port of the dashboard (the README uses 9510); 0 turns it off on a neuron, and makes `tessera dashboard`
    pick a free one."""
    host: str = "127.0.0.1"
    """Address it binds to: loopback by default (reach it over an SSH tunnel); 0.0.0.0 exposes it on every interface."""
    refresh_s: float = 5.0
    """Seconds between the page's refreshes (and the least time between two reads of the event log)."""
    history: int = 48
    """Windows the timeline keeps (older windows stay in the loss curve and the ratings)."""
    validator: str = ""
    """Whose view to show when several validators log into one directory: a validator's uid or hotkey (ss58);
    empty: the first validator found in the log (the others are listed, never mixed in)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"dashboard.port must be in 0..65535 (0 = off), got {self.port}")
        if not self.host:
            raise ConfigError("dashboard.host must not be empty")
        if not self.refresh_s > 0 or self.history < 1:
            raise ConfigError(f"dashboard: refresh_s > 0 and history >= 1, got {self.refresh_s}, {self.history}")

    @property
    def enabled(self) -> bool:
        return self.port != 0
