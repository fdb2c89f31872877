"""One window of hostile peers against the validator's upload watcher, with the neurons' default budgets.

Every peer is real: honest miners with signed artifacts in local stores, and
one hostile peer per row of docs/RELIABILITY.md (crashing locations, SSRF
locations under the real-network policy, raw-socket servers that trickle,
hang, claim 10 GB or redirect, a FIFO and a symlink loop in a local store).
All are polled together by one `UploadWatcher` with the validator's defaults
(`ValidatorOptions` / `StoreConfig`), as in a real window. Printed per peer:
its final outcome and the wall-clock time until it was reached; and the time
until every honest upload was pinned (what slow peers must not delay).

    .venv/bin/python bench/hostile_peers.py            # defaults: takes about budget + one request (~75 s)
    .venv/bin/python bench/hostile_peers.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

for p in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parents[1] / "validator_tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bittensor.sp_core import Keypair  # noqa: E402
from harness.hostile_http import HostileServer  # noqa: E402

from subnet.codec import ArtifactHeader, CodecConfig, Encoder, write_artifact  # noqa: E402
from subnet.codec.wire import expected_max_bytes  # noqa: E402
from subnet.node.config import ValidatorOptions  # noqa: E402
from subnet.node.peerstores import PeerStores  # noqa: E402
from subnet.storage import LocalDirStore  # noqa: E402
from subnet.storage.config import StoreConfig  # noqa: E402
from subnet.storage.location import LocationPolicy  # noqa: E402
from subnet.storage.peer import PeerReadOptions  # noqa: E402
from subnet.validator.evidence import EvidenceBook  # noqa: E402
from subnet.validator.watch import BlockClock, PollResult, UploadWatcher, WatchBudget, WatchTarget  # noqa: E402

NETUID, WINDOW, FRAG = 7, 5, 0
SHAPES = {"w": (256, 256), "b": (256,)}
CODEC = CodecConfig()
FINAL = (PollResult.PINNED, PollResult.REFUSED, PollResult.OVER_BUDGET, PollResult.OVERSIZED, PollResult.REJECTED)


def _artifact(kp: Keypair, uid: int) -> bytes:
    g = torch.Generator().manual_seed(uid)
    enc = Encoder(SHAPES, CODEC).encode({n: torch.randn(s, generator=g) for n, s in SHAPES.items()})
    return write_artifact(enc, ArtifactHeader(netuid=NETUID, window=WINDOW, uid=uid, hotkey=kp.ss58_address,
                                              fragment=FRAG, base_version=0), kp)


def run(honest: int = 8, max_wall_s: float = 240.0) -> dict:
    vopts, scfg = ValidatorOptions(), StoreConfig()
    budget = WatchBudget(workers=vopts.poll_workers, request_timeout_s=scfg.peer_request_timeout_s,
                         window_budget_s=vopts.peer_window_budget_s, retry_after_s=vopts.peer_retry_after_s,
                         per_endpoint=vopts.per_endpoint_requests)
    reads = PeerReadOptions(request_timeout_s=scfg.peer_request_timeout_s, attempts=scfg.peer_attempts)
    max_bytes = expected_max_bytes(SHAPES, CODEC)
    tmp = Path(tempfile.mkdtemp(prefix="tessera-hostile-"))
    servers = {m: HostileServer(m, interval_s=1.0, size=max_bytes // 2)
               for m in ("trickle_headers", "trickle_body", "blackhole", "huge", "redirect", "status")}
    rows: list[tuple[str, str, LocationPolicy]] = [
        ("crash: region=../../x", "s3://bucket-ok?region=../../x", LocationPolicy.devnet()),
        ("crash: endpoint=file:///etc/passwd", "s3://bucket-ok?endpoint=file:///etc/passwd", LocationPolicy.devnet()),
        ("crash: endpoint=http://[::1", "s3://bucket-ok?endpoint=http://[::1", LocationPolicy.devnet()),
        ("crash: CRLF in endpoint", "s3://bucket-ok?endpoint=http://a.example%0d%0aX:1", LocationPolicy.devnet()),
        ("crash: addressing=bogus", "s3://bucket-ok?addressing=bogus", LocationPolicy.devnet()),
        ("drive letter a:/../../etc", "a:/../../../../etc", LocationPolicy.network()),
        ("SSRF 169.254.169.254", "s3://b-x?endpoint=https://169.254.169.254", LocationPolicy.network()),
        ("SSRF 127.0.0.1:6379", "s3://b-x?endpoint=https://127.0.0.1:6379", LocationPolicy.network()),
        ("userinfo in endpoint", "s3://b-x?endpoint=https://key:secret@s3.example.com", LocationPolicy.network()),
    ] + [(f"store: {m}", f"s3://bkt/pre?endpoint={s.url}", LocationPolicy.devnet()) for m, s in servers.items()]
    fifo_store = LocalDirStore(tmp / "fifo")
    loop_store = LocalDirStore(tmp / "loop")
    rows += [("local store: FIFO at the key", fifo_store.location, LocationPolicy.devnet()),
             ("local store: symlink loop", loop_store.location, LocationPolicy.devnet())]

    head = [25]
    watchers = {}
    for policy in {LocationPolicy.devnet(), LocationPolicy.network()}:
        watchers[policy] = UploadWatcher(EvidenceBook(tmp / f"evidence-{policy.public_only}"),
                                         PeerStores(policy, reads), BlockClock(lambda: head[0]), budget)
    targets: dict[LocationPolicy, list[WatchTarget]] = {p: [] for p in watchers}
    names: dict[str, str] = {}
    for i, (label, location, policy) in enumerate(rows):
        kp = Keypair.create_from_uri(f"//Hostile{i}")
        key = f"{NETUID}/{WINDOW}/{kp.ss58_address}.{FRAG}.safetensors"
        if label.endswith("FIFO at the key"):
            (fifo_store.root / key).parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(fifo_store.root / key)
        if label.endswith("symlink loop"):
            (loop_store.root / key).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(loop_store.root / key, loop_store.root / key)
        targets[policy].append(WatchTarget(uid=100 + i, hotkey=kp.ss58_address, location=location, fragment=FRAG,
                                           key=key, max_bytes=max_bytes))
        names[kp.ss58_address] = label
    devnet = LocationPolicy.devnet()
    honest_keys = []
    for i in range(honest):
        kp = Keypair.create_from_uri(f"//Honest{i}")
        store = LocalDirStore(tmp / f"honest-{i}")
        key = f"{NETUID}/{WINDOW}/{kp.ss58_address}.{FRAG}.safetensors"
        store.put(key, _artifact(kp, i))
        targets[devnet].append(WatchTarget(uid=i, hotkey=kp.ss58_address, location=store.location, fragment=FRAG,
                                           key=key, max_bytes=max_bytes))
        honest_keys.append(kp.ss58_address)

    t0 = time.monotonic()
    done: dict[str, tuple[str, float, str]] = {}
    honest_pinned_s = None
    limit = max_wall_s
    while time.monotonic() - t0 < limit and len(done) < len(names):
        for policy, w in watchers.items():
            w.poll(WINDOW, targets[policy])
            for t in targets[policy]:
                if t.hotkey in names and t.hotkey not in done:
                    result, detail, _ = w.status(WINDOW, t.hotkey)
                    if result in FINAL:
                        done[t.hotkey] = (result.value, time.monotonic() - t0, detail[:90])
        if honest_pinned_s is None and all(watchers[devnet].book.sighting(WINDOW, h) for h in honest_keys):
            honest_pinned_s = time.monotonic() - t0
        time.sleep(vopts.watch_interval)
    for w in watchers.values():
        w.close()
    for s in servers.values():
        s.close()
    out = {"budget": {"request_timeout_s": budget.request_timeout_s, "window_budget_s": budget.window_budget_s,
                      "retry_after_s": budget.retry_after_s, "workers": budget.workers,
                      "attempts": reads.attempts},
           "honest": honest, "honest_all_pinned_s": honest_pinned_s,
           "wall_s": time.monotonic() - t0, "peers": []}
    for policy, w in watchers.items():
        for t in targets[policy]:
            if t.hotkey not in names:
                continue
            result, detail, attempts = w.status(WINDOW, t.hotkey)
            final = done.get(t.hotkey)
            out["peers"].append({"peer": names[t.hotkey], "outcome": result.value if result else None,
                                 "final": final is not None, "seconds_to_final": final[1] if final else None,
                                 "attempts": attempts, "store_time_s": w.spent(WINDOW, t.hotkey),
                                 "detail": detail[:90]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--honest", type=int, default=8)
    ap.add_argument("--max-wall-s", type=float, default=240.0, help="stop after this long (a 20-block window at 12 s)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    res = run(args.honest, args.max_wall_s)
    b = res["budget"]
    print(f"budgets: request {b['request_timeout_s']}s x {b['attempts']} attempts, {b['window_budget_s']}s per peer "
          f"per window, retry after {b['retry_after_s']}s (doubling), {b['workers']} workers")
    print(f"{res['honest']} honest uploads all pinned after {res['honest_all_pinned_s']:.2f}s\n")
    print(f"after {res['wall_s']:.0f} s of one window:\n")
    print(f"| {'peer':<32} | {'outcome':<11} | {'final after':>11} | {'attempts':>8} | {'store time':>10} | detail")
    print(f"|{'-' * 34}|{'-' * 13}|{'-' * 13}|{'-' * 10}|{'-' * 12}|-------")
    for r in res["peers"]:
        secs = "still retrying" if r["seconds_to_final"] is None else f"{r['seconds_to_final']:.2f} s"
        print(f"| {r['peer']:<32} | {r['outcome'] or '-':<11} | {secs:>11} | {r['attempts']:>8} | "
              f"{r['store_time_s']:>8.2f} s | {r['detail']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
