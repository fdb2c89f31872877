"""kill -9 at random instants: persisted state must be the old or the new version, never torn.

Run: `.venv/bin/python bench/kill9.py --trials 20` (flags: `--help`). Scenarios:

- `miner`: a child process saves MinerState in a loop (step i, EF buffer filled
  with i); SIGKILL at a random instant; MinerState.load must succeed and be
  self-consistent (the tensors belong to the step in the header).
- `validator`: the same for ValidatorState (window i, 2000 reference norms i + f).
- `put`: a child process LocalDirStore.put()s two different real signed
  artifacts alternately under one key; after SIGKILL the object is absent or
  exactly one of them (read_artifact accepts it), and no temp file is listed.
- `devnet`: a devnet process is SIGKILLed at a random instant while this
  process submits Balances transfers through the bittensor SDK, then
  restarted: the head never goes below (and never rewrites) a block a
  receipt reported, every transfer reported successful is in the balance,
  nothing is applied twice (the signer's nonce advanced by exactly the
  number of transfers applied, and the balance delta matches that set).
  A call whose outcome the client cannot know (it raised at the kill, or the
  SDK answered "connection lost while waiting for a subscription response")
  may have been applied, once, or not at all.

A summary table is printed; the test suite runs a few trials of each
(validator_tests/test_faults_kill9.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ART_KEY = "7/42/hk.1.safetensors"


@dataclass(kw_only=True)
class TrialResult:
    scenario: str
    kill_after_s: float
    outcome: str  # "new", "old", "absent", or a failure description starting with "FAIL"
    detail: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.outcome.startswith("FAIL")


# -- children (run in a separate process, killed with SIGKILL) ----------------------------------------


def _child_miner(d: Path) -> None:
    import torch

    from subnet.miner.state import MinerState

    torch.set_num_threads(1)
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        st = MinerState(version=i, step=i, last_window_uploaded=i, identity={"hotkey": "k"},
                        ef={"w": torch.full((256, 1024), float(i)), "b": torch.full((1024,), float(i))})
        st.save(d)


def _child_validator(d: Path) -> None:
    from subnet.validator.state import ValidatorState

    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        refs = {f: float(i + f) for f in range(1, 2001)}  # a large file, so a torn write would show
        ValidatorState(last_scored_window=i, last_weights_block=i * 10, weights_windows=i, ref_norms=refs,
                       identity={"hotkey": "v"}).save(d)


def artifacts() -> tuple[bytes, bytes, dict]:
    """Two different real signed artifacts for the same key, and read_artifact kwargs."""
    import torch
    from bittensor.sp_core import Keypair

    from subnet.codec import ArtifactHeader, CodecConfig, Encoder, write_artifact

    shapes = {"w": (512, 1024), "b": (1024,)}
    cfg = CodecConfig(chunk=4096, topk=256, value_bits=4)
    kp = Keypair.create_from_uri("//Kill9")
    out = []
    for seed in (1, 2):
        g = torch.Generator().manual_seed(seed)
        enc = Encoder(shapes, cfg).encode({n: torch.randn(s, generator=g) for n, s in shapes.items()})
        hdr = ArtifactHeader(netuid=7, window=42, uid=1, hotkey=kp.ss58_address, fragment=1, base_version=seed)
        out.append(write_artifact(enc, hdr, kp))
    return out[0], out[1], dict(expected_hotkey=kp.ss58_address, max_bytes=8 << 20, shapes=shapes, codec=cfg)


def _child_put(d: Path) -> None:
    from subnet.storage import LocalDirStore

    a, b, _ = artifacts()
    store = LocalDirStore(d)
    print("ready", flush=True)
    i = 0
    while True:
        store.put(ART_KEY, a if i % 2 == 0 else b)
        i += 1


CHILDREN = {"miner": _child_miner, "validator": _child_validator, "put": _child_put}


# -- parent side -------------------------------------------------------------------------------------


def _spawn_and_kill(scenario: str, d: Path, rng: random.Random, max_delay_s: float) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", scenario, str(d)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    try:
        line = proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"{scenario} child failed: {proc.stderr.read().decode()[-2000:]}")
        delay = rng.uniform(0.0, max_delay_s)
        time.sleep(delay)
        if proc.poll() is not None:
            raise RuntimeError(f"{scenario} child died on its own: {proc.stderr.read().decode()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return delay
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def trial_miner(d: Path, rng: random.Random, max_delay_s: float = 1.5) -> TrialResult:
    from subnet.miner.state import STATE_FILE, MinerState

    delay = _spawn_and_kill("miner", d, rng, max_delay_s)
    if not (d / STATE_FILE).exists():
        st = MinerState.load(d)
        return TrialResult(scenario="miner", kill_after_s=delay,
                           outcome="absent" if st.step == 0 else "FAIL: state without a file")
    try:
        st = MinerState.load(d, identity={"hotkey": "k"})
    except Exception as e:  # noqa: BLE001
        return TrialResult(scenario="miner", kill_after_s=delay, outcome=f"FAIL: load raised {e!r}")
    i = st.step
    consistent = (i > 0 and st.version == i and st.last_window_uploaded == i and set(st.ef) == {"w", "b"}
                  and all(bool((t == float(i)).all()) for t in st.ef.values()))
    tmp_left = len(list(d.glob(".*.tmp")))
    return TrialResult(scenario="miner", kill_after_s=delay,
                       outcome="complete" if consistent else f"FAIL: torn at step {i}",
                       detail={"step": i, "tmp_left": tmp_left})


def trial_validator(d: Path, rng: random.Random, max_delay_s: float = 1.0) -> TrialResult:
    from subnet.validator.state import STATE_FILE, ValidatorState

    delay = _spawn_and_kill("validator", d, rng, max_delay_s)
    if not (d / STATE_FILE).exists():
        return TrialResult(scenario="validator", kill_after_s=delay, outcome="absent")
    try:
        st = ValidatorState.load(d, identity={"hotkey": "v"})
    except Exception as e:  # noqa: BLE001
        return TrialResult(scenario="validator", kill_after_s=delay, outcome=f"FAIL: load raised {e!r}")
    i = st.last_scored_window
    consistent = (st.last_weights_block == 10 * i and st.weights_windows == i and len(st.ref_norms) == 2000
                  and all(v == float(i + f) for f, v in st.ref_norms.items()))
    return TrialResult(scenario="validator", kill_after_s=delay,
                       outcome="complete" if consistent else f"FAIL: torn at {i}",
                       detail={"window": i})


def trial_put(d: Path, rng: random.Random, max_delay_s: float = 2.0, arts: tuple | None = None) -> TrialResult:
    from subnet.codec import ArtifactError, read_artifact
    from subnet.storage import LocalDirStore

    a, b, kw = arts or artifacts()
    delay = _spawn_and_kill("put", d, rng, max_delay_s)
    store = LocalDirStore(d)
    listed = store.list("")
    if any(k != ART_KEY for k in listed):
        return TrialResult(scenario="put", kill_after_s=delay, outcome=f"FAIL: stray keys listed {listed}")
    data = store.get(ART_KEY, max_bytes=kw["max_bytes"])
    if data is None:
        return TrialResult(scenario="put", kill_after_s=delay, outcome="absent")
    try:
        art = read_artifact(data, **kw)
    except ArtifactError as e:
        return TrialResult(scenario="put", kill_after_s=delay,
                           outcome=f"FAIL: half-written object ({type(e).__name__})")
    # sr25519 signatures are randomised, so the child's files differ from ours byte-wise: match the payload.
    want = {read_artifact(x, **kw).payload_sha256: name for x, name in ((a, "A"), (b, "B"))}
    which = want.get(art.payload_sha256, "?")
    return TrialResult(scenario="put", kill_after_s=delay,
                       outcome="complete" if which != "?" else "FAIL: unknown payload",
                       detail={"version": which, "base_version": art.header.base_version, "bytes": len(data)})


# -- devnet ------------------------------------------------------------------------------------------


def trial_devnet(handle, sub, rng: random.Random, *, amount_base: int, max_delay_s: float = 1.5) -> TrialResult:
    """One kill/restart cycle on a running devnet `handle`; `sub` is an SDK client of it."""
    import bittensor as bt
    import bittensor_core

    alice = bittensor_core.Keypair.create_from_uri("//Alice")
    dest = bittensor_core.Keypair.create_from_uri(f"//Kill9Dest{amount_base}").ss58_address
    nonce0 = int(handle_rpc(handle, "devnet_accountNextIndex", alice.ss58_address))
    bal0 = sub.balances.balance(coldkey_ss58=dest).rao
    alice0 = sub.balances.balance(coldkey_ss58=alice.ss58_address).rao
    delay = rng.uniform(0.1, max_delay_s)
    killer = threading.Timer(delay, handle.kill)
    succeeded: dict[int, int] = {}  # amount -> block number reported by its receipt
    refused: list[int] = []  # a failed result at the kill: the chain may have taken it before the socket died
    refused_why: list[str] = []
    in_flight: list[int] = []
    committed_hash: dict[int, str] = {}
    killer.start()
    i = 0
    try:
        while True:
            i += 1
            amount = amount_base + i  # distinct amounts identify every transfer
            try:
                res = sub.execute(bt.Transfer(dest_ss58=dest, amount_tao=amount / 1e9), alice)
            except Exception:  # noqa: BLE001 - the chain died under this call: outcome unknown
                in_flight.append(amount)
                break
            if res.success:
                number = int(str(res.extrinsic_id).split("-")[0])
                succeeded[amount] = number
                committed_hash[number] = res.block_hash
            else:
                refused.append(amount)
                refused_why.append(str(res.message)[:80])
                if not killer.is_alive() and handle.proc.poll() is not None:
                    break
    finally:
        killer.join()
    handle.kill()
    handle.start()
    head = handle.head()["number"]
    last = max(succeeded.values(), default=0)
    problems = []
    if head < last:
        problems.append(f"head {head} < last reported block {last}")
    for number, h in committed_hash.items():
        if handle_rpc(handle, "devnet_blockHash", number) != h:
            problems.append(f"block {number} was rewritten")
    nonce1 = int(handle_rpc(handle, "devnet_accountNextIndex", alice.ss58_address))
    bal1 = sub.balances.balance(coldkey_ss58=dest).rao
    alice1 = sub.balances.balance(coldkey_ss58=alice.ss58_address).rao
    applied = nonce1 - nonce0
    landed = bal1 - bal0
    ok_sum = sum(succeeded)
    # Applied set must be the reported successes plus some of the calls whose outcome the client could not
    # know: the one that raised at the kill and any the SDK reported failed as the connection went (a
    # submission the node accepted is applied even when the watch that would have confirmed it is cut).
    unknown = in_flight + refused
    subsets = {sum(c): len(c) for k in range(len(unknown) + 1) for c in itertools.combinations(unknown, k)}
    candidates = sorted(ok_sum + extra for extra in subsets)
    if landed not in candidates:
        problems.append(f"balance delta {landed} not in {candidates} (successes {len(succeeded)})")
    expected_applied = len(succeeded) + subsets.get(landed - ok_sum, 0)
    if applied != expected_applied:
        problems.append(f"nonce advanced {applied}, {expected_applied} transfers applied (double apply or lost nonce)")
    if alice0 - alice1 != landed:
        problems.append(f"sender lost {alice0 - alice1}, receiver got {landed}")
    outcome = "FAIL: " + "; ".join(problems) if problems else "consistent"
    return TrialResult(scenario="devnet", kill_after_s=delay, outcome=outcome,
                       detail={"ok": len(succeeded), "refused": len(refused), "in_flight_applied": landed != ok_sum,
                               "head_after": head, "last_reported": last, "refused_why": refused_why})


def handle_rpc(handle, method: str, *params):
    sys.path.insert(0, str(REPO / "validator_tests"))
    from harness.devnet import rpc

    return rpc(handle.url, method, *params)


def run_devnet_trials(n: int, rng: random.Random, tmp: Path, block_ms: int = 50) -> list[TrialResult]:
    sys.path.insert(0, str(REPO / "validator_tests"))
    from harness.devnet import running_devnet

    from subnet.chain import make_subtensor

    out = []
    with running_devnet(tmp, block_ms=block_ms) as handle:
        sub = make_subtensor(handle.network)
        try:
            for t in range(n):
                out.append(trial_devnet(handle, sub, rng, amount_base=(t + 1) * 1_000_000))
        finally:
            sub.close()
    return out


# -- reporting ---------------------------------------------------------------------------------------


def summarize(results: list[TrialResult]) -> str:
    rows = ["scenario    trials  ok  outcomes                                  kill at (s)"]
    by: dict[str, list[TrialResult]] = {}
    for r in results:
        by.setdefault(r.scenario, []).append(r)
    for name, rs in by.items():
        counts: dict[str, int] = {}
        for r in rs:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        kills = [r.kill_after_s for r in rs]
        outcomes = ", ".join(f"{k} {v}" for k, v in counts.items())
        rows.append(f"{name:<11} {len(rs):>6} {sum(r.ok for r in rs):>3}  {outcomes[:40]:<40}  "
                    f"{min(kills):.2f}-{max(kills):.2f}")
    dev = by.get("devnet", [])
    if dev:
        rows.append(f"devnet: {sum(r.detail.get('ok', 0) for r in dev)} transfers reported successful, all present; "
                    f"{sum(bool(r.detail.get('in_flight_applied')) for r in dev)} trials applied a call of unknown "
                    f"outcome at the kill (once), the rest none")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenarios", default="miner,validator,put,devnet")
    p.add_argument("--child", nargs=2, metavar=("SCENARIO", "DIR"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        CHILDREN[a.child[0]](Path(a.child[1]))
        return 0
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    rng = random.Random(a.seed)
    results: list[TrialResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        arts = artifacts() if "put" in a.scenarios else None
        for name in a.scenarios.split(","):
            t0 = time.perf_counter()
            if name == "devnet":
                results += run_devnet_trials(a.trials, rng, root / "devnet")
            else:
                for t in range(a.trials):
                    d = root / name / str(t)
                    r = (trial_put(d, rng, arts=arts) if name == "put"
                         else {"miner": trial_miner, "validator": trial_validator}[name](d, rng))
                    results.append(r)
            print(f"{name}: {a.trials} trials in {time.perf_counter() - t0:.1f} s", flush=True)
            for r in results:
                if r.scenario == name and not r.ok:
                    print(f"  {r.outcome} {json.dumps(r.detail)}")
    print()
    print(summarize(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
