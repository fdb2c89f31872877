"""Replay recorded proof-of-work tries (bench/validator.py --pow-out) under other rules, batch shapes and settings.

Why: one proof-of-work run costs ~50 min on the shared box; every try records
the per-page improvements on 16 assigned, 16 held-out and 8 control pages, so
any smaller shape (a prefix of each list, as page_batches takes it) and any
sequential setting (subnet/validator/powevidence.py) can be judged on the
very same bytes and pages without re-running. The t statistic is
scoring._t_stat on those per-page lists, exactly what score_contribution
computes for that shape. Accounts are kept per (kind, miner) in window order.

Each cell reads ``paid/tries (deferred)``: paid by the account alone, and in brackets with the deferred
credit of powevidence.py (a held try is paid late when a later evaluated window of the same miner reaches
the bar while the try is still among its newest ``pow_credits`` held windows; every kept one is paid by
that release), which is what the network runs. Every recorded miner is evaluated in every window (no
sampling), so "evaluated window" is every window; held tries after a miner's last paid window cannot be
released (nothing pays them), which counts them as unpaid.

Run: .venv/bin/python bench/validator_pow_replay.py bench/results/validator_pow.json \
         bench/results/validator_pow_seed1.json
(several files: one table each, then the totals over all of them for the shapes in ``SUMMARY``).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from subnet.validator.powevidence import (  # noqa: E402
    Credits,
    CreditStep,
    HeldCredit,
    pays,
    step_credit,
    update_evidence,
)
from subnet.validator.scoring import ScoreConfig, _mean, _t_stat  # noqa: E402

SHAPES = {"A8 H16 R8 (old NETWORK_SCORE)": (8, 16, 8), "A16 H16 R8": (16, 16, 8), "A8 H16 R0": (8, 16, 0),
          "A4 H16 R0": (4, 16, 0), "A4 H16 R4": (4, 16, 4), "A8 H12 R0": (8, 12, 0), "A4 H12 R0": (4, 12, 0),
          "A8 H8 R4": (8, 8, 4), "A8 H8 R0 (NETWORK_SCORE)": (8, 8, 0), "A4 H8 R4": (4, 8, 4), "A4 H8 R0": (4, 8, 0)}
"""(assigned, held-out, control) pages: prefixes of the recorded per-page lists."""
SETTINGS = [(3, 2, 6, 1), (2.5, 2, 6, 1), (2, 2, 6, 1), (2, 3, 8, 1), (1.5, 2, 6, 1), (1.5, 3, 6, 1), (1, 2, 6, 1),
            (1, 3, 6, 1), (1.5, 3, 4.5, 2)]
"""(pow_drift, pow_bar, pow_cap, pow_credits) swept; pow_clip stays at its default. The last is the default,
(1.5, 3, 6, 1) the previous one."""
DEFAULT = (1.5, 3, 4.5, 2)
PREVIOUS = (1.5, 3, 6, 1)


def _t(x: dict, a: int, h: int, r: int) -> float:
    own, ctrl = x["own_pages"][:a], x["held_pages"][:h] + x["rand_pages"][:r]
    return _t_stat(_mean(own) - _mean(ctrl), own, ctrl)


SUMMARY = [("A8 H16 R8 (old NETWORK_SCORE)", (1.5, 3, 6, 1), ""),
           ("A8 H8 R0 (NETWORK_SCORE)", DEFAULT, "default"),
           ("A8 H8 R0 (NETWORK_SCORE)", PREVIOUS, "previous default"),
           ("A8 H8 R0 (NETWORK_SCORE)", (1.5, 3, 4.5, 3), ""),
           ("A8 H8 R0 (NETWORK_SCORE)", (1, 3, 6, 1), ""), ("A8 H8 R0 (NETWORK_SCORE)", (1.5, 2, 6, 1), "")]
"""(shape, (drift, bar, cap, credits), label) rows of the totals table over every file given."""


def _cfg(setting: tuple) -> ScoreConfig:
    drift, bar, cap, credits = setting
    return ScoreConfig(pow_sequential=True, pow_drift=drift, pow_bar=bar, pow_cap=cap, pow_credits=credits)


def _label(setting: tuple) -> str:
    return " / ".join(f"{x:g}" for x in setting)


def _load(path: str) -> tuple[list[dict], str, int]:
    raw = json.loads(Path(path).read_text())
    recs = raw["records"]
    sweep = [k for k in recs[0] if k not in ("window", "kind", "miner")][-1]  # the 16-assigned-page sweep
    occ: dict[str, int] = defaultdict(int)
    last = None
    for r in recs:  # identity = (kind, its order within the window), as bench/validator.py appends them
        if r["window"] != last:
            occ.clear()
            last = r["window"]
        r["id"] = (r["kind"], r.get("miner", occ[r["kind"]]))
        occ[r["kind"]] += 1
    return recs, sweep, raw["windows"]


def _paid(recs: list[dict], ts: dict[int, float], cfg: ScoreConfig) -> tuple[set[int], set[int]]:
    """id() of the records paid by the account, and of those paid late by the deferred credit (window order)."""
    acc: dict[tuple[str, int], float] = {}
    credits: dict[tuple[str, int], Credits] = {}
    held_rec: dict[tuple[tuple[str, int], int], dict] = {}  # (miner, its held count) -> record
    late: set[int] = set()
    paid_now: set[int] = set()
    for n, r in enumerate(recs):
        i = r["id"]
        acc[i] = update_evidence(acc.get(i, 0.0), ts[id(r)], cfg)
        ok = pays(acc[i], cfg)
        paid_now |= {id(r)} if ok else set()
        held = None if ok else HeldCredit(uid=0, round=n + 1, score=1.0)  # the replay has no scores: any held try
        old = credits.get(i, ())
        kept, step = step_credit(old, ok, held, cfg.pow_credits)
        if step is CreditStep.RELEASED:
            late |= {id(held_rec[(i, c.round)]) for c in old}
        if held is not None:
            held_rec[(i, held.round)] = r
        credits[i] = kept
    return paid_now, late


def replay(recs: list[dict], ts: dict[int, float], cfg: ScoreConfig) -> dict[str, tuple[int, int, int]]:
    """kind -> (paid by the account, paid with the deferred credit, tries), every miner's windows in order."""
    paid_now, late = _paid(recs, ts, cfg)
    out: dict[str, tuple[int, int, int]] = {}
    for k in dict.fromkeys(r["kind"] for r in recs):
        mine = [r for r in recs if r["kind"] == k]
        now = sum(id(r) in paid_now for r in mine)
        out[k] = (now, now + sum(id(r) in late for r in mine), len(mine))
    return out


