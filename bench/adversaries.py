"""Adversarial miners on a live network: weight earned and damage done, with and without each attack.

For each adversary group, the same network (devnet + validator + honest
miners as processes, the fast flags of validator_tests/harness/network.py,
same seeds) runs twice: honest miners alone, then honest miners plus the
adversaries. After each run the validator's global model
(state/global_model.safetensors) is evaluated on fixed held-out pages (the
first 64, not the scoring sample), and the adversaries' weights are read from
the validator's last `window_scored` event and from the on-chain incentive
after an epoch. Prints one row per adversary:

    adversary | weight | honest min weight | loss with | loss without | delta | rejection reasons seen

`run_network` is also what validator_tests/test_adversaries.py runs.

Run: .venv/bin/python bench/adversaries.py [--groups broken,quality,...] [--windows 7] [--out DIR]
(the whole set takes ~3-5 min per network run on 2 cores; `--groups` picks a subset.)
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "validator_tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from harness.devnet import running_devnet  # noqa: E402
from harness.network import start_network, wait_for_weights_in_effect  # noqa: E402

from subnet.chain import make_subtensor  # noqa: E402
from subnet.model.presets import build_model  # noqa: E402
from subnet.model.state import load_checkpoint  # noqa: E402
from subnet.node.runtime import load_data  # noqa: E402
from subnet.validator.scoring import mean_loss  # noqa: E402

MAX_ARTIFACT_BYTES = 8 << 20  # validators and miners alike; the `oversized` miner writes one byte more
BLOCK_MS = 500
TEMPO_BLOCKS = 20  # devnet bootstrap default

GROUPS: dict[str, list[str]] = {
    # broken or forged files: refused before scoring, cheap (no training) except lying_header and late
    "broken": ["nan", "truncated", "oversized", "wrong_shape", "bad_index", "pickle", "lying_header",
               "impersonate", "steal_key", "replay", "late", "zero"],
    # well-formed files with bad updates, and free-riders
    # the sybils sit in different blocks of F consecutive uids, so the assignment can put them in one cohort
    "quality": ["scaled", "sign_flip", "sybil", "noise", "copier_noisy", "sybil"],
    "scaled10": ["scaled:10"],
    "scaled1000": ["scaled:1000"],
    "wrong_pages": ["wrong_pages", "copier"],
}


@dataclass
class RunResult:
    """What one network run produced (everything the test and the bench assert or print)."""

    behaviours: dict[int, str]  # uid -> behaviour label ("honest", "scaled:100", ...)
    scored: list[dict]  # validator window_scored events, in order
    manifests: list[dict]  # validator manifest_published events
    incentive: dict[int, float]  # on chain, after an epoch past the last weight setting
    validator_alive: bool
    heldout_loss: float | None
    model_version: int | None
    seconds: float
    root: Path
    wallets: dict[int, str] = field(default_factory=dict)  # uid -> wallet name (state/<name>, store/<name>)
    miner_events: list[dict] = field(default_factory=list)

    def state_dir(self, uid: int) -> Path:
        return self.root / "net" / "state" / self.wallets[uid]

    def store_dir(self, uid: int) -> Path:
        return self.root / "net" / "store" / self.wallets[uid]

    def uids(self, label: str) -> list[int]:
        return [u for u, b in self.behaviours.items() if b == label or b.split(":")[0] == label]

    @property
    def honest(self) -> list[int]:
        return self.uids("honest")

    def final_weights(self) -> dict[int, float]:
        last = self.scored[-1]["weights"] if self.scored else {}
        return {u: float(last.get(str(u), 0.0)) for u in self.behaviours}

    def reasons(self, uid: int) -> list[str]:
        return [e["scores"][str(uid)]["reason"] for e in self.scored if str(uid) in e["scores"]]

    def scores(self, uid: int) -> list[float | None]:
        return [e["scores"][str(uid)]["score"] for e in self.scored if str(uid) in e["scores"]]

    def selected(self) -> set[int]:
        return {s["uid"] for m in self.manifests for s in m.get("selected", [])}


def _label_argv(label: str) -> tuple[str, list[str]]:
    """'scaled:1000' -> ('scaled', ['--adversary.poison_scale', '1000'])."""
    name, _, arg = label.partition(":")
    return name, (["--adversary.poison_scale", arg] if name == "scaled" and arg else [])


def heldout_loss(state: dict[str, torch.Tensor], pages: Any, n_pages: int = 64) -> float:
    model = build_model("tiny", seed=0)
    model.load_state_dict(state)
    batches = [pages.batch(list(range(i, i + 8)), "heldout") for i in range(0, n_pages, 8)]
    return mean_loss(model, batches)


def run_network(root: Path, adversaries: list[str], *, honest: int = 2, windows: int = 7,
                startup_timeout: float = 240.0, window_timeout: float = 60.0,
                flags: dict[str, str] | None = None) -> RunResult:
    """Devnet + validator + `honest` honest miners (lowest uids) + `adversaries`, for `windows` scored windows."""
    torch.set_num_threads(1)
    labels = ["honest"] * honest + list(adversaries)
    t0 = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    with running_devnet(root, block_ms=BLOCK_MS) as devnet:
        net = start_network(devnet, root / "net", miners=len(labels))
        net.flags["--store.max_artifact_bytes"] = str(MAX_ARTIFACT_BYTES)
        net.flags.update(flags or {})
        sybil_store = net.root / "store" / "sybil-operator"  # sybils share one store: one operator
        try:
            net.start_validator()
            for i, label in enumerate(labels):
                name, extra = _label_argv(label)
                if name == "sybil":
                    extra = [*extra, "--store.location", str(sybil_store)]
                net.start_miner(i, name, extra)

            def n_scored() -> int:
                return len(net.events("validator", "window_scored"))

            net.wait_for("the first scored window", lambda: n_scored() >= 1, timeout=startup_timeout)
            net.wait_for(f"{windows} scored windows", lambda: n_scored() >= windows,
                         timeout=window_timeout * windows)
            # the weights that follow the last counted window, then one Yuma epoch past them
            last_ts = net.events("validator", "window_scored")[windows - 1]["ts"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                    e["ts"] > last_ts for e in net.events("validator", "weights_set")):
                time.sleep(0.5)
            wait_for_weights_in_effect(net, tempo_blocks=TEMPO_BLOCKS, block_s=BLOCK_MS / 1000)
            mg = make_subtensor(devnet.network).subnets.metagraph(net.boot.netuid)
            validator = next(c for c in net.procs.children if c.name == "validator")
            alive = validator.alive()
        finally:
            net.procs.stop_all()
    behaviours = {m.uid: labels[i] for i, m in enumerate(net.boot.miners)}
    incentive = {n.uid: float(n.incentive) for n in mg.neurons}
    loss = version = None
    gm_path = net.state_dir(net.boot.validator.wallet) / "global_model.safetensors"
    if gm_path.exists():
        state, meta = load_checkpoint(gm_path)
        loss, version = heldout_loss(state, load_data("tiny")), int(meta["version"])
    return RunResult(behaviours=behaviours, scored=net.events("validator", "window_scored")[:windows],
                     manifests=[m for m in net.events("validator", "manifest_published")
                                if m["window"] <= max((e["window"]
                                                       for e in net.events("validator", "window_scored")[:windows]),
                                                      default=-1)],
                     incentive=incentive, validator_alive=alive, heldout_loss=loss, model_version=version,
                     seconds=time.monotonic() - t0, root=root, miner_events=net.events("miner"),
                     wallets={m.uid: m.wallet for m in net.boot.miners})


def _reason_kinds(reasons: list[str]) -> str:
    kinds = collections.Counter()
    for r in reasons:
        if not r:
            kinds["scored"] += 1
            continue
        head = r.split(" (")[0]
        if head.startswith("rejected: "):
            head = head.split(":")[0] + ": " + head.split(":")[1].strip()
        if head.startswith("copy of uid"):
            head = "copy"
        elif head.startswith("copy tie uid"):
            head = "copy tie"
        kinds[head] += 1
    return ", ".join(f"{k} x{n}" for k, n in kinds.most_common())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", default="broken,quality,scaled10,scaled1000,wrong_pages",
                    help=f"comma-separated subset of {', '.join(GROUPS)}")
    ap.add_argument("--windows", type=int, default=7)
    ap.add_argument("--out", default=None, help="keep run directories (and write results.json) here")
    args = ap.parse_args(argv)
    groups = [g for g in args.groups.split(",") if g]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        ap.error(f"unknown groups {unknown}; choose from {list(GROUPS)}")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tessera-adv-"))
    print(f"runs under {out}", flush=True)
    base = run_network(out / "baseline", [], windows=args.windows)
    print(f"baseline (2 honest): held-out loss {base.heldout_loss:.4f} at version {base.model_version}, "
          f"{base.seconds:.0f}s", flush=True)
    rows: list[dict[str, Any]] = []
    for g in groups:
        res = run_network(out / g, GROUPS[g], windows=args.windows)
        fw = res.final_weights()
        honest_min = min(fw[u] for u in res.honest)
        print(f"group {g}: validator alive {res.validator_alive}, held-out loss {res.heldout_loss:.4f} "
              f"(version {res.model_version}), {res.seconds:.0f}s", flush=True)
        for uid, label in sorted(res.behaviours.items()):
            if label == "honest":
                continue
            rows.append({"group": g, "adversary": label, "uid": uid, "weight": fw[uid],
                         "incentive": res.incentive.get(uid, 0.0), "honest_min_weight": honest_min,
                         "loss_with": res.heldout_loss, "loss_without": base.heldout_loss,
                         "delta": ((res.heldout_loss - base.heldout_loss)
                                   if res.heldout_loss and base.heldout_loss else None),
                         "selected": uid in res.selected(), "reasons": _reason_kinds(res.reasons(uid))})
    hdr = (f"{'adversary':<14}{'uid':>4}{'weight':>8}{'incent.':>8}{'hon.min':>8}{'loss with':>10}{'without':>9}"
           f"{'delta':>8}  sel  reasons")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for r in rows:
        print(f"{r['adversary']:<14}{r['uid']:>4}{r['weight']:>8.3f}{r['incentive']:>8.3f}{r['honest_min_weight']:>8.3f}"
              f"{r['loss_with']:>10.4f}{r['loss_without']:>9.4f}{r['delta']:>+8.4f}  "
              f"{'YES' if r['selected'] else 'no ':<4} "
              f"{r['reasons']}")
    (out / "results.json").write_text(json.dumps({"baseline_loss": base.heldout_loss, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
