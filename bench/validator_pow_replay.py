"""Replay recorded proof-of-work tries (bench/validator.py --pow-out) under other rules, batch shapes and settings.

Why: one proof-of-work run costs ~50 min on the shared box; every try records
the per-page improvements on 16 assigned, 16 held-out and 8 control pages, so
any smaller shape (a prefix of each list, as page_batches takes it) and any
sequential setting (subnet/validator/powevidence.py) can be judged on the
very same bytes and pages without re-running. The t statistic is
scoring._t_stat on those per-page lists, exactly what score_contribution
computes for that shape. Accounts are kept per (kind, miner) in window order.

Each cell reads ``paid/tries (deferred)``: paid by the account alone, and in brackets with the one-window
deferred credit of powevidence.py (a held try is paid late when the same miner's next evaluated window
reaches the bar; at most one held window per release), which is what the network runs. Every recorded
miner is evaluated in every window (no sampling), so "next evaluated window" is the next window; a miner's
last recorded window cannot be released (nothing follows it), which counts it as unpaid.

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
from subnet.validator.powevidence import CreditStep, HeldCredit, pays, step_credit, update_evidence  # noqa: E402
from subnet.validator.scoring import ScoreConfig, _mean, _t_stat  # noqa: E402

SHAPES = {"A8 H16 R8 (old NETWORK_SCORE)": (8, 16, 8), "A16 H16 R8": (16, 16, 8), "A8 H16 R0": (8, 16, 0),
          "A4 H16 R0": (4, 16, 0), "A4 H16 R4": (4, 16, 4), "A8 H12 R0": (8, 12, 0), "A4 H12 R0": (4, 12, 0),
          "A8 H8 R4": (8, 8, 4), "A8 H8 R0 (NETWORK_SCORE)": (8, 8, 0), "A4 H8 R4": (4, 8, 4), "A4 H8 R0": (4, 8, 0)}
"""(assigned, held-out, control) pages: prefixes of the recorded per-page lists."""
SETTINGS = [(3, 2, 6), (2.5, 2, 6), (2, 2, 6), (2, 3, 8), (1.5, 2, 6), (1.5, 3, 6), (1, 2, 6), (1, 3, 6)]
"""(pow_drift, pow_bar, pow_cap) swept; pow_clip stays at its default."""


def _t(x: dict, a: int, h: int, r: int) -> float:
    own, ctrl = x["own_pages"][:a], x["held_pages"][:h] + x["rand_pages"][:r]
    return _t_stat(_mean(own) - _mean(ctrl), own, ctrl)


SUMMARY = [("A8 H16 R8 (old NETWORK_SCORE)", (1.5, 3, 6)), ("A8 H8 R0 (NETWORK_SCORE)", (1.5, 3, 6)),
           ("A8 H8 R0 (NETWORK_SCORE)", (1, 3, 6)), ("A8 H8 R0 (NETWORK_SCORE)", (1.5, 2, 6))]
"""(shape, setting) rows of the totals table over every file given."""


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


def replay(recs: list[dict], ts: dict[int, float], cfg: ScoreConfig) -> dict[str, tuple[int, int, int]]:
    """kind -> (paid by the account, paid with the deferred credit, tries), every miner's windows in order."""
    acc: dict[tuple[str, int], float] = {}
    credit: dict[tuple[str, int], HeldCredit | None] = {}
    late: set[int] = set()  # id() of records paid late
    held_rec: dict[tuple[str, int], dict] = {}
    paid_now: set[int] = set()
    for r in recs:
        i = r["id"]
        acc[i] = update_evidence(acc.get(i, 0.0), ts[id(r)], cfg)
        ok = pays(acc[i], cfg)
        paid_now |= {id(r)} if ok else set()
        held = None if ok else HeldCredit(uid=0, round=1, score=1.0)  # the replay has no scores: any held try
        kept, step = step_credit(credit.get(i), ok, held)
        if step is CreditStep.RELEASED:
            late.add(id(held_rec[i]))
        credit[i] = kept
        if kept is not None:
            held_rec[i] = r
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
             "| shape | drift / bar / cap | " + " | ".join(kinds) + " | t median honest / free-riders max |",
             "|---|---|" + "---|" * len(kinds) + "---|"]
    for shape, (a, h, rr) in SHAPES.items():
        ts = {id(r): _t(r[sweep], a, h, rr) for r in recs}
        hon = statistics.median(ts[id(r)] for r in recs if r["kind"] == "honest")
        free = max(ts[id(r)] for r in recs if not r["kind"].startswith("honest"))
        for drift, bar, cap in SETTINGS:
            cfg = ScoreConfig(pow_sequential=True, pow_drift=drift, pow_bar=bar, pow_cap=cap)
            paid = replay(recs, ts, cfg)
            lines.append(f"| {shape} | {drift:g} / {bar:g} / {cap:g} | " + " | ".join(_cell(paid[k]) for k in kinds)
                         + f" | {hon:.1f} / {free:.1f} |")
    return lines