def _cell(p: tuple[int, int, int]) -> str:
    return f"{p[0]}/{p[2]} ({p[1]})"


def table(path: str) -> list[str]:
    recs, sweep, windows = _load(path)
    kinds = list(dict.fromkeys(r["kind"] for r in recs))
    lines = [f"## {path} ({windows} windows): paid tries per kind, by the account (with the deferred credit)", "",
             "| shape | drift / bar / cap / credits | " + " | ".join(kinds) + " | t median honest / free-riders max |",
             "|---|---|" + "---|" * len(kinds) + "---|"]
    for shape, (a, h, rr) in SHAPES.items():
        ts = {id(r): _t(r[sweep], a, h, rr) for r in recs}
        hon = statistics.median(ts[id(r)] for r in recs if r["kind"] == "honest")
        free = max(ts[id(r)] for r in recs if not r["kind"].startswith("honest"))
        for setting in SETTINGS:
            paid = replay(recs, ts, _cfg(setting))
            lines.append(f"| {shape} | {_label(setting)} | " + " | ".join(_cell(paid[k]) for k in kinds)
                         + f" | {hon:.1f} / {free:.1f} |")
    return lines


def totals(paths: list[str]) -> list[str]:
    """The SUMMARY rows summed over every file: honest, one-version-stale honest, free-riders (all other kinds)."""
    lines = [f"## totals over {len(paths)} runs", "",
             "| shape | drift / bar / cap / credits | honest | honest, 1 version stale | free-riders | honest misses |",
             "|---|---|---|---|---|---|"]
    loaded = [_load(p) for p in paths]
    for shape, setting, label in SUMMARY:
        a, h, rr = SHAPES[shape]
        cfg = _cfg(setting)
        sums = {"honest": [0, 0, 0], "stale": [0, 0, 0], "free": [0, 0, 0]}
        misses: list[str] = []
        for n, (recs, sweep, _) in enumerate(loaded):
            ts = {id(r): _t(r[sweep], a, h, rr) for r in recs}
            for k, v in replay(recs, ts, cfg).items():
                group = "honest" if k == "honest" else "stale" if k.startswith("honest") else "free"
                sums[group] = [x + y for x, y in zip(sums[group], v)]
            misses += _misses(recs, ts, cfg, n)
        lines.append(f"| {shape} | {_label(setting)}{f' ({label})' if label else ''} | "
                     + " | ".join(_cell(tuple(sums[g])) for g in ("honest", "stale", "free"))
                     + f" | {', '.join(misses) or 'none'} |")
    return lines


