"""Live terminal scoreboard for a run directory's event logs.

Why: the demo runs a validator and several miners as separate processes; the
operator needs one screen that says who is winning and whether the shared
model is learning. The scoreboard tails ``<run-dir>/events/*.jsonl``
incrementally, folds events with :class:`~subnet.telemetry.state.RunState`
and renders a header (window, block, version, held-out loss + sparkline) and
one row per miner uid. With a TTY it uses ``rich.live.Live``; without one (CI,
pipes, ``CI=true``) it prints a plain-text table every few seconds instead.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from subnet.telemetry.events import EventTail
from subnet.telemetry.state import MinerStanding, RunState

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 32) -> str:
    """Unicode sparkline of the last ``width`` values (high = tall)."""
    vals = [v for v in values if v is not None][-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        return SPARK[len(SPARK) // 2] * len(vals)
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / (hi - lo) * (len(SPARK) - 1) + 0.5))] for v in vals)


def _num(x: float | None, fmt: str = "{:.4f}") -> str:
    return "-" if x is None else fmt.format(x)


def _pow(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "ok" if x else "FAIL"
    if isinstance(x, (int, float)):
        return f"{x:+.4f}"
    return str(x)


def _rating(m: MinerStanding) -> str:
    if m.mu is None:
        return "-"
    sig = "?" if m.sigma is None else f"{m.sigma:.2f}"
    return f"{m.mu:.2f}±{sig} ({_num(m.ordinal, '{:.2f}')})"


COLUMNS = ("uid", "behaviour", "frag", "score", "norm", "pow", "rating μ±σ (ord)", "weight", "uploads", "reason")


def rows(state: RunState) -> list[tuple[str, ...]]:
    """Table rows, leader first then by weight and rating; shared by both renderers."""

    def key(m: MinerStanding) -> tuple:
        return (m.uid != state.leader, -m.weight, -(m.ordinal if m.ordinal is not None else -1e9), m.uid)

    out = []
    for m in sorted(state.miners.values(), key=key):
        if m.uid == state.validator_uid and m.rounds == 0 and m.uploads == 0:
            continue
        mark = "★" if m.uid == state.leader else " "
        out.append(
            (
                f"{mark}{m.uid}",
                m.behaviour or "-",
                "-" if m.fragment is None else str(m.fragment),
                _num(m.score, "{:+.4f}"),
                _num(m.norm_score, "{:.3f}"),
                _pow(m.proof_of_work),
                _rating(m),
                f"{m.weight:.3f}",
                str(m.uploads),
                (m.reason or "")[:28],
            )
        )
    return out


def header_text(state: RunState, title: str = "Tessera") -> str:
    loss = _num(state.heldout_loss)
    first = state.loss_series[0][1] if state.loss_series else None
    delta = "" if first is None or state.heldout_loss is None else f" (Δ {state.heldout_loss - first:+.4f})"
    return (
        f"{title}  window {state.window if state.window is not None else '-'}"
        f"  block {state.block if state.block is not None else '-'}"
        f"  version {state.version if state.version is not None else '-'}"
        f"  held-out loss {loss}{delta}"
        f"  scored {state.windows_scored}  weights set {state.weights_set_ok}"
        + (f" (failed {state.weights_set_failed})" if state.weights_set_failed else "")
    )


def render(state: RunState, title: str = "Tessera") -> Group:
    """Rich renderable: header panel, held-out loss sparkline, miner table."""
    table = Table(expand=False, header_style="bold")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col not in ("behaviour", "reason", "pow") else "left")
    for row in rows(state):
        style = "bold green" if row[0].startswith("★") else None
        table.add_row(*row, style=style)
    spark = sparkline([v for _, v in state.loss_series])
    lines = Text(header_text(state, title))
    if spark:
        lines.append(f"\nheld-out loss  {spark}")
    if state.last_weights_error:
        lines.append(f"\nlast set_weights error: {state.last_weights_error}", style="red")
    return Group(Panel(lines, expand=False), table)


def render_plain(state: RunState, title: str = "Tessera") -> str:
    """Fixed-width text version for logs and CI."""
    body = [COLUMNS, *rows(state)]
    widths = [max(len(r[i]) for r in body) for i in range(len(COLUMNS))]
    lines = [header_text(state, title)]
    spark = sparkline([v for _, v in state.loss_series])
    if spark:
        lines.append(f"held-out loss  {spark}")
    for r in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def render_to_string(state: RunState, width: int = 140, title: str = "Tessera") -> str:
    """Render with rich into a string (tests, reports)."""
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=False)
    console.print(render(state, title))
    return console.export_text()


def interactive(stream: object = None) -> bool:
    """True when a Live display makes sense (a TTY and not CI)."""
    stream = stream or sys.stdout
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


class Scoreboard:
    """Tails an events directory and shows the standing until ``stop()`` says so."""

    def __init__(self, events_dir: str | os.PathLike[str], *, title: str = "Tessera") -> None:
        self.events_dir = Path(events_dir)
        self.tail = EventTail(self.events_dir)
        self.state = RunState()
        self.title = title

    def refresh(self) -> RunState:
        self.state.apply_all(self.tail.poll())
        return self.state

    def run(
        self,
        stop: Callable[[RunState], bool],
        *,
        poll_s: float = 1.0,
        plain_every_s: float = 10.0,
        live: bool | None = None,
        console: Console | None = None,
    ) -> RunState:
        """Block until ``stop(state)`` is true; returns the final state."""
        live = interactive() if live is None else live
        if live:
            with Live(render(self.refresh(), self.title), console=console, refresh_per_second=2, transient=False) as lv:
                while not stop(self.refresh()):
                    lv.update(render(self.state, self.title))
                    time.sleep(poll_s)
                lv.update(render(self.state, self.title))
            return self.state
        last_print = 0.0
        last_seen = -1
        while True:
            self.refresh()
            done = stop(self.state)
            now = time.monotonic()
            if done or (now - last_print >= plain_every_s and self.state.events_seen != last_seen):
                print(render_plain(self.state, self.title), flush=True)
                print(flush=True)
                last_print, last_seen = now, self.state.events_seen
            if done:
                return self.state
            time.sleep(poll_s)
