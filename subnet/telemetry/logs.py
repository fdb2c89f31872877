"""Log verbosity and destination (flags `--logging.*`, bittensor's names) and the loguru set-up."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class LoggingConfig:
    """Log verbosity and destination."""

    debug: bool = False
    """Log at DEBUG level."""
    trace: bool = False
    """Log at TRACE level (implies debug)."""
    logging_dir: str | None = None
    """Also write a rotating log file in this directory."""


def setup_logging(cfg: LoggingConfig, component: str) -> None:
    """Route loguru to stderr (and optionally a rotating file) at the configured level.

    Every record carries `component` (e.g. "miner", "validator") so interleaved
    logs from several processes stay readable.
    """
    from loguru import logger

    level = "TRACE" if cfg.trace else "DEBUG" if cfg.debug else "INFO"
    fmt = (
        "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <7}</level> | "
        "<cyan>{extra[component]}</cyan> | {name}:{line} - <level>{message}</level>"
    )
    logger.remove()
    logger.configure(extra={"component": component})
    logger.add(sys.stderr, level=level, format=fmt, backtrace=cfg.trace, diagnose=cfg.trace)
    if cfg.logging_dir:
        log_dir = Path(cfg.logging_dir).expanduser()
        log_dir.mkdir(parents=True, exist_ok=True)
        logger.add(
            log_dir / f"{component}.log",
            level=level,
            format=fmt,
            rotation="50 MB",
            retention=5,
            enqueue=True,
        )
