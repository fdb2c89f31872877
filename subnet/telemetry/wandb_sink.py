"""Optional Weights & Biases logging, fed by the same event-log records as the metrics.

`wandb` is not a dependency: it is imported on the first record, so a neuron
without `--wandb.project` never touches it and one with it fails with a clear
message if it is not installed. `wandb_row` (pure) decides what a record
becomes; `WandbSink` only opens the run and logs rows. Rows are stepped by
window, so a validator's and a miner's runs line up on the same x axis.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from loguru import logger

from subnet.errors import ConfigError
from subnet.telemetry.config import WandbConfig
from subnet.telemetry.events import as_number as _num
from subnet.telemetry.events import uid_map
from subnet.telemetry.outcomes import peer_outcome


def wandb_row(record: Mapping[str, Any]) -> dict[str, float]:
    """The W&B scalars of one event-log record (empty: nothing to log). Keys mirror the metric names."""
    ev, row = record.get("event"), {}

    def put(key: str, value: Any) -> None:
        v = _num(value)
        if v is not None:
            row[key] = v

    if ev == "window_scored":
        put("heldout_loss", record.get("heldout_loss"))
        put("window_seconds/score", record.get("seconds"))
        put("model_version", record.get("version"))
        put("leader_uid", record.get("leader"))
        outcomes: dict[str, int] = {}
        for uid, s in uid_map(record.get("scores")).items():
            s = s if isinstance(s, Mapping) else {}
            put(f"score/{uid}", s.get("score"))
            outcome = peer_outcome(s.get("score"), s.get("reason"), s.get("outcome"))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        for outcome, n in outcomes.items():
            row[f"outcomes/{outcome}"] = float(n)
        for uid, r in uid_map(record.get("ratings")).items():
            put(f"rating_ordinal/{uid}", (r or {}).get("ordinal") if isinstance(r, Mapping) else None)
        for uid, w in uid_map(record.get("weights")).items():
            put(f"weight/{uid}", w)
    elif ev == "manifest_published":
        put("heldout_loss_after", record.get("heldout_loss_after"))
        put("model_version", record.get("new_version"))
        row["manifest_entries"] = float(len(record.get("selected") or []))
    elif ev in ("weights_set", "weights_revealed"):
        row[f"{ev}/success"] = 1.0 if record.get("success") else 0.0
        put(f"{ev}/block", record.get("block"))
    elif ev == "uploaded":
        put("upload_bytes", record.get("bytes"))
        put("train_loss/first", record.get("loss_first"))
        put("train_loss/last", record.get("loss_last"))
        put("model_version", record.get("base_version"))
        put("window_seconds/train", record.get("train_seconds"))
        tokens, secs = _num(record.get("tokens")), _num(record.get("train_seconds"))
        put("tokens_per_second", record.get("tokens_per_s") or (tokens / secs if tokens is not None and secs else None))
    elif ev == "synced":
        put("model_version", record.get("version"))
    return row


class WandbSink:
    """Logs `wandb_row` of every record to one W&B run, opened on the first record worth logging."""

    def __init__(self, cfg: WandbConfig, role: str, *, config: Mapping[str, Any] | None = None) -> None:
        if not cfg.enabled:
            raise ConfigError("WandbSink needs --wandb.project")
        if importlib.util.find_spec("wandb") is None:  # fail at start, not on the first window
            raise ConfigError("--wandb.project is set but wandb is not installed",
                              remediation="pip install wandb (and `wandb login`), or drop --wandb.project")
        self.cfg, self.role, self._config = cfg, role, dict(config or {})
        self._run: Any = None
        self._step = 0

    def __call__(self, record: Mapping[str, Any]) -> None:
        row = wandb_row(record)
        if not row:
            return
        if self._run is None:
            self._run = self._open(record)
        window = record.get("window")
        if isinstance(window, int) and not isinstance(window, bool):
            self._step = max(self._step, window)  # W&B steps must not go back
        self._run.log(row, step=self._step)

    def _open(self, record: Mapping[str, Any]) -> Any:
        wandb = importlib.import_module("wandb")
        name = self.cfg.run_name or f"{self.role}-{record.get('uid')}"
        logger.info("logging to W&B project {} as run {}", self.cfg.project, name)
        return wandb.init(project=self.cfg.project, entity=self.cfg.entity, name=name, config=self._config,
                          job_type=self.role)

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
