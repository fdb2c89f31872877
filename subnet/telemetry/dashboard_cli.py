"""`tessera dashboard`: serve the web dashboard of a node or a run from its event log, without the neuron.

    tessera dashboard --telemetry.dir ~/.tessera/validator/events          # http://127.0.0.1:9510/
    tessera dashboard --state_dir ~/.tessera/validator --dashboard.port 8080

Useful for a finished demo run (its report folder's events), for a node whose
neuron runs without `--dashboard.port`, or on another machine with a copy of
the logs. Every flag is also an environment variable (`--dashboard.port` <-
TESSERA_DASHBOARD_PORT). Runs until interrupted; exit status 0 then, 1 when
the port cannot be bound, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from subnet.errors import SubnetError
from subnet.telemetry.config import DASHBOARD_PORT, DashboardConfig

_EPILOG = ("Every flag can also be set by environment variable: TESSERA_ + the flag name upper-cased with dots as "
           "underscores (--telemetry.dir <- TESSERA_TELEMETRY_DIR, --dashboard.port <- TESSERA_DASHBOARD_PORT).")


@dataclass(frozen=True, kw_only=True)
class DashboardEvents:
    """Where the event log is."""

    dir: str | None = None
    """The node's (or the demo's) --telemetry.dir; none: <state_dir>/events."""


@dataclass(frozen=True, kw_only=True)
class DashboardCommand:
    """Root of the `tessera dashboard` flags."""

    state_dir: str | None = None
    """The node's --state_dir: its model file's version and its disk usage are shown too; none: events only."""
    telemetry: DashboardEvents = field(default_factory=DashboardEvents)
    dashboard: DashboardConfig = field(default_factory=lambda: DashboardConfig(port=DASHBOARD_PORT))


def events_dir_of(cmd: DashboardCommand) -> Path | None:
    if cmd.telemetry.dir:
        return Path(cmd.telemetry.dir).expanduser()
    if cmd.state_dir:
        return Path(cmd.state_dir).expanduser() / "events"
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from subnet.config import add_dataclass_flags

    parser.epilog = _EPILOG
    add_dataclass_flags(parser, DashboardCommand)
    parser.set_defaults(dashboard_parser=parser)


def run(args: argparse.Namespace, *, stop: threading.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or until `stop` is set, for callers that run it in a thread)."""
    from subnet.config import config_from_args
    from subnet.telemetry.dashboard import DashboardFeed
    from subnet.telemetry.dashboard_http import DashboardServer

    parser = getattr(args, "dashboard_parser", None)
    cmd = config_from_args(DashboardCommand, args, parser=parser)
    events = events_dir_of(cmd)
    if events is None:
        msg = "give --telemetry.dir (the event log directory) or --state_dir (its events/ is read)"
        if parser is not None:
            parser.error(msg)
        logger.error(msg)
        return 2
    if not events.exists():
        logger.warning("{} does not exist yet: the dashboard shows it once the node writes events there", events)
    feed = DashboardFeed(events, state_dir=cmd.state_dir, history=cmd.dashboard.history,
                         min_poll_s=min(1.0, cmd.dashboard.refresh_s / 2), validator=cmd.dashboard.validator)
    try:
        server = DashboardServer(feed, cmd.dashboard.host, cmd.dashboard.port, refresh_s=cmd.dashboard.refresh_s)
    except SubnetError as exc:
        logger.error("cannot start the dashboard: {}", exc)
        return 1
    print(f"tessera dashboard: {server.url} (events from {events}; Ctrl-C stops)", flush=True)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    _p = argparse.ArgumentParser(prog="tessera dashboard")
    add_arguments(_p)
    sys.exit(run(_p.parse_args()))
