"""The run's loss curve and per-miner scores as one PNG (matplotlib, Agg).

Why one figure: the two questions a reader of a demo report asks are "did the
shared model learn?" (top: global held-out loss per window, before and after
each published manifest) and "did the competition tell honest miners from
lazy and copying ones?" (bottom: each uid's score per window, labelled with
its behaviour). Agg is forced so this works headless.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or over ssh
import matplotlib.pyplot as plt  # noqa: E402

from subnet.atomic import write_atomic  # noqa: E402
from subnet.telemetry.state import RunState  # noqa: E402

BEHAVIOUR_STYLE = {"honest": "-", "noise": ":", "copier": "--"}


def plot_loss_curve(state: RunState, path: str | os.PathLike[str], *, title: str = "Tessera run") -> Path:
    """Write ``loss_curve.png`` and return its path (an empty run still gets a figure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_loss, ax_score) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True, constrained_layout=True)
    try:
        if state.loss_series:
            w, v = zip(*sorted(state.loss_series))
            ax_loss.plot(w, v, "o-", color="tab:blue", label="global model, before window's update")
        if state.loss_after_series:
            w, v = zip(*sorted(state.loss_after_series))
            ax_loss.plot(w, v, "s--", color="tab:green", alpha=0.8, label="after manifest applied")
        if not state.loss_series and not state.loss_after_series:
            ax_loss.text(0.5, 0.5, "no window scored yet", ha="center", va="center", transform=ax_loss.transAxes)
        else:
            ax_loss.legend(loc="upper right", fontsize=8)
        ax_loss.set_ylabel("held-out loss (nats/token)")
        ax_loss.set_title(title)
        ax_loss.grid(alpha=0.3)

        plotted = False
        for uid in sorted(state.miners):
            m = state.miners[uid]
            if not m.scores:
                continue
            w, s = zip(*sorted(m.scores))
            label = f"uid {uid} ({m.behaviour or '?'})"
            ax_score.plot(w, s, BEHAVIOUR_STYLE.get(m.behaviour or "", "-"), marker="o", markersize=4, label=label)
            plotted = True
        ax_score.axhline(0.0, color="grey", lw=0.8)
        ax_score.set_xlabel("window")
        ax_score.set_ylabel("score (held-out improvement)")
        ax_score.grid(alpha=0.3)
        if plotted:
            ax_score.legend(loc="best", fontsize=8, ncol=2)
        else:
            ax_score.text(0.5, 0.5, "no scores yet", ha="center", va="center", transform=ax_score.transAxes)
        ax_score.xaxis.get_major_locator().set_params(integer=True)
        write_atomic(path, lambda fh: fig.savefig(fh, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path
