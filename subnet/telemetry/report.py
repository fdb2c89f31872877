"""The end-of-run report folder: plot, leaderboard (md + csv), chain snapshot, summary.

Why a folder of plain files: a demo or CI run must leave evidence a reviewer
can open without the code (PNG, Markdown, CSV, JSON). Every file is written
atomically (tmp + ``os.replace``) so an interrupted run never leaves a
half-written report.

Leaderboard order: final weight (what the validator pays) descending, then
rating ordinal, then mean score, then on-chain incentive, then uid. Chain columns (incentive,
emission) come from ``chain.json`` when a snapshot was taken.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from subnet.atomic import write_text_atomic
from subnet.telemetry.events import read_events
from subnet.telemetry.plots import plot_loss_curve
from subnet.telemetry.scoreboard import render_plain
from subnet.telemetry.state import RunState, fold

LEADERBOARD_FIELDS = (
    "rank",
    "uid",
    "hotkey",
    "behaviour",
    "rounds",
    "mean_score",
    "mu",
    "sigma",
    "ordinal",
    "final_weight",
    "selected",
    "incentive",
    "emission",
)


@dataclass(frozen=True, kw_only=True)
class LeaderRow:
    rank: int
    uid: int
    hotkey: str | None
    behaviour: str | None
    rounds: int
    mean_score: float | None
    mu: float | None
    sigma: float | None
    ordinal: float | None
    final_weight: float
    selected: int
    incentive: float | None
    emission: float | None


@dataclass(frozen=True, kw_only=True)
class ReportPaths:
    dir: Path
    loss_curve: Path
    leaderboard_md: Path
    leaderboard_csv: Path
    summary_json: Path
    scoreboard_txt: Path
    chain_json: Path | None


def _atomic_write(path: Path, data: str) -> Path:
    return write_text_atomic(path, data)


def leaderboard(state: RunState, chain: Mapping[str, Any] | None = None) -> list[LeaderRow]:
    """Ranked rows for every miner the run saw (and every chain neuron, if given)."""
    chain_by_uid = {int(n["uid"]): n for n in (chain or {}).get("neurons", [])}
    uids = set(state.miners)
    for uid, _ in chain_by_uid.items():
        # Chain-only neurons (owner, validator) are listed so emission adds up.
        uids.add(uid)
    rows: list[dict[str, Any]] = []
    for uid in uids:
        m = state.miners.get(uid)
        n = chain_by_uid.get(uid, {})
        behaviour = m.behaviour if m is not None else None
        if behaviour is None and n.get("hotkey") and n.get("hotkey") == (chain or {}).get("owner_hotkey"):
            behaviour = "owner"
        if behaviour is None and uid == state.validator_uid:
            behaviour = "validator"
        if behaviour is None and n.get("validator_permit"):
            behaviour = "validator"
        rows.append(
            {
                "uid": uid,
                "hotkey": (m.hotkey if m is not None and m.hotkey else None) or n.get("hotkey"),
                "behaviour": behaviour,
                "rounds": m.rounds if m else 0,
                "mean_score": m.mean_score if m else None,
                "mu": m.mu if m else None,
                "sigma": m.sigma if m else None,
                "ordinal": m.ordinal if m else None,
                "final_weight": m.weight if m else 0.0,
                "selected": m.selected if m else 0,
                "incentive": n.get("incentive"),
                "emission": n.get("emission"),
            }
        )

    def key(r: dict[str, Any]) -> tuple:
        neg = lambda x: -x if x is not None else float("inf")  # noqa: E731 - None sorts last
        return (neg(r["final_weight"]), neg(r["ordinal"]), neg(r["mean_score"]), neg(r["incentive"]), r["uid"])

    rows.sort(key=key)
    return [LeaderRow(rank=i + 1, **r) for i, r in enumerate(rows)]


def _fmt(x: Any, spec: str = ".4f") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def leaderboard_markdown(rows: Iterable[LeaderRow], *, title: str = "Leaderboard") -> str:
    head = "| " + " | ".join(LEADERBOARD_FIELDS) + " |"
    sep = "|" + "|".join("---:" if f not in ("hotkey", "behaviour") else "---" for f in LEADERBOARD_FIELDS) + "|"
    lines = [f"# {title}", "", head, sep]
    for r in rows:
        d = asdict(r)
        hk = d["hotkey"]
        d["hotkey"] = f"`{hk[:10]}…`" if hk else "-"
        lines.append("| " + " | ".join(_fmt(d[f]) for f in LEADERBOARD_FIELDS) + " |")
    return "\n".join(lines) + "\n"


def leaderboard_csv(rows: Iterable[LeaderRow]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LEADERBOARD_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return buf.getvalue()


def summary(state: RunState, rows: list[LeaderRow]) -> dict[str, Any]:
    """Headline figures of the run (first/last held-out loss, who led, what was set)."""
    first = state.loss_series[0] if state.loss_series else None
    last = state.loss_series[-1] if state.loss_series else None
    after = state.loss_after_series[-1] if state.loss_after_series else None
    return {
        "windows_scored": state.windows_scored,
        "last_window": state.window,
        "model_version": state.version,
        "model_hash": state.model_hash,
        "manifests_published": state.manifests,
        "weights_set_ok": state.weights_set_ok,
        "weights_set_failed": state.weights_set_failed,
        "heldout_loss_first": first[1] if first else None,
        "heldout_loss_first_window": first[0] if first else None,
        "heldout_loss_last": last[1] if last else None,
        "heldout_loss_last_window": last[0] if last else None,
        "heldout_loss_after_last_manifest": after[1] if after else None,
        "leader": state.leader,
        "leaderboard": [asdict(r) for r in rows],
    }


def write_report(
    events: str | os.PathLike[str] | RunState,
    out_dir: str | os.PathLike[str],
    *,
    chain: Mapping[str, Any] | None = None,
    title: str = "Tessera run",
) -> ReportPaths:
    """Write the report folder from an events directory/file (or a folded state)."""
    state = events if isinstance(events, RunState) else fold(read_events(events))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = leaderboard(state, chain)
    chain_path = None
    if chain is not None:
        chain_path = _atomic_write(out / "chain.json", json.dumps(chain, indent=2, sort_keys=True) + "\n")
    return ReportPaths(
        dir=out,
        loss_curve=plot_loss_curve(state, out / "loss_curve.png", title=title),
        leaderboard_md=_atomic_write(out / "leaderboard.md", leaderboard_markdown(rows, title=f"{title}: leaderboard")),
        leaderboard_csv=_atomic_write(out / "leaderboard.csv", leaderboard_csv(rows)),
        summary_json=_atomic_write(out / "summary.json", json.dumps(summary(state, rows), indent=2) + "\n"),
        scoreboard_txt=_atomic_write(out / "scoreboard.txt", render_plain(state, title) + "\n"),
        chain_json=chain_path,
    )
