"""Validator cost and score fidelity, measured side by side on one model.

Prints:
  1. cost of scoring one contribution (decode + apply + eval batches + revert)
     relative to one training step (fwd + bwd + AdamW) on the same model and
     batch, medians over interleaved repeats; contributions scored per minute;
  2. per-window validator cost for 4..64 miners (baseline shared, scoring,
     pairwise copy detection);
  3. score fidelity: Spearman correlation between the validator's few-batch
     score and the improvement on a large disjoint held-out set, over a
     population of simulated miners (different pages / H / lr) plus noise,
     zero and lazy ones.

Run: .venv/bin/python bench/validator.py [--preset tiny] [--repeats 15] [--big-batches 64]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from subnet.codec.sparseloco import CodecConfig, Encoder, EncodedUpdate, decode
from subnet.data.config import DataConfig
from subnet.data.pages import load_pages
from subnet.model.fragments import fragment_shapes, fragment_state, partition, trainable_parameters
from subnet.model.presets import build_model, get_preset
from subnet.validator.copydetect import Submission, find_copies
from subnet.validator.scoring import ScoreConfig, applied, compute_baseline, mean_loss, page_batches, score_contribution


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: torch.Tensor) -> None:
    logits = model(input_ids=batch[:, :-1]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()


def _spearman(x: list[float], y: list[float]) -> float:
    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / den if den else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=8, help="pages per batch (train step and each eval batch)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--pretrain", type=int, default=40, help="base-model AdamW steps before the window")
    ap.add_argument("--big-batches", type=int, default=64, help="batches in the large held-out reference set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--assigned-batches", type=int, default=1)
    ap.add_argument("--heldout-batches", type=int, default=1)
    ap.add_argument("--random-batches", type=int, default=1, help="0 = held-out-only proof-of-work control")
    ap.add_argument("--pow-batch", type=int, default=4, help="pages per assigned/random batch")
    ap.add_argument("--skip-scaling", action="store_true", help="skip the 4..64 miner table")
    ap.add_argument("--verbose", action="store_true", help="print every population member")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    B = args.batch

    pages = load_pages(DataConfig(vocab_size=get_preset(args.preset).vocab_size))
    model = build_model(args.preset, seed=args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for s in range(args.pretrain):
        _step(model, opt, pages.batch(range(s * B, s * B + B)))
    base = {k: v.clone() for k, v in model.state_dict().items()}
    frag = partition(model, 1)[0]
    params = trainable_parameters(model, frag)
    shapes = fragment_shapes(model, frag)
    codec = CodecConfig()
    cfg = ScoreConfig(eval_lr=1.0, batch_size=B, pow_batch_size=args.pow_batch, n_assigned_batches=args.assigned_batches,
                      n_heldout_batches=args.heldout_batches, n_random_batches=args.random_batches)
    n_params = sum(p.numel() for p in params.values())

    def train(pg: list[int], steps: int, lr: float) -> dict[str, torch.Tensor]:
        model.load_state_dict(base)
        start = fragment_state(model, frag)
        o = torch.optim.AdamW(model.parameters(), lr=lr)
        for h in range(steps):
            _step(model, o, pages.batch([pg[(h * B + i) % len(pg)] for i in range(B)]))
        end = fragment_state(model, frag)
        model.load_state_dict(base)
        return {k: start[k] - end[k] for k in start}

    n_val_held = B * cfg.n_heldout_batches
    held = page_batches(pages, range(n_val_held), "heldout", B, cfg.n_heldout_batches)
    P = cfg.pow_batch_size
    rand = (page_batches(pages, range(12000, 12000 + P * cfg.n_random_batches), "train", P, cfg.n_random_batches)
            if cfg.n_random_batches else [])
    assigned_pages = lambda m: list(range(1000 + 160 * m, 1000 + 160 * m + 64))  # noqa: E731

    # 1. cost of one contribution vs one training step (interleaved, medians) -------------------
    enc = Encoder(shapes, codec).encode(train(assigned_pages(0), 4, 1e-3))
    assigned = page_batches(pages, assigned_pages(0), "train", P, cfg.n_assigned_batches)
    t_base0 = time.perf_counter()
    baseline = compute_baseline(model, held, rand)
    t_baseline = time.perf_counter() - t_base0
    train_model = build_model(args.preset, seed=args.seed)
    train_model.load_state_dict(base)
    train_opt = torch.optim.AdamW(train_model.parameters(), lr=1e-4)
    batch = pages.batch(range(B))
    t_train, t_score, t_apply = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        _step(train_model, train_opt, batch)
        t_train.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        score_contribution(model, params, enc, cfg, assigned, held, rand, baseline)
        t_score.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with applied(params, enc, cfg.eval_lr):
            pass
        t_apply.append(time.perf_counter() - t0)
    med_train, med_score, med_apply = (statistics.median(t) for t in (t_train, t_score, t_apply))
    print(f"# validator bench: preset={args.preset} ({n_params / 1e6:.2f}M params, F=1), batch={B}x{pages.page_len} "
          f"tokens, eval batches assigned/heldout/random = {cfg.n_assigned_batches}x{P}/"
          f"{cfg.n_heldout_batches}x{B}/{cfg.n_random_batches}x{P} pages, codec chunk={codec.chunk} topk={codec.topk} bits={codec.value_bits}, "
          f"threads=1, repeats={args.repeats}")
    print()
    print("| quantity | median |")
    print("|---|---|")
    print(f"| training step (fwd+bwd+AdamW) | {med_train * 1e3:.1f} ms |")
    print(f"| score one contribution (decode+apply+eval+revert; pages forwarded: "
          f"{(2 * cfg.n_assigned_batches + cfg.n_random_batches) * P + cfg.n_heldout_batches * B}) | {med_score * 1e3:.1f} ms |")
    print(f"| of which decode+apply+revert | {med_apply * 1e3:.1f} ms |")
    print(f"| **score / train step** | **{med_score / med_train:.2f}** (target <= 1) |")
    print(f"| contributions scored per minute | {60 / med_score:.0f} |")
    print(f"| window baseline (once per window) | {t_baseline * 1e3:.1f} ms |")
    print()

    # 2. per-window cost vs number of miners -----------------------------------------------------
    pool: list[EncodedUpdate] = [enc] + [Encoder(shapes, codec).encode(train(assigned_pages(m), 2, 1e-3))
                                         for m in range(1, 4)]
    print("| miners | baseline | scoring | copy detection | window total | per miner |")
    print("|---|---|---|---|---|---|")
    for n in () if args.skip_scaling else (4, 16, 64):
        updates = []
        for i in range(n):  # distinct payloads: re-encode pool members with a little noise
            d = decode(pool[i % len(pool)])
            g = torch.Generator().manual_seed(i)
            updates.append(Encoder(shapes, codec).encode(
                {k: v + 0.5 * v.abs().mean() * torch.randn(v.shape, generator=g) for k, v in d.items()}))
        t0 = time.perf_counter()
        bl = compute_baseline(model, held, rand)
        t1 = time.perf_counter()
        for i, u in enumerate(updates):
            a = page_batches(pages, assigned_pages(i % 60), "train", P, cfg.n_assigned_batches)
            score_contribution(model, params, u, cfg, a, held, rand, bl)
        t2 = time.perf_counter()
        subs = [Submission(uid=i, hotkey=str(i), fragment=0, first_seen=float(i), commit_block=0, update=u)
                for i, u in enumerate(updates)]
        find_copies(subs)
        t3 = time.perf_counter()
        print(f"| {n} | {(t1 - t0):.2f} s | {(t2 - t1):.2f} s | {(t3 - t2):.2f} s | {(t3 - t0):.2f} s | "
              f"{(t3 - t0) / n * 1e3:.0f} ms |")
    print()

    # 3. score fidelity --------------------------------------------------------------------------
    big = page_batches(pages, range(n_val_held, n_val_held + args.big_batches * B), "heldout", B, args.big_batches)
    big_before = mean_loss(model, big)
    population: list[tuple[str, object, int]] = []
    for m in range(16):
        steps, lr = rng.choice([2, 4, 8]), rng.choice([3e-4, 1e-3, 3e-3])
        population.append((f"honest H={steps} lr={lr:g}", Encoder(shapes, codec).encode(
            train(assigned_pages(m), steps, lr)), m))
    dense_ref = decode(pool[0])
    for j in range(4):
        g = torch.Generator().manual_seed(100 + j)
        noise = {k: torch.randn(v.shape, generator=g) * (v != 0) for k, v in dense_ref.items()}
        noise = {k: n * (dense_ref[k].norm() / n.norm().clamp_min(1e-12)) for k, n in noise.items()}
        population.append(("noise", noise, 20 + j))
    for j in range(2):
        population.append(("zero", {k: torch.zeros(s) for k, s in shapes.items()}, 30 + j))
    for j in range(2):  # lazy: trained on pages it was not assigned
        population.append(("lazy", Encoder(shapes, codec).encode(train(list(range(9000 + 64 * j, 9064 + 64 * j)), 4,
                                                                        1e-3)), 40 + j))
    scores, raw, truth = [], [], []
    for kind, upd, m in population:
        a = page_batches(pages, assigned_pages(m), "train", P, cfg.n_assigned_batches)
        s = score_contribution(model, params, upd, cfg, a, held, rand, baseline)
        with applied(params, upd, cfg.eval_lr):  # type: ignore[arg-type]
            after = mean_loss(model, big)
        scores.append(s.score)
        raw.append(s.heldout_improvement if s.reason != "empty update" else 0.0)
        truth.append((big_before - after) / big_before)
        if args.verbose:
            print(f"  {kind:28s} score={s.score:+.5f} raw={raw[-1]:+.5f} ref={truth[-1]:+.5f} "
                  f"own={s.assigned_improvement:+.5f} ctrl={s.control_improvement:+.5f} {s.reason}")
    honest = [i for i, p in enumerate(population) if p[0].startswith("honest")]
    print(f"| fidelity (n={len(population)}: 16 honest, 4 noise, 2 zero, 2 lazy; reference = "
          f"{args.big_batches} held-out batches disjoint from the validator's) | Spearman |")
    print("|---|---|")
    print(f"| validator score ({cfg.n_heldout_batches} held-out batch(es), PoW-gated) vs reference | {_spearman(scores, truth):.3f} |")
    print(f"| raw few-batch held-out improvement vs reference | {_spearman(raw, truth):.3f} |")
    print(f"| honest only: few-batch improvement vs reference | "
          f"{_spearman([raw[i] for i in honest], [truth[i] for i in honest]):.3f} |")
    pow_fail = sum(1 for i in honest if scores[i] == 0.0 and raw[i] > 0)
    print(f"| honest miners failing proof of work | {pow_fail}/{len(honest)} |")
    lazy_pass = sum(1 for i, p in enumerate(population) if p[0] == "lazy" and scores[i] > 0)
    print(f"| lazy miners passing proof of work | {lazy_pass}/2 |")
    print()
    print("command: " + " ".join([".venv/bin/python", "bench/validator.py", *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
