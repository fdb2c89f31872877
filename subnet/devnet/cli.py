"""`tessera devnet start|stop|status|bootstrap`.

`start` runs the devnet in the foreground (or `--detach`ed, logging to
`<dir>/devnet.log`); `stop` signals the pid in `<dir>/devnet.pid`; `status`
asks the running devnet for its height, subnets and pid; `bootstrap` creates a
subnet with an owner, a staked validator and N miners (real wallets on disk).
Flags: --devnet.port / TESSERA_DEVNET_PORT (9946), --devnet.dir /
TESSERA_DEVNET_DIR (~/.tessera/devnet), --devnet.block_ms /
TESSERA_DEVNET_BLOCK_MS (1000; 0 = instant seal), --devnet.allow_admin /
TESSERA_DEVNET_ALLOW_ADMIN (off: admin RPC such as devnet_produceBlocks is
refused, since anything on the machine could call it), --devnet.finality_lag /
TESSERA_DEVNET_FINALITY_LAG (blocks the finalized head trails the best head;
default 2 with a block timer, 0 in instant-seal mode).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from subnet.config import parse_bool
from subnet.devnet.config import ADMIN_ENV, DevnetConfig, env_defaults


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = env_defaults()
    sub = parser.add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--devnet.port", dest="devnet_port", type=int, default=env["port"])
        p.add_argument("--devnet.dir", dest="devnet_dir", default=env["dir"])

    start = sub.add_parser("start", help="run the devnet (foreground unless --detach)")
    common(start)
    start.add_argument("--devnet.block_ms", dest="devnet_block_ms", type=int, default=env["block_ms"],
                       help="block interval in ms (0 = seal a block per submission)")
    start.add_argument("--devnet.allow_admin", dest="devnet_allow_admin", type=parse_bool, nargs="?",
                       const=True, default=env["allow_admin"], metavar="BOOL",
                       help=f"serve unauthenticated admin RPC (devnet_produceBlocks); tests only "
                            f"(env {ADMIN_ENV}, default off)")
    start.add_argument("--devnet.finality_lag", dest="devnet_finality_lag", type=int, default=env["finality_lag"],
                       metavar="BLOCKS",
                       help="blocks the finalized head trails the best head (default 2; 0 in instant-seal "
                            "mode; env TESSERA_DEVNET_FINALITY_LAG)")
    start.add_argument("--detach", action="store_true", help="run in the background")
    start.add_argument("--reset", action="store_true", help="delete existing state first")
    start.add_argument("--log-level", default="INFO")

    stop = sub.add_parser("stop", help="stop the devnet recorded in the pidfile")
    common(stop)
    status = sub.add_parser("status", help="height, subnets and pid of the running devnet")
    common(status)
    status.add_argument("--json", action="store_true")

    boot = sub.add_parser("bootstrap", help="create a subnet with owner, validator and miners")
    common(boot)
    from subnet.devnet.bootstrap import add_bootstrap_arguments

    add_bootstrap_arguments(boot)


def _config(args: argparse.Namespace) -> DevnetConfig:
    return DevnetConfig(
        port=int(args.devnet_port),
        dir=Path(args.devnet_dir).expanduser(),
        block_ms=int(getattr(args, "devnet_block_ms", 1000)),
        allow_admin=bool(getattr(args, "devnet_allow_admin", False)),
        finality_lag=getattr(args, "devnet_finality_lag", None),
    )


def _read_pid(cfg: DevnetConfig) -> int | None:
    try:
        pid = int(cfg.pid_path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _start(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if not 0 < cfg.port < 65536 or cfg.block_ms < 0 or (cfg.finality_lag or 0) < 0:
        print("error: --devnet.port must be 1..65535, --devnet.block_ms >= 0 and --devnet.finality_lag >= 0",
              file=sys.stderr)
        return 2
    existing = _read_pid(cfg)
    if existing is not None:
        print(f"error: a devnet (pid {existing}) already runs from {cfg.dir}; `tessera devnet stop` first",
              file=sys.stderr)
        return 1
    if args.reset and cfg.dir.exists():
        shutil.rmtree(cfg.dir)
    cfg.dir.mkdir(parents=True, exist_ok=True)
    if args.detach:
        log = open(cfg.dir / "devnet.log", "ab")
        cmd = [sys.executable, "-m", "subnet.devnet", "start", "--devnet.port", str(cfg.port),
               "--devnet.dir", str(cfg.dir), "--devnet.block_ms", str(cfg.block_ms),
               "--devnet.allow_admin", "1" if cfg.allow_admin else "0", "--log-level", args.log_level]
        if cfg.finality_lag is not None:
            cmd += ["--devnet.finality_lag", str(cfg.finality_lag)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                print(f"error: devnet exited with {proc.returncode}; see {cfg.dir / 'devnet.log'}",
                      file=sys.stderr)
                return 1
            if _read_pid(cfg) == proc.pid:
                print(f"devnet started: pid {proc.pid}, ws://127.0.0.1:{cfg.port}, state {cfg.dir}")
                return 0
            time.sleep(0.1)
        print("error: devnet did not become ready within 30 s", file=sys.stderr)
        return 1
    from loguru import logger

    from subnet.devnet.server import serve_forever

    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper())
    try:
        asyncio.run(serve_forever(cfg))
    except OSError as exc:
        print(f"error: cannot serve on 127.0.0.1:{cfg.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _stop(args: argparse.Namespace) -> int:
    cfg = _config(args)
    pid = _read_pid(cfg)
    if pid is None:
        print(f"no devnet running from {cfg.dir}")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"devnet (pid {pid}) stopped")
            return 0
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    print(f"devnet (pid {pid}) killed after 10 s")
    return 0


async def fetch_status(url: str) -> dict:
    from subnet.devnet.rpc_client import DevnetRpc

    rpc = DevnetRpc(url, timeout=10, connect_retries=2)
    try:
        return await rpc.request("devnet_status")
    finally:
        await rpc.close()


def _status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    try:
        status = asyncio.run(fetch_status(cfg.url))
    except (ConnectionError, OSError) as exc:
        print(f"devnet not reachable at {cfg.url}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"devnet pid {status['pid']} on ws://127.0.0.1:{status['port']} ({status['dir']})")
        print(f"height {status['number']}  hash {status['hash']}  block {status['block_ms']} ms"
              + ("  admin RPC on" if status.get("admin") else ""))
        print(f"subnets {status['subnets']}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "start":
        return _start(args)
    if args.action == "stop":
        return _stop(args)
    if args.action == "status":
        return _status(args)
    if args.action == "bootstrap":
        from subnet.devnet.bootstrap import run_bootstrap

        return run_bootstrap(args, _config(args).url)
    raise SystemExit(f"unknown action {args.action}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m subnet.devnet", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
