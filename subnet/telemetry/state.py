"""Fold a stream of telemetry events into the run's current standing.

One reducer feeds both the live scoreboard and the final report, so what the
operator watched and what the report says cannot disagree. It is pure (no
I/O): feed it events in time order with :meth:`RunState.apply`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from subnet.telemetry.events import uid_map


def _f(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


@dataclass(kw_only=True)
class MinerStanding:
    """Everything known about one uid, from its own events and the validator's."""

    uid: int
    hotkey: str | None = None
    behaviour: str | None = None
    uploads: int = 0
    last_upload_window: int | None = None
    last_loss_first: float | None = None
    last_loss_last: float | None = None
    fragment: int | None = None
    score: float | None = None
    norm_score: float | None = None
    heldout_improvement: float | None = None
    proof_of_work: Any = None
    reason: str | None = None
    mu: float | None = None
    sigma: float | None = None
    ordinal: float | None = None
    weight: float = 0.0
    selected: int = 0
    # (window, score) for every window the validator scored this uid.
    scores: list[tuple[int, float]] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return len(self.scores)

    @property
    def mean_score(self) -> float | None:
        vals = [s for _, s in self.scores]
        return sum(vals) / len(vals) if vals else None


@dataclass(kw_only=True)
class RunState:
    """Current window/version/loss plus a :class:`MinerStanding` per uid."""

    window: int | None = None
    version: int | None = None
    block: int | None = None
    heldout_loss: float | None = None
    leader: int | None = None
    validator_uid: int | None = None
    validator_hotkey: str | None = None
    windows_scored: int = 0
    weights_set_ok: int = 0
    weights_set_failed: int = 0
    last_weights_error: str | None = None
    manifests: int = 0
    model_hash: str | None = None
    # (window, held-out loss of the global model before that window's update)
    loss_series: list[tuple[int, float]] = field(default_factory=list)
    # (window, held-out loss after applying the published manifest)
    loss_after_series: list[tuple[int, float]] = field(default_factory=list)
    miners: dict[int, MinerStanding] = field(default_factory=dict)
    last_ts: float | None = None
    events_seen: int = 0
    notes: list[str] = field(default_factory=list)

    def miner(self, uid: int) -> MinerStanding:
        if uid not in self.miners:
            self.miners[uid] = MinerStanding(uid=uid)
        return self.miners[uid]

    def apply_all(self, events: Iterable[Mapping[str, Any]]) -> RunState:
        for ev in events:
            self.apply(ev)
        return self

    def apply(self, ev: Mapping[str, Any]) -> None:
        self.events_seen += 1
        self.last_ts = _f(ev.get("ts")) or self.last_ts
        b = ev.get("block")
        if isinstance(b, int) and not isinstance(b, bool) and (self.block is None or b > self.block):
            self.block = b
        handler = getattr(self, "_on_" + str(ev.get("event")), None)
        if handler is not None:
            handler(ev)

    # -- validator events -------------------------------------------------
    def _on_window_scored(self, ev: Mapping[str, Any]) -> None:
        window = ev.get("window")
        self.windows_scored += 1
        if isinstance(window, int):
            self.window = window if self.window is None else max(self.window, window)
        if ev.get("version") is not None:
            self.version = ev["version"]
        self.validator_uid = ev.get("uid", self.validator_uid)
        self.validator_hotkey = ev.get("hotkey", self.validator_hotkey)
        loss = _f(ev.get("heldout_loss"))
        if loss is not None and isinstance(window, int):
            self.heldout_loss = loss
            self.loss_series.append((window, loss))
        for uid, s in uid_map(ev.get("scores")).items():
            m = self.miner(uid)
            s = s or {}
            m.fragment = s.get("fragment", m.fragment)
            m.score = _f(s.get("score"))
            m.norm_score = _f(s.get("norm_score"))
            m.heldout_improvement = _f(s.get("heldout_improvement"))
            m.proof_of_work = s.get("proof_of_work")
            m.reason = s.get("reason")
            if m.score is not None and isinstance(window, int):
                m.scores.append((window, m.score))
        for uid, r in uid_map(ev.get("ratings")).items():
            m = self.miner(uid)
            r = r or {}
            m.mu, m.sigma, m.ordinal = _f(r.get("mu")), _f(r.get("sigma")), _f(r.get("ordinal"))
        leader = ev.get("leader")
        self.leader = int(leader) if isinstance(leader, (int, str)) and str(leader).lstrip("-").isdigit() else None
        weights = ev.get("weights")
        if weights is not None:
            self._set_weights(weights)

    def _on_weights_set(self, ev: Mapping[str, Any]) -> None:
        if ev.get("success"):
            self.weights_set_ok += 1
            if ev.get("weights") is not None:
                self._set_weights(ev["weights"])
        else:
            self.weights_set_failed += 1
            self.last_weights_error = str(ev.get("error"))

    def _on_manifest_published(self, ev: Mapping[str, Any]) -> None:
        self.manifests += 1
        if ev.get("new_version") is not None:
            self.version = ev["new_version"]
        self.model_hash = ev.get("model_hash", self.model_hash)
        after = _f(ev.get("heldout_loss_after"))
        if after is not None and isinstance(ev.get("window"), int):
            self.loss_after_series.append((ev["window"], after))
        for sel in ev.get("selected") or []:
            if isinstance(sel, Mapping) and sel.get("uid") is not None:
                self.miner(int(sel["uid"])).selected += 1

    def _on_synced(self, ev: Mapping[str, Any]) -> None:
        if ev.get("component") == "validator" and ev.get("version") is not None:
            self.version = ev["version"] if self.version is None else max(self.version, ev["version"])
            self.model_hash = ev.get("model_hash", self.model_hash)

    # -- miner events -------------------------------------------------------
    def _on_uploaded(self, ev: Mapping[str, Any]) -> None:
        if ev.get("uid") is None:
            return
        m = self.miner(int(ev["uid"]))
        m.hotkey = ev.get("hotkey") or m.hotkey
        m.behaviour = ev.get("behaviour") or m.behaviour
        m.uploads += 1
        m.last_upload_window = ev.get("window", m.last_upload_window)
        m.last_loss_first = _f(ev.get("loss_first"))
        m.last_loss_last = _f(ev.get("loss_last"))
        if m.fragment is None:
            m.fragment = ev.get("fragment")

    def _on_started(self, ev: Mapping[str, Any]) -> None:
        """Optional: neurons may announce themselves (uid, hotkey, behaviour) at start."""
        if ev.get("component") == "miner" and ev.get("uid") is not None:
            m = self.miner(int(ev["uid"]))
            m.hotkey = ev.get("hotkey") or m.hotkey
            m.behaviour = ev.get("behaviour") or m.behaviour
        elif ev.get("component") == "validator":
            self.validator_uid = ev.get("uid", self.validator_uid)
            self.validator_hotkey = ev.get("hotkey", self.validator_hotkey)

    def _on_demo_miner(self, ev: Mapping[str, Any]) -> None:
        """The demo records which behaviour it launched each uid with."""
        self._on_started({**ev, "component": "miner"})

    def _on_demo_role(self, ev: Mapping[str, Any]) -> None:
        """The demo names the non-miner uids (owner, validator) so they are labelled, not blank."""
        if ev.get("uid") is None:
            return
        if ev.get("role") == "validator":
            self.validator_uid = int(ev["uid"])
            self.validator_hotkey = ev.get("hotkey") or self.validator_hotkey
            return
        m = self.miner(int(ev["uid"]))
        m.hotkey = ev.get("hotkey") or m.hotkey
        m.behaviour = m.behaviour or ev.get("role")

    def _set_weights(self, weights: Any) -> None:
        w = {uid: _f(v) or 0.0 for uid, v in uid_map(weights).items()}
        for m in self.miners.values():
            m.weight = 0.0
        for uid, v in w.items():
            self.miner(uid).weight = v


def fold(events: Iterable[Mapping[str, Any]]) -> RunState:
    """The standing after all ``events`` (assumed in time order)."""
    return RunState().apply_all(events)
