"""Sybil economics: one operator's compute split across k = 1, 2, 4 hotkeys, emission share of each split.

In-process, real parts: the tiny model with the default fragments, miners
that train the way subnet/miner does (AdamW on their assigned fragment and
pages, error feedback, SparseLoCo codec), the validator's real scoring
(subnet/validator/scoring.py with NETWORK_SCORE), the noise floor, per-fragment
cohort normalisation, OpenSkill rounds and the weight curve
(subnet/validator/competition.py). No chain: emission is read as the weight
the operator's hotkeys hold (Yuma passes a lone validator's weights through).

The world is the same for every k: the same honest miners (H inner steps
each) train on the same base model, which advances every window by the
honest miners' mean update, so only the operator's split differs. The
operator has the compute of one honest miner (H inner steps per window) and
spends it as k hotkeys of H/k steps, each on its own assignment.

Prints, per k and per weight curve: the operator's mean weight over the
scored windows (after the first), its per-hotkey mean score, and the ratio to
k = 1 (the rule: <= 1).

Run: .venv/bin/python bench/sybil.py [--windows 6] [--honest 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from validator import Sim, Window  # noqa: E402  (bench/validator.py)

from subnet.codec.sparseloco import Encoder, decode  # noqa: E402
from subnet.node.config import NETWORK_SCORE, ValidatorOptions  # noqa: E402
from subnet.validator.cohorts import normalise_cohorts  # noqa: E402
from subnet.validator.competition import CompetitionConfig, CompetitionState, compute_weights, play_round  # noqa: E402

PAGES = 16


def _split(steps: int, k: int) -> list[int]:
    """H steps as k near-equal parts (10 / 4 -> 3, 3, 2, 2)."""
    return [steps // k + (1 if i < steps % k else 0) for i in range(k)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--honest", type=int, default=3, help="honest miners (uids 0..n-1)")
    ap.add_argument("--ks", default="1,2,4")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    ks = [int(k) for k in args.ks.split(",")]
    rng = random.Random(args.seed)
    sim = Sim("tiny", 2, 40, args.seed)
    n_frag = len(sim.fragments)
    opts = ValidatorOptions()
    default = CompetitionConfig()
    curves = {f"{default.curve} p={default.power:g} (default)": default,  # what the neurons run
              "power p=2": CompetitionConfig(curve="power", power=2.0),
              "geometric 0.5": CompetitionConfig(curve="geometric", decay=0.5)}
    cfg = NETWORK_SCORE
    H, lr = sim.tc.inner_steps, sim.tc.lr
    honest_uids = list(range(args.honest))
    sybil_uids = {k: [100 + i for i in range(k)] for k in ks}
    enc = {(u, f): Encoder(sim.shapes[f], sim.codec) for u in honest_uids for f in range(n_frag)}  # EF per fragment
    sybil_enc = {(k, u, f): Encoder(sim.shapes[f], sim.codec) for k in ks for u in sybil_uids[k] for f in range(n_frag)}
    floors = {"floor": opts.min_score, "no floor": 0.0}  # the validator's noise floor, and without it (a sweep)
    states = {(k, c, fl): CompetitionState() for k in ks for c in curves for fl in floors}
    weight_hist: dict[tuple[int, str, str], list[float]] = {key: [] for key in states}
    score_hist: dict[int, list[float]] = {k: [] for k in ks}
    honest_scores: list[float] = []
    for w in range(args.windows):
        n_pages = PAGES * (args.honest + sum(ks))
        used = rng.sample(range(sim.pages.n_train), n_pages)
        chunks = iter(used[i:i + PAGES] for i in range(0, n_pages, PAGES))
        frag_of = {}
        entries = []  # (uid, fragment, update, pages)
        for u in honest_uids:
            f = (u + w) % n_frag  # the draw moves miners between fragments
            frag_of[u] = f
            pages = next(chunks)
            entries.append((u, f, enc[(u, f)].encode(sim.train(f, pages, H, lr)), pages))
        win = Window(sim, rng, {"reference": cfg}, set(used))
        raw_honest = {}
        for u, f, upd, pages in entries:
            r = win.score("reference", f, upd, pages)
            raw_honest[u] = r.score
        honest_scores += [s for s in raw_honest.values()]
        for k in ks:
            raw = dict(raw_honest)
            frags = dict(frag_of)
            for u, steps in zip(sybil_uids[k], _split(H, k)):
                f = (u + w) % n_frag
                frags[u] = f
                pages = next(chunks)
                upd = sybil_enc[(k, u, f)].encode(sim.train(f, pages, steps, lr))
                raw[u] = win.score("reference", f, upd, pages).score
            score_hist[k] += [raw[u] for u in sybil_uids[k]]
            uids = honest_uids + sybil_uids[k]
            for fl, floor in floors.items():
                floored = {u: (0.0 if s is not None and 0 < s < floor else s) for u, s in raw.items()}
                norm = normalise_cohorts(floored, frags, opts.cohort_method)
                for cname, ccfg in curves.items():
                    st = play_round(states[(k, cname, fl)], norm, uids, ccfg)
                    states[(k, cname, fl)] = st
                    wts = compute_weights(st, uids, ccfg)
                    if w >= 1:
                        weight_hist[(k, cname, fl)].append(sum(wts[u] for u in sybil_uids[k]))
        sim.advance([(f, decode(upd, sim.shapes[f])) for _, f, upd, _ in entries])
        print(f"window {w} done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr, flush=True)
    print()
    print(f"# sybil bench: {args.honest} honest miners (H={H}) + one operator with H={H} inner steps per window "
          f"split over k hotkeys; {args.windows} windows (weights averaged over windows 1..{args.windows - 1}); "
          f"NETWORK_SCORE, noise floor {opts.min_score:g}, cohorts {opts.cohort_method}")
    print()
    print("| noise floor | curve | k | steps per hotkey | operator's mean weight | ratio to k=1 | "
          "mean raw score per hotkey |")
    print("|---|---|---|---|---|---|---|")
    for fl in floors:
        for cname in curves:
            base = statistics.fmean(weight_hist[(ks[0], cname, fl)])
            for k in ks:
                m = statistics.fmean(weight_hist[(k, cname, fl)])
                print(f"| {fl} | {cname} | {k} | {'/'.join(map(str, _split(H, k)))} | {m:.3f} | "
                      f"{(m / base) if base else float('nan'):.2f} | {statistics.fmean(score_hist[k]):.5f} |")
    print(f"| | (honest miners, raw) | | {H} | | | {statistics.fmean(honest_scores):.5f} |")
    alpha = {k: statistics.fmean(score_hist[ks[0]]) / statistics.fmean(score_hist[k]) for k in ks[1:]}
    import math
    print("score elasticity alpha = log(s_1 / s_k) / log k: " + ", ".join(
        f"k={k}: {math.log(v) / math.log(k):.2f}" if v > 0 else f"k={k}: n/a" for k, v in alpha.items()))
    print()
    print(f"took {time.perf_counter() - t_start:.0f} s")
    print("command: " + " ".join([".venv/bin/python", "bench/sybil.py", *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
