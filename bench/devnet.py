"""Devnet benchmark: sustained extrinsic throughput and full-subnet epoch cost.

Prints two ratios measured in one run:
1. extrinsics/s sustained (signed transfers from 8 accounts, pipelined, over a
   real devnet process) relative to the block rate, i.e. extrinsics per block;
2. the epoch time of a full subnet (256 UIDs, 64 validators each weighting
   every UID) relative to the block time (1000 ms default, and the bench's).

Run: .venv/bin/python bench/devnet.py [--seconds 5] [--block-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "validator_tests"))

import bittensor as bt  # noqa: E402
import bittensor_core  # noqa: E402
from harness.devnet import running_devnet  # noqa: E402

from subnet.devnet.config import DEFAULT_BLOCK_MS, GenesisConfig  # noqa: E402
from subnet.devnet.runtime import Runtime, dev_address  # noqa: E402
from subnet.devnet.runtime.epoch import run_epoch  # noqa: E402
from subnet.devnet.state import Store  # noqa: E402
from subnet.devnet.substrate import DevnetSubstrate  # noqa: E402


async def _throughput(url: str, seconds: float, senders: int = 8, depth: int = 32) -> tuple[int, int, float]:
    """(included extrinsics, blocks, elapsed) for `seconds` of pipelined transfers."""
    alice = bittensor_core.Keypair.create_from_uri("//Alice")
    keys = [bittensor_core.Keypair.create_from_uri(f"//bench{i}") for i in range(senders)]
    sub = DevnetSubstrate(url)
    await sub.connect()
    fund = [sub.submit(await sub.compose(bt.calls.Balances.transfer_keep_alive(dest=k.ss58_address, value=10**12)), alice)
            for k in keys]
    assert all(r.success for r in await asyncio.gather(*fund))
    dest = dev_address("//Charlie")
    done = 0
    stop_at = time.monotonic() + seconds
    start_block = await sub.block_number()
    t0 = time.monotonic()

    async def sender(kp) -> None:
        nonlocal done
        call = await sub.compose(bt.calls.Balances.transfer_keep_alive(dest=dest, value=1000))
        inflight: set[asyncio.Task] = set()
        while time.monotonic() < stop_at:
            while len(inflight) < depth and time.monotonic() < stop_at:
                inflight.add(asyncio.create_task(sub.submit(call, kp)))
            finished, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            done += sum(1 for t in finished if t.result().success)
        for t in asyncio.as_completed(inflight):
            done += int((await t).success)

    await asyncio.gather(*(sender(k) for k in keys))
    elapsed = time.monotonic() - t0
    blocks = await sub.block_number() - start_block
    await sub.close()
    return done, blocks, elapsed


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
    args = ap.parse_args()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        with running_devnet(Path(tmp), block_ms=args.block_ms) as handle:
            done, blocks, elapsed = asyncio.run(_throughput(handle.url, args.seconds))
    xps = done / elapsed
    bps = blocks / elapsed
    epoch = _epoch_seconds()
    print(f"devnet bench (block {args.block_ms} ms, {args.seconds:.0f} s of pipelined signed transfers)")
    print(f"  throughput: {xps:8.1f} extrinsics/s at {bps:5.2f} blocks/s "
          f"-> {xps / max(bps, 1e-9):7.1f} extrinsics per block sustained")
    print(f"  epoch (256 uids, 64 validators): {epoch * 1000:7.1f} ms "
          f"= {epoch / (DEFAULT_BLOCK_MS / 1000):.3f} x default block ({DEFAULT_BLOCK_MS} ms), "
          f"{epoch / (args.block_ms / 1000):.3f} x bench block ({args.block_ms} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
