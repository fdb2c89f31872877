"""Re-pair recorded convergence sweep rows with another centralized twin (no training: summarize only).

Why: until `convergence.own_twin`, a sweep row with another H, round count or
fragment count was compared with the headline's centralized curve, which
trains on other pages (assignments are per window and per fragment). This
reads such a row's recorded network curve and a `--central-cache` file of its
own twin (`convergence.central_cached` for the row's NetConfig) and writes the
row's figures against that twin, with both curves, so the comparison can be
checked without re-running the network arm.

Run: .venv/bin/python bench/convergence_retwin.py ROW.json TWIN.json --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from convergence import atomic_write, summarize  # noqa: E402

FIGURES = ("loss_network", "loss_central", "loss_ratio", "token_equivalence", "upload_reduction_vs_ddp_fp32")


def retwin(results: dict, twin: dict) -> list[dict]:
    """Every sweep row of `results` summarised against `twin` (the headline-twin figures kept beside)."""
    cfg = results["config"]
    out = []
    for row in results.get("sweep", []):
        summ = summarize(row["network"], twin, cfg["n_params"], cfg["steps"])
        out.append({"seed": row["seed"], "label": row["label"], "net": row["net"], "network": row["network"],
                    "central": twin, "summary": summ,
                    "against_headline_twin": {k: row["summary"][k] for k in FIGURES if k in row.get("summary", {})}})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", type=Path, help="a bench/convergence.py results file with sweep rows")
    ap.add_argument("twin", type=Path, help="a --central-cache file: the rows' own centralized twin")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    results, twin = json.loads(a.rows.read_text()), json.loads(a.twin.read_text())
    if int(twin.get("steps", -1)) != int(results["config"]["steps"]):
        raise SystemExit(f"the twin has {twin.get('steps')} steps, the rows {results['config']['steps']}")
    rows = retwin(results, twin)
    command = "bench/convergence_retwin.py " + " ".join(sys.argv[1:] if argv is None else argv)
    atomic_write(a.out, json.dumps({"command": command, "rows_from": str(a.rows), "twin_from": str(a.twin),
                                    "config": results["config"], "sweep": rows}, indent=1, default=str).encode())
    for r in rows:
        s, h = r["summary"], r["against_headline_twin"]
        print(f"seed {r['seed']} {r['label']}: ratio {s['loss_ratio']:.4f} token-equiv {s['token_equivalence']:.3f} "
              f"against its own twin ({s['loss_central']:.4f}); against the headline's: ratio "
              f"{h.get('loss_ratio', float('nan')):.4f} ({h.get('loss_central', float('nan')):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
