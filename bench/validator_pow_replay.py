"""Replay recorded proof-of-work tries (bench/validator.py --pow-out) under other rules, batch shapes and settings.

Why: one proof-of-work run costs ~50 min on the shared box; every try records
the per-page improvements on 16 assigned, 16 held-out and 8 control pages, so
any smaller shape (a prefix of each list, as page_batches takes it) and any
sequential setting (subnet/validator/powevidence.py) can be judged on the
very same bytes and pages without re-running. The t statistic is
scoring._t_stat on those per-page lists, exactly what score_contribution
computes for that shape. Accounts are kept per (kind, miner) in window order.

Run: .venv/bin/python bench/validator_pow_replay.py bench/results/validator_pow.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from subnet.validator.powevidence import pays, update_evidence  # noqa: E402
from subnet.validator.scoring import ScoreConfig, _mean, _t_stat  # noqa: E402

SHAPES = {"A8 H16 R8 (NETWORK_SCORE)": (8, 16, 8), "A16 H16 R8": (16, 16, 8), "A8 H16 R0": (8, 16, 0),
          "A4 H16 R0": (4, 16, 0), "A4 H16 R4": (4, 16, 4), "A8 H12 R0": (8, 12, 0), "A4 H12 R0": (4, 12, 0),
          "A8 H8 R4": (8, 8, 4), "A8 H8 R0": (8, 8, 0), "A4 H8 R4": (4, 8, 4), "A4 H8 R0": (4, 8, 0)}
"""(assigned, held-out, control) pages: prefixes of the recorded per-page lists."""
SETTINGS = [(3, 2, 6), (2.5, 2, 6), (2, 2, 6), (2, 3, 8), (1.5, 2, 6), (1.5, 3, 6), (1, 2, 6), (1, 3, 6)]
"""(pow_drift, pow_bar, pow_cap) swept; pow_clip stays at its default."""


def _t(x: dict, a: int, h: int, r: int) -> float:
    own, ctrl = x["own_pages"][:a], x["held_pages"][:h] + x["rand_pages"][:r]
    return _t_stat(_mean(own) - _mean(ctrl), own, ctrl)


def main(path: str) -> int:
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
    kinds = list(dict.fromkeys(r["kind"] for r in recs))
    print(f"# replay of {path} ({raw['windows']} windows): paid tries per kind under the sequential rule")
    print()
    print("| shape | drift / bar / cap | " + " | ".join(kinds) + " | t median honest / free-riders max |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    for shape, (a, h, rr) in SHAPES.items():
        ts = {id(r): _t(r[sweep], a, h, rr) for r in recs}
        hon = statistics.median(ts[id(r)] for r in recs if r["kind"] == "honest")
        free = max(ts[id(r)] for r in recs if not r["kind"].startswith("honest"))
        for drift, bar, cap in SETTINGS:
            cfg = ScoreConfig(pow_sequential=True, pow_drift=drift, pow_bar=bar, pow_cap=cap)
            acc: dict[tuple[str, int], float] = {}
            paid: dict[str, int] = defaultdict(int)
            n: dict[str, int] = defaultdict(int)
            for r in recs:
                acc[r["id"]] = update_evidence(acc.get(r["id"], 0.0), ts[id(r)], cfg)
                paid[r["kind"]] += pays(acc[r["id"]], cfg)
                n[r["kind"]] += 1
            print(f"| {shape} | {drift:g} / {bar:g} / {cap:g} | " + " | ".join(f"{paid[k]}/{n[k]}" for k in kinds)
                  + f" | {hon:.1f} / {free:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/validator_pow.json"))
