"""`tessera devnet start|stop|status|bootstrap`, on the neurons' flag engine (subnet/config.py).

`start` runs the devnet in the foreground (or `--detach`ed, logging to
`<dir>/devnet.log`); it writes `<dir>/devnet.pid` ("pid port") once it serves.
`status` and `stop` find the devnet started from `--devnet.dir` through that
pidfile (its port included), so they need no `--devnet.port`: status prints
whether it runs, its pid, endpoint and block height (exit 0; 3 when none runs,
as LSB's `status`); stop sends SIGTERM, waits `--grace_s`, then SIGKILLs.
`bootstrap` creates a subnet with an owner, a staked validator and N miners
(real wallets on disk).

Every `--devnet.*` flag is also an environment variable by the engine's rule
(`--devnet.port` <- TESSERA_DEVNET_PORT, `--devnet.dir` <- TESSERA_DEVNET_DIR,
...) and a key of a `--config FILE.yaml`.
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
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from subnet.config import add_dataclass_flags, config_from_args
from subnet.devnet.bootstrap_flags import BootstrapOptions
from subnet.devnet.config import DEFAULT_BLOCK_MS, DEFAULT_DIR, DEFAULT_PORT, DevnetConfig

EXIT_NOT_RUNNING = 3  # LSB init-script convention for "program is not running"


# --------------------------------------------------------------------------- flags


@dataclass(frozen=True, kw_only=True)
class DevnetFlags:
    """Where the devnet keeps its state and listens."""

    dir: str = DEFAULT_DIR
    """State directory (devnet.sqlite, devnet.pid, devnet.log); status and stop find the devnet through it."""
    port: int = DEFAULT_PORT
    """JSON-RPC port on 127.0.0.1 (9946: clear of a real localnet's 9944/9945); status and stop read it from
    the pidfile."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"--devnet.port must be 1..65535, got {self.port}")


@dataclass(frozen=True, kw_only=True)
class DevnetStartFlags(DevnetFlags):
    """The devnet's settings at start."""

    block_ms: int = DEFAULT_BLOCK_MS
    """Block interval in ms (0 = seal a block per submission: instant-seal mode)."""
    allow_admin: bool = False
    """Serve unauthenticated admin RPC (devnet_produceBlocks): anything on the machine could call it; tests only."""
    finality_lag: int | None = None
    """Blocks the finalized head trails the best head (none: 2 with a block timer, 0 in instant-seal mode)."""
    substrate_port: int | None = None
    """Port of the Substrate JSON-RPC face (what btcli and the SDK's RpcSubstrate speak); none = port + 1, skipped when
    taken; 0 = off."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.block_ms < 0 or (self.finality_lag or 0) < 0:
            raise ValueError("--devnet.block_ms and --devnet.finality_lag must be >= 0")


@dataclass(frozen=True, kw_only=True)
class StartCommand:
    """tessera devnet start."""

    devnet: DevnetStartFlags = field(default_factory=DevnetStartFlags)
    detach: bool = False
    """Run in the background (log in <dir>/devnet.log) and return once it serves."""
    reset: bool = False
    """Delete the existing state directory first (a fresh genesis)."""
    log_level: str = field(default="INFO", metadata={"aliases": ("--log-level",)})
    """loguru level of the devnet's own log (TRACE, DEBUG, INFO, WARNING, ERROR)."""
    ready_timeout_s: float = 30.0
    """With --detach: seconds to wait for the devnet to serve before giving up."""


@dataclass(frozen=True, kw_only=True)
class StopCommand:
    """tessera devnet stop."""

    devnet: DevnetFlags = field(default_factory=DevnetFlags)
    grace_s: float = 10.0
    """Seconds between SIGTERM (a clean shutdown: the state is committed) and SIGKILL."""


@dataclass(frozen=True, kw_only=True)
class StatusCommand:
    """tessera devnet status."""

    devnet: DevnetFlags = field(default_factory=DevnetFlags)
    json: bool = False
    """Print the status as one JSON object."""
    timeout_s: float = 5.0
    """Seconds to wait for the devnet's answer."""


@dataclass(frozen=True, kw_only=True)
class BootstrapFlags(BootstrapOptions):
    """tessera devnet bootstrap: the devnet to use, and what to create (subnet/devnet/bootstrap.py)."""

    devnet: DevnetFlags = field(default_factory=DevnetFlags)


COMMANDS: dict[str, tuple[type, str]] = {
    "start": (StartCommand, "run the devnet (foreground unless --detach)"),
    "stop": (StopCommand, "stop the devnet started from --devnet.dir (SIGTERM, then SIGKILL)"),
    "status": (StatusCommand, "is the devnet of --devnet.dir running: pid, endpoint, block, subnets"),
    "bootstrap": (BootstrapFlags, "create a subnet with owner, validator and miners"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    for name, (cls, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_dataclass_flags(p, cls)
        p.set_defaults(devnet_parser=p, devnet_cls=cls)


def _command(args: argparse.Namespace) -> Any:
    return config_from_args(args.devnet_cls, args, parser=args.devnet_parser)


def devnet_config(flags: DevnetFlags) -> DevnetConfig:
    extra: dict[str, Any] = {}
    if isinstance(flags, DevnetStartFlags):
        extra = dict(block_ms=flags.block_ms, allow_admin=flags.allow_admin, finality_lag=flags.finality_lag,
                     substrate_port=flags.substrate_port)
    return DevnetConfig(port=flags.port, dir=Path(flags.dir).expanduser(), **extra)


# --------------------------------------------------------------------------- the pidfile


class Liveness(Enum):
    RUNNING = "running"
    STOPPED = "stopped"  # no pidfile, or its process is gone
    STALE = "stale"  # the pid lives but is not a devnet (pid reused after a kill -9)


@dataclass(frozen=True, kw_only=True)
class PidRecord:
    """What `<dir>/devnet.pid` says and whether it is still true."""

    liveness: Liveness
    pid: int | None = None
    port: int | None = None


def read_pidfile(dir_: Path) -> PidRecord:
    """The devnet started from `dir_`: its pid and port, checked against /proc (never trusts a stale file)."""
    try:
        parts = (Path(dir_) / "devnet.pid").read_text().split()
        pid = int(parts[0])
        port = int(parts[1]) if len(parts) > 1 else None
    except (FileNotFoundError, ValueError, IndexError):
        return PidRecord(liveness=Liveness.STOPPED)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return PidRecord(liveness=Liveness.STOPPED, pid=pid, port=port)
    except PermissionError:
        return PidRecord(liveness=Liveness.STALE, pid=pid, port=port)  # someone else's process
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        cmdline = b"devnet"  # no /proc (not Linux): trust the pidfile
    live = Liveness.RUNNING if b"devnet" in cmdline else Liveness.STALE
    return PidRecord(liveness=live, pid=pid, port=port)


def _read_pid(cfg: DevnetConfig) -> int | None:
    rec = read_pidfile(cfg.dir)
    return rec.pid if rec.liveness is Liveness.RUNNING else None


# --------------------------------------------------------------------------- start


def _start(cmd: StartCommand) -> int:
    cfg = devnet_config(cmd.devnet)
    existing = _read_pid(cfg)
    if existing is not None:
        print(f"error: a devnet (pid {existing}) already runs from {cfg.dir}; `tessera devnet stop` first",
              file=sys.stderr)
        return 1
    if cmd.reset and cfg.dir.exists():
        shutil.rmtree(cfg.dir)
    cfg.dir.mkdir(parents=True, exist_ok=True)
    if cmd.detach:
        return _start_detached(cmd, cfg)
    from loguru import logger

    from subnet.devnet.server import serve_forever

    logger.remove()
    logger.add(sys.stderr, level=cmd.log_level.upper())
    try:
        asyncio.run(serve_forever(cfg))
    except OSError as exc:
        print(f"error: cannot serve on 127.0.0.1:{cfg.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _start_detached(cmd: StartCommand, cfg: DevnetConfig) -> int:
    argv = [sys.executable, "-m", "subnet.devnet", "start", "--devnet.port", str(cfg.port),
            "--devnet.dir", str(cfg.dir), "--devnet.block_ms", str(cfg.block_ms),
            "--devnet.allow_admin", "1" if cfg.allow_admin else "0", "--log_level", cmd.log_level]
    if cfg.finality_lag is not None:
        argv += ["--devnet.finality_lag", str(cfg.finality_lag)]
    if cfg.substrate_port is not None:
        argv += ["--devnet.substrate_port", str(cfg.substrate_port)]
    with open(cfg.dir / "devnet.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + cmd.ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"error: devnet exited with {proc.returncode}; see {cfg.dir / 'devnet.log'}", file=sys.stderr)
            return 1
        if _read_pid(cfg) == proc.pid:
            print(f"devnet started: pid {proc.pid}, ws://127.0.0.1:{cfg.port}, state {cfg.dir}")
            return 0
        time.sleep(0.1)
    print(f"error: devnet did not become ready within {cmd.ready_timeout_s:.0f} s (pid {proc.pid} left running; "
          f"`tessera devnet stop --devnet.dir {cfg.dir}`)", file=sys.stderr)
    return 1


# --------------------------------------------------------------------------- stop


def stop_devnet(dir_: Path, grace_s: float = 10.0) -> tuple[str, int | None]:
    """Stop the devnet of `dir_`: ("not running" | "stopped" | "killed" | "stale", pid)."""
    rec = read_pidfile(dir_)
    if rec.liveness is Liveness.STOPPED:
        return "not running", rec.pid
    if rec.liveness is Liveness.STALE or rec.pid is None:
        return "stale", rec.pid
    pid = rec.pid
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return "stopped", pid
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped", pid
    while _alive(pid) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    return "killed", pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours is gone for every purpose but the process table
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _stop(cmd: StopCommand) -> int:
    dir_ = Path(cmd.devnet.dir).expanduser()
    outcome, pid = stop_devnet(dir_, cmd.grace_s)
    if outcome == "not running":
        print(f"no devnet running from {dir_}")
    elif outcome == "stale":
        print(f"{dir_ / 'devnet.pid'} names pid {pid}, which is not a devnet; left alone (remove the file)")
        return 1
    elif outcome == "stopped":
        print(f"devnet (pid {pid}) stopped")
    else:
        print(f"devnet (pid {pid}) killed after {cmd.grace_s:.0f} s")
    return 0


# --------------------------------------------------------------------------- status


async def fetch_status(url: str, timeout: float = 10.0) -> dict:
    from subnet.devnet.rpc_client import DevnetRpc

    rpc = DevnetRpc(url, timeout=timeout, connect_retries=2)
    try:
        return await rpc.request("devnet_status")
    finally:
        await rpc.close()


def devnet_status(dir_: Path, port: int, timeout_s: float = 5.0) -> dict[str, Any]:
    """{running, pid, endpoint, block, ...} for the devnet of `dir_` (pidfile first, then its RPC)."""
    rec = read_pidfile(dir_)
    endpoint = f"ws://127.0.0.1:{rec.port or port}"
    out: dict[str, Any] = {"running": False, "dir": str(dir_), "pid": rec.pid, "endpoint": endpoint,
                           "pidfile": rec.liveness.value}
    if rec.liveness is not Liveness.RUNNING:
        return out
    try:
        status = asyncio.run(asyncio.wait_for(fetch_status(endpoint, timeout_s), timeout_s + 1))
    except Exception as exc:  # any failure to answer is the status we report, not a crash
        out.update(running=True, reachable=False, error=f"{type(exc).__name__}: {exc}")
        return out
    out.update(running=True, reachable=True, block=status.get("number"), hash=status.get("hash"),
               block_ms=status.get("block_ms"), subnets=status.get("subnets"), admin=bool(status.get("admin")))
    return out


def _status(cmd: StatusCommand) -> int:
    from loguru import logger

    logger.remove()  # the RPC client's connect retries would repeat the one line printed below
    dir_ = Path(cmd.devnet.dir).expanduser()
    st = devnet_status(dir_, cmd.devnet.port, cmd.timeout_s)
    if cmd.json:
        print(json.dumps(st, indent=2))
    elif not st["running"]:
        extra = " (stale pidfile: pid {} is not a devnet)".format(st["pid"]) if st["pidfile"] == "stale" else ""
        print(f"devnet not running from {dir_}{extra}")
    elif not st.get("reachable"):
        print(f"devnet pid {st['pid']} runs from {dir_} but does not answer at {st['endpoint']}: {st['error']}")
    else:
        print(f"devnet running: pid {st['pid']}, {st['endpoint']}, state {dir_}")
        print(f"block {st['block']}  hash {st['hash']}  block time {st['block_ms']} ms"
              + ("  admin RPC on" if st.get("admin") else ""))
        print(f"subnets {st['subnets']}")
    if not st["running"]:
        return EXIT_NOT_RUNNING
    return 0 if st.get("reachable") else 1


# --------------------------------------------------------------------------- dispatch


def run(args: argparse.Namespace) -> int:
    cmd = _command(args)
    if args.action == "start":
        return _start(cmd)
    if args.action == "stop":
        return _stop(cmd)
    if args.action == "status":
        return _status(cmd)
    if args.action == "bootstrap":
        from subnet.devnet.bootstrap import run_bootstrap

        return run_bootstrap(cmd, devnet_config(cmd.devnet).url)
    raise SystemExit(f"unknown action {args.action}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m subnet.devnet", description=(__doc__ or "").splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