def _misses(recs: list[dict], ts: dict[int, float], cfg: ScoreConfig, run: int) -> list[str]:
    """Honest tries unpaid even with the deferred credit: run r, miner m, its k-th window (1 = first), t."""
    honest = [r for r in recs if r["kind"] == "honest"]
    paid_now, late = _paid(honest, ts, cfg)
    count: dict[tuple[str, int], int] = defaultdict(int)
    out = []
    for r in honest:
        count[r["id"]] += 1
        if id(r) not in paid_now and id(r) not in late:
            out.append(f"run {run} miner {r['id'][1]} window {count[r['id']]} (t {ts[id(r)]:.1f})")
    return out


def joiners(paths: list[str], shape: str = "A8 H8 R0 (NETWORK_SCORE)", setting: tuple = DEFAULT,
            first: int = 3) -> list[str]:
    """A newcomer's cold start apart from the network's genesis: each miner replayed as if it joined at window k.

    For every k from ``first`` (past the genesis windows) to the second-last window, every miner's account starts
    empty at window k and its windows from k on are replayed (the same rule as ``replay``); its first window is
    paid by the account, or with the deferred credit when a later window releases it. Free-riders joining late
    are counted the same way.
    """
    a, h, rr = SHAPES[shape]
    cfg = _cfg(setting)
    sums = {"honest": [0, 0, 0], "stale": [0, 0, 0], "free": [0, 0, 0]}
    for recs, sweep, windows in (_load(p) for p in paths):
        ts = {id(r): _t(r[sweep], a, h, rr) for r in recs}
        for k in range(first, windows - 1):
            joined = [r for r in recs if r["window"] >= k]
            paid_now, late = _paid(joined, ts, cfg)
            seen: set[tuple[str, int]] = set()
            for r in joined:
                if r["id"] in seen:
                    continue
                seen.add(r["id"])
                group = "honest" if r["kind"] == "honest" else "stale" if r["kind"].startswith("honest") else "free"
                sums[group][0] += id(r) in paid_now
                sums[group][1] += id(r) in paid_now or id(r) in late
                sums[group][2] += 1
    return [f"## a newcomer's first window: joined at window k = {first}..last-1 of each run, {shape}, "
            f"{_label(setting)} (drift / bar / cap / credits)", "",
            "| | honest | honest, 1 version stale | free-riders |", "|---|---|---|---|",
            "| first window paid, by the account (with the deferred credit) | "
            + " | ".join(_cell(tuple(sums[g])) for g in ("honest", "stale", "free")) + " |"]


def main(paths: list[str]) -> int:
    print("# proof-of-work replay (bench/validator_pow_replay.py): the sequential rule with and without the deferred "
          "credit")
    print()
    for path in paths:
        print("\n".join(table(path)))
        print()
    print("\n".join(totals(paths)))
    print()
    print("\n".join(joiners(paths)))
    print()
    print("\n".join(joiners(paths, setting=PREVIOUS)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["bench/results/validator_pow.json"]))
