"""Devnet benchmark: sustained extrinsic throughput and full-subnet epoch cost.

Prints two ratios measured in one run:
1. extrinsics/s sustained (signed transfers from 8 accounts, pipelined, over a
   real devnet process) relative to the block rate, i.e. extrinsics per block;
2. the epoch time of a full subnet (256 UIDs, 64 validators each weighting
   every UID) relative to the block time (1000 ms default, and the bench's).

3. reads/s over the Substrate face (the SDK's own `RpcSubstrate`, SCALE +
   metadata) side by side with the JSON face (`DevnetSubstrate`), same devnet
   process, same reads (a storage item and the metagraph runtime API);
   and signed transfers/s through each face, pipelined, same process, each waiting
   for finalization (the SDK's default on both faces).

Run: .venv/bin/python bench/devnet.py [--seconds 5] [--block-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "validator_tests"))

import bittensor as bt  # noqa: E402
import bittensor_core  # noqa: E402
from harness.devnet import bootstrap as bootstrap_subnet  # noqa: E402
from harness.devnet import free_port, running_devnet  # noqa: E402

from subnet.devnet.config import DEFAULT_BLOCK_MS, SUBSTRATE_PORT_ENV, GenesisConfig  # noqa: E402
from subnet.devnet.runtime import Runtime, dev_address  # noqa: E402
from subnet.devnet.runtime.epoch import run_epoch  # noqa: E402
from subnet.devnet.state import Store  # noqa: E402
from subnet.devnet.substrate import DevnetSubstrate  # noqa: E402


async def _throughput(url: str, seconds: float, senders: int = 8, depth: int = 32, *,
                      substrate=None, tag: str = "bench") -> tuple[int, int, float, int]:
    """(included extrinsics, blocks, elapsed, refused or failed) for `seconds` of pipelined transfers (JSON face
    unless `substrate`). Each submission waits for finalization, the SDK's default on both faces."""
    alice = bittensor_core.Keypair.create_from_uri("//Alice")
    keys = [bittensor_core.Keypair.create_from_uri(f"//{tag}{i}") for i in range(senders)]
    sub = substrate if substrate is not None else DevnetSubstrate(url)
    await sub.connect()
    fund = [sub.submit(await sub.compose(bt.calls.Balances.transfer_keep_alive(dest=k.ss58_address, value=10**12)),
                       alice)
            for k in keys]
    if substrate is None:
        results = await asyncio.gather(*fund)
    else:  # the SDK's nonce cache serialises one signer's submissions itself; fund one by one
        for pending in fund:
            pending.close()
        results = [await sub.submit(await sub.compose(bt.calls.Balances.transfer_keep_alive(
            dest=k.ss58_address, value=10**12)), alice) for k in keys]
    assert all(r.success for r in results), [r.message for r in results if not r.success]
    dest = dev_address("//Charlie")
    done = 0
    failures: Counter[str] = Counter()
    stop_at = time.monotonic() + seconds
    start_block = await sub.block_number()
    t0 = time.monotonic()

    def count(result) -> None:
        nonlocal done
        if result.success:
            done += 1
        else:
            failures[str(result.message)[:60]] += 1

    async def sender(kp) -> None:
        call = await sub.compose(bt.calls.Balances.transfer_keep_alive(dest=dest, value=1000))
        inflight: set[asyncio.Task] = set()
        while time.monotonic() < stop_at:
            while len(inflight) < depth and time.monotonic() < stop_at:
                inflight.add(asyncio.create_task(sub.submit(call, kp)))
            finished, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            for t in finished:
                count(t.result())
        for t in asyncio.as_completed(inflight):
            count(await t)

    await asyncio.gather(*(sender(k) for k in keys))
    elapsed = time.monotonic() - t0
    blocks = await sub.block_number() - start_block
    await sub.close()
    if failures:
        print(f"  [{tag}] failed submissions: {dict(failures)}", file=sys.stderr)
    return done, blocks, elapsed, sum(failures.values())


async def _reads_per_second(sub, seconds: float, netuid: int, concurrency: int = 16) -> tuple[float, float]:
    """(storage reads/s, metagraph runtime-API reads/s) through one `bittensor.Substrate`."""
    await sub.connect()

    async def rate(read) -> float:
        done = 0
        stop_at = time.monotonic() + seconds / 2

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                await read()
                done += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - t0)

    storage = await rate(lambda: sub.query("SubtensorModule", "Tempo", [netuid]))
    graph = await rate(lambda: sub.runtime_call("SubnetInfoRuntimeApi", "get_metagraph", [netuid]))
    await sub.close()
    return storage, graph


