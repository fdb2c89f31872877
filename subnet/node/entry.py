"""The one entry-point body every neuron shares: parse flags, set up logs, build, run, close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from subnet.config import parse_config
from subnet.errors import SubnetError
from subnet.telemetry.logs import setup_logging


def run_neuron(config_cls: type, role: str, argv: list[str] | None = None, *,
               loop: Callable[[], type] | None = None, prog: str | None = None) -> int:
    """Exit status: 0 after a clean stop, 1 when the neuron cannot start or run (message says why), 2 on bad
    flags, 3 when its hotkey was deregistered while it ran, 4 when its code is below the subnet's
    WeightsVersionKey under --version.check refuse, 75 after --version.autoupdate updated it (restart it).

    `loop` returns the loop class (imported late, after the flags parse); default: the role's
    production loop. neurons/adversary_miner.py passes its own so neurons/miner.py never imports it.
    """
    cfg: Any = parse_config(config_cls, argv, prog=prog or f"neurons/{role}.py")
    setup_logging(cfg.logging, role)
    from subnet.telemetry.observe import start_observability

    try:
        cfg, obs = start_observability(cfg, role)  # --metrics.port / --wandb.project, fed by the event log
    except SubnetError as exc:
        logger.error("cannot start the {}: {}", role, exc)
        return 1
    try:
        return _build_and_run(cfg, role, obs, loop)
    finally:
        obs.close()


def _build_and_run(cfg: Any, role: str, obs: Any, loop: Callable[[], type] | None) -> int:
    from subnet.node.runtime import NodeRuntime

    if loop is not None:
        Loop = loop()
    elif role == "miner":
        from subnet.miner.loop import Miner as Loop
    else:
        from subnet.validator.loop import Validator as Loop
    try:
        node = Loop(NodeRuntime.build(cfg, role))
    except SubnetError as exc:
        logger.error("cannot start the {}: {}", role, exc)
        return int(getattr(exc, "exit_status", 1))  # e.g. 4 outdated, 75 updated: restart (subnet/version.py)
    obs.attach(getattr(node, "events", None))  # the metrics / W&B see what the event log gets
    try:
        node.run()
    except KeyboardInterrupt:
        logger.info("interrupted")
    except SubnetError as exc:  # e.g. runtime.Deregistered, or a store location no commitment can hold
        logger.error("the {} stops: {}", role, exc)
        return int(getattr(exc, "exit_status", 1))
    return 0