def totals(paths: list[str]) -> list[str]:
    """The SUMMARY rows summed over every file: honest, one-version-stale honest, free-riders (all other kinds)."""
    lines = [f"## totals over {len(paths)} runs", "",
             "| shape | drift / bar / cap | honest | honest, 1 version stale | free-riders | honest misses |",
             "|---|---|---|---|---|---|"]
    loaded = [_load(p) for p in paths]
    for shape, (drift, bar, cap) in SUMMARY:
        a, h, rr = SHAPES[shape]
        cfg = ScoreConfig(pow_sequential=True, pow_drift=drift, pow_bar=bar, pow_cap=cap)
        sums = {"honest": [0, 0, 0], "stale": [0, 0, 0], "free": [0, 0, 0]}
        misses: list[str] = []
        for n, (recs, sweep, _) in enumerate(loaded):
            ts = {id(r): _t(r[sweep], a, h, rr) for r in recs}
            for k, v in replay(recs, ts, cfg).items():
                group = "honest" if k == "honest" else "stale" if k.startswith("honest") else "free"
                sums[group] = [x + y for x, y in zip(sums[group], v)]
            misses += _misses(recs, ts, cfg, n)
        lines.append(f"| {shape} | {drift:g} / {bar:g} / {cap:g} | "
                     + " | ".join(_cell(tuple(sums[g])) for g in ("honest", "stale", "free"))
                     + f" | {', '.join(misses) or 'none'} |")
    return lines


def _misses(recs: list[dict], ts: dict[int, float], cfg: ScoreConfig, run: int) -> list[str]:
    """Honest tries unpaid even with the deferred credit: run r, miner m, its k-th window (1 = first), t."""
    seq: dict[tuple[str, int], list[tuple[dict, bool]]] = defaultdict(list)
    acc: dict[tuple[str, int], float] = {}
    for r in recs:
        if r["kind"] != "honest":
            continue
        acc[r["id"]] = update_evidence(acc.get(r["id"], 0.0), ts[id(r)], cfg)
        seq[r["id"]].append((r, pays(acc[r["id"]], cfg)))
    out = []
    for i, tries in seq.items():
        for j, (r, ok) in enumerate(tries):
            if not ok and not (j + 1 < len(tries) and tries[j + 1][1]):
                out.append(f"run {run} miner {i[1]} window {j + 1} (t {ts[id(r)]:.1f})")
    return out


def joiners(paths: list[str], shape: str = "A8 H8 R0 (NETWORK_SCORE)", setting: tuple = (1.5, 3, 6),
            first: int = 3) -> list[str]:
    """A newcomer's cold start apart from the network's genesis: each miner replayed as if it joined at window k.

    For every k from ``first`` (past the genesis windows) to the second-last window, every miner's account starts
    empty at window k; its first window is paid by the account, or with the deferred credit when its second
    window reaches the bar (the same rule as ``replay``). Free-riders joining late are counted the same way.
    """
    a, h, rr = SHAPES[shape]
    drift, bar, cap = setting
    cfg = ScoreConfig(pow_sequential=True, pow_drift=drift, pow_bar=bar, pow_cap=cap)
    sums = {"honest": [0, 0, 0], "stale": [0, 0, 0], "free": [0, 0, 0]}
    for recs, sweep, windows in (_load(p) for p in paths):
        ts = {id(r): _t(r[sweep], a, h, rr) for r in recs}
        for k in range(first, windows - 1):
            acc: dict[tuple[str, int], float] = {}
            paid: dict[tuple[str, int], list[bool]] = defaultdict(list)
            for r in recs:
                if r["window"] < k or len(paid[r["id"]]) >= 2:
                    continue
                acc[r["id"]] = update_evidence(acc.get(r["id"], 0.0), ts[id(r)], cfg)
                paid[r["id"]].append(pays(acc[r["id"]], cfg))
            for i, p in paid.items():
                group = "honest" if i[0] == "honest" else "stale" if i[0].startswith("honest") else "free"
                sums[group][0] += p[0]
                sums[group][1] += p[0] or (len(p) > 1 and p[1])
                sums[group][2] += 1
    return [f"## a newcomer's first window: joined at window k = {first}..last-1 of each run, {shape}, "
            f"{drift:g} / {bar:g} / {cap:g}", "",
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["bench/results/validator_pow.json"]))