def _faces(seconds: float, block_ms: int, tmp: Path) -> dict[str, tuple[float, ...]]:
    """(storage reads/s, metagraph reads/s, signed transfers/s) of both faces of one bootstrapped devnet
    process, measured one after the other."""
    port = free_port()
    os.environ[SUBSTRATE_PORT_ENV] = str(port)
    os.environ.setdefault("BITTENSOR_RUNTIME_CACHE_DIR", str(tmp / "runtime-cache"))
    try:
        with running_devnet(tmp, block_ms=block_ms, allow_admin=True) as handle:
            result = bootstrap_subnet(handle, tmp / "wallets", miners=4)
            json_face = asyncio.run(_reads_per_second(DevnetSubstrate(handle.url), seconds, result.netuid))
            substrate = asyncio.run(_reads_per_second(bt.RpcSubstrate(f"ws://127.0.0.1:{port}"), seconds,
                                                      result.netuid))
            done, _, elapsed, failed = asyncio.run(_throughput(handle.url, seconds, tag="json"))
            json_face += (done / elapsed, failed)
            done, _, elapsed, failed = asyncio.run(_throughput(
                handle.url, seconds, tag="scale", substrate=bt.RpcSubstrate(f"ws://127.0.0.1:{port}")))
            substrate += (done / elapsed, failed)
    finally:
        os.environ.pop(SUBSTRATE_PORT_ENV, None)
    return {"json": json_face, "substrate": substrate}


def _epoch_seconds(n: int = 256, validators: int = 64, repeats: int = 3) -> float:
    """Seconds per epoch for a full subnet, in-process (what the node spends per epoch)."""
    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime(Store(Path(tmp) / "bench.sqlite"), GenesisConfig())
        rt.init_genesis()
        alice = dev_address("//Alice")
        rt.block = 1
        rt.dispatch(alice, "SubtensorModule", "register_network", {"hotkey": dev_address("//owner")})
        rec = rt.subnet_mut(1)
        rec["hp"]["MaxRegistrationsPerBlock"] = n
        rec["hp"]["MinAllowedWeights"] = 1
        for i in range(1, n):
            rt.dispatch(alice, "SubtensorModule", "burned_register", {"netuid": 1, "hotkey": dev_address(f"//n{i}")})
        rng = np.random.default_rng(0)
        rec = rt.subnet_mut(1)
        rt.block = 10
        for uid in range(validators):
            hotkey = rec["hotkeys"][uid]
            rt.credit_stake(1, hotkey, alice, int(rng.integers(10**9, 10**12)))
            rec["validator_permit"][uid] = True
            row = rng.integers(1, 65535, size=n)
            rt.store.put(f"w:1:{uid}", [[j, int(v)] for j, v in enumerate(row)])
            rec["last_update"][uid] = rt.block
        rec["first_emission_block"] = 1
        times = []
        for r in range(repeats):
            rt.block = 100 + r * 10
            t0 = time.perf_counter()
            run_epoch(rt, 1)
            times.append(time.perf_counter() - t0)
        rt.store.close()
        return float(np.median(times))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--block-ms", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        with running_devnet(Path(tmp), block_ms=args.block_ms) as handle:
            done, blocks, elapsed, _ = asyncio.run(_throughput(handle.url, args.seconds))
    xps = done / elapsed
    bps = blocks / elapsed
    epoch = _epoch_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        faces = _faces(args.seconds, args.block_ms, Path(tmp))
    print(f"devnet bench (block {args.block_ms} ms, {args.seconds:.0f} s of pipelined signed transfers)")
    print(f"  throughput: {xps:8.1f} extrinsics/s at {bps:5.2f} blocks/s "
          f"-> {xps / max(bps, 1e-9):7.1f} extrinsics per block sustained")
    print(f"  epoch (256 uids, 64 validators): {epoch * 1000:7.1f} ms "
          f"= {epoch / (DEFAULT_BLOCK_MS / 1000):.3f} x default block ({DEFAULT_BLOCK_MS} ms), "
          f"{epoch / (args.block_ms / 1000):.3f} x bench block ({args.block_ms} ms)")
    (js, jm, jx, jf), (ss, sm, sx, sf) = faces["json"], faces["substrate"]
    print(f"  reads/s, 16 in flight, one 6-uid subnet ({args.seconds / 2:.1f} s each):")
    print(f"    storage (SubtensorModule.Tempo): JSON face {js:7.1f}  Substrate face {ss:7.1f}"
          f"  -> Substrate/JSON {ss / max(js, 1e-9):.2f}")
    print(f"    runtime API (get_metagraph):     JSON face {jm:7.1f}  Substrate face {sm:7.1f}"
          f"  -> Substrate/JSON {sm / max(jm, 1e-9):.2f}")
    print(f"  signed transfers/s, same process, 8 senders x 32 in flight, each waiting for finalization "
          f"(the SDK's default on both faces) ({args.seconds:.0f} s each):")
    print(f"    JSON face {jx:7.1f}  Substrate face {sx:7.1f}  -> Substrate/JSON {sx / max(jx, 1e-9):.2f}"
          f"  (refused/failed: JSON {jf}, Substrate {sf})")
    if args.out is not None:
        figures = {
            "command": " ".join(["bench/devnet.py", *sys.argv[1:]]), "block_ms": args.block_ms,
            "seconds": args.seconds, "extrinsics_per_s_json_face": xps, "blocks_per_s": bps,
            "epoch_ms_256_uids": epoch * 1000,
            "signed_transfers_per_s_same_process": {"json_face": jx, "substrate_face": sx,
                                                     "ratio": sx / max(jx, 1e-9), "waits_for": "finalization",
                                                     "refused_or_failed": {"json_face": jf, "substrate_face": sf}},
            "storage_reads_per_s": {"json_face": js, "substrate_face": ss, "ratio": ss / max(js, 1e-9)},
            "metagraph_reads_per_s": {"json_face": jm, "substrate_face": sm, "ratio": sm / max(jm, 1e-9)},
        }
        args.out.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
