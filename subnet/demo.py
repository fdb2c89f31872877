"""`tessera demo`: devnet + one validator + N miners, a live scoreboard, a report.

Why a separate orchestrator: the demo is the project's one-command proof that
the pieces work together as real processes talking to a real (local) chain.
It starts every component as its own OS process (logs in
``<run-dir>/logs/<name>.log``, telemetry in ``<run-dir>/events``), shows the
scoreboard until the validator has scored ``--windows`` windows (or the
timeout passes), snapshots the chain, writes ``<run-dir>/report`` and stops
everything it started: SIGTERM to each child's process group, SIGKILL after a
grace period, on success, on error, on Ctrl-C/SIGTERM and at interpreter exit.
Children also get ``PR_SET_PDEATHSIG`` so a SIGKILLed demo leaves no orphans.

Among the miners one is lazy (``noise``) and one copies (``copier``); the rest
are ``honest``, so the report shows whether the competition tells them apart.

The bootstrap's wallets hold unencrypted keys, so they live in a private
temporary directory (mode 0700, outside the run folder) that is deleted when
the demo ends, however it ends short of SIGKILL: the run folder, meant to be
shared, never holds key material (`key_material` finds any).
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger

from subnet.errors import SubnetError
from subnet.telemetry.events import EventLog
from subnet.telemetry.state import RunState

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 9946
GRACE_S = 10.0


class DemoError(SubnetError):
    """The demo could not bring its processes up (devnet, bootstrap, neurons)."""


# --------------------------------------------------------------------------- processes


def _pdeathsig() -> None:  # runs in the child between fork and exec
    """Ask Linux to SIGTERM the child when the demo dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass(kw_only=True)
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    argv: list[str]
    oneshot: bool = False  # expected to exit (0) on its own, e.g. data prepare

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass(kw_only=True)
class ProcessGroup:
    """Every process the demo started; `stop_all` is idempotent and safe from atexit."""

    logs_dir: Path
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, oneshot: bool = False) -> Child:
        log = self.logs_dir / f"{name}.log"
        with log.open("ab") as fh:  # the child keeps its own dup of the fd
            proc = subprocess.Popen(
                list(argv),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=self.env,
                start_new_session=True,  # own process group: Ctrl-C reaches only the demo, which stops it
                preexec_fn=_pdeathsig if sys.platform.startswith("linux") else None,
            )
        child = Child(name=name, proc=proc, log=log, argv=list(argv), oneshot=oneshot)
        self.children.append(child)
        logger.debug("started {} (pid {}): {}", name, proc.pid, " ".join(argv))
        return child

    def dead(self) -> list[Child]:
        """Children that stopped and should not have (a one-shot exiting 0 is fine)."""
        return [c for c in self.children if not c.alive() and not (c.oneshot and c.proc.returncode == 0)]

    def stop_all(self, grace_s: float = GRACE_S) -> None:
        """SIGTERM every live child's group (newest first), then SIGKILL stragglers."""
        live = [c for c in reversed(self.children) if c.alive()]
        for c in live:
            _signal_group(c.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for c in live:
            try:
                c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("{} (pid {}) ignored SIGTERM for {:.0f}s; killing", c.name, c.proc.pid, grace_s)
                _signal_group(c.proc, signal.SIGKILL)
                c.proc.wait()
        for c in self.children:
            _signal_group(c.proc, signal.SIGKILL)  # leftovers in a child's group (grandchildren)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- helpers


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int) -> int:
    """`preferred` when it and the next port (the devnet's Substrate face) are free, else such a kernel-given one."""
    if preferred and port_free(preferred) and port_free(preferred + 1):
        return preferred
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port_free(port + 1):
            return port
    raise DemoError("no free pair of ports on 127.0.0.1 for the devnet")


def wait_for_port(port: int, child: Child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise DemoError(f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.3)
    raise DemoError(f"{child.name} did not listen on 127.0.0.1:{port} within {timeout_s:.0f}s:\n{child.log_tail()}")


def behaviours(n_miners: int) -> list[str]:
    """One lazy `noise` miner and one `copier` among `n` (as many as fit), the rest honest."""
    if n_miners < 1:
        raise DemoError("--miners must be >= 1")
    plan = ["honest"] * n_miners
    if n_miners >= 3:
        plan[-2], plan[-1] = "noise", "copier"
    elif n_miners == 2:
        plan[-1] = "noise"
    return plan


class BlockWatcher:
    """Reads the chain head through the SDK every few seconds for the scoreboard header."""

    def __init__(self, network: str, every_s: float = 3.0) -> None:
        self.network, self.every_s = network, every_s
        self._sub: Any = None
        self._last = 0.0
        self._failures = 0

    def poll(self) -> int | None:
        now = time.monotonic()
        if now - self._last < self.every_s or self._failures >= 5:
            return None
        self._last = now
        try:
            if self._sub is None:
                from subnet.chain import make_subtensor

                self._sub = make_subtensor(self.network)
            return int(self._sub.block)
        except Exception as exc:  # the header just shows the last known block
            self._failures += 1
            logger.debug("block poll failed ({}): {}", self._failures, exc)
            return None


# --------------------------------------------------------------------------- key hygiene

# Field names of a bittensor keyfile that only a secret key has (public ones carry
# publicKey/accountId/ss58Address), and the names keyfiles are saved under.
SECRET_MARKERS = (b'"secretPhrase"', b'"secretSeed"', b'"privateKey"')
KEYFILE_NAMES = frozenset({"coldkey", "coldkeypub.txt"})


def make_wallet_dir() -> Path:
    """A run-private directory (0700, outside the run folder) for the demo's test wallets."""
    return Path(tempfile.mkdtemp(prefix="tessera-demo-wallets-"))


def remove_wallet_dir(path: Path) -> None:
    """Delete the demo's test wallets; idempotent, safe from atexit."""
    shutil.rmtree(path, ignore_errors=True)


def key_material(root: Path, max_bytes: int = 4 * 2**20) -> list[Path]:
    """Files under `root` that are, or contain, bittensor key material.

    A file counts when it is named like a keyfile (`coldkey`, `coldkeypub.txt`,
    anything under a `hotkeys/` folder) or its first `max_bytes` hold a
    secret-key field name; large binary artifacts are only scanned that far.
    """
    found: list[Path] = []
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if path.name in KEYFILE_NAMES or path.parent.name == "hotkeys":
            found.append(path)
            continue
        try:
            with path.open("rb") as fh:
                head = fh.read(max_bytes)
        except OSError:
            continue
        if any(marker in head for marker in SECRET_MARKERS):
            found.append(path)
    return found


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True, kw_only=True)
class Neuron:
    name: str  # wallet (coldkey) name
    hotkey: str  # hotkey name
    uid: int | None
    ss58: str | None = None


@dataclass(frozen=True, kw_only=True)
class Bootstrap:
    netuid: int
    wallet_path: Path
    validator: Neuron
    miners: tuple[Neuron, ...]
    raw: dict[str, Any]


def _neuron(d: Any) -> Neuron:
    """One `NeuronInfo` of the bootstrap JSON: wallet name, hotkey ss58, uid (hotkey name `default`)."""
    return Neuron(
        name=str(d["wallet"]),
        hotkey=str(d.get("hotkey_name") or "default"),
        uid=int(d["uid"]),
        ss58=d.get("hotkey"),
    )


def parse_bootstrap(raw: dict[str, Any], wallet_path: Path) -> Bootstrap:
    """Read `tessera devnet bootstrap --json` output (tolerant of key spellings)."""
    try:
        miners = tuple(_neuron(m) for m in raw["miners"])
        return Bootstrap(
            netuid=int(raw["netuid"]),
            wallet_path=Path(raw.get("wallet_path") or wallet_path),
            validator=_neuron(raw["validator"]),
            miners=miners,
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DemoError(f"unexpected bootstrap output ({exc}): {json.dumps(raw)[:400]}") from exc


def run_bootstrap(python: str, network_args: list[str], n_miners: int, wallet_path: Path, logs: Path,
                  env: dict[str, str]) -> Bootstrap:
    argv = [python, "-m", "subnet.cli", "devnet", "bootstrap", *network_args,
            "--miners", str(n_miners), "--wallet.path", str(wallet_path), "--json"]
    log = logs / "bootstrap.log"
    with log.open("ab") as err:
        res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, cwd=REPO_ROOT, env=env, timeout=300)
    out = res.stdout.decode(errors="replace")
    log.open("a").write(out)
    if res.returncode != 0:
        raise DemoError(f"devnet bootstrap failed ({res.returncode}); see {log}:\n{out[-2000:]}")
    # The JSON document is the last thing on stdout; anything before is chatter.
    start = out.find("{")
    try:
        raw = json.loads(out[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        raw = None
    if not isinstance(raw, dict):
        raise DemoError(f"devnet bootstrap printed no JSON object; see {log}")
    return parse_bootstrap(raw, wallet_path)


# --------------------------------------------------------------------------- neuron argv

# The devnet's fast blocks need devnet-only timing: the neurons' defaults fit 12 s blocks
# (50-block windows, 6 s store polls). `--neuron-arg` comes later on the line and wins.
DEVNET_FLAGS: dict[str, tuple[str, ...]] = {
    "miner": ("--protocol.window_blocks", "20"),
    "validator": ("--protocol.window_blocks", "20", "--validator.poll_interval", "1.0",
                  "--validator.watch_interval", "0.5"),
}


def neuron_argv(
    python: str,
    role: str,
    who: Neuron,
    *,
    boot: Bootstrap,
    network: str,
    run_dir: Path,
    preset: str,
    debug: bool,
    behaviour: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of one neuron (flags as in neurons/*.py).

    A miner with a `behaviour` other than honest runs neurons/adversary_miner.py (the
    production neurons/miner.py has no attack code or flags).
    """
    tag = who.name  # wallet names are unique per bootstrap (validator, miner-0, ...)
    adversary = role == "miner" and behaviour not in (None, "honest")
    argv = [
        python, str(REPO_ROOT / "neurons" / ("adversary_miner.py" if adversary else f"{role}.py")),
        "--netuid", str(boot.netuid),
        "--wallet.name", who.name,
        "--wallet.hotkey", who.hotkey,
        "--wallet.path", str(boot.wallet_path),
        "--subtensor.network", network,
        "--store.location", str(run_dir / "store" / tag),
        "--state_dir", str(run_dir / "state" / tag),
        "--telemetry.dir", str(run_dir / "events"),
        "--model.preset", preset,
    ]
    if adversary:
        argv += ["--adversary.behaviour", str(behaviour)]
    if debug:
        argv.append("--logging.debug")
    return argv + list(DEVNET_FLAGS[role]) + list(extra)


# --------------------------------------------------------------------------- command


@dataclass(frozen=True, kw_only=True)
class DemoDevnet:
    """The demo's devnet."""

    port: int = DEFAULT_PORT
    """Devnet port; a free one is picked if taken, 0 = any."""
    block_ms: int = 1000
    """Devnet block time in ms."""


@dataclass(frozen=True, kw_only=True)
class DemoModel:
    """The model every demo neuron trains."""

    preset: str = "tiny"
    """Model preset (tiny, small, 125m, 1b, 8b)."""


@dataclass(frozen=True, kw_only=True)
class DemoLogging:
    """The neurons' log level."""

    debug: bool = False
    """Neurons (and the demo) log at DEBUG."""


@dataclass(frozen=True, kw_only=True)
class DemoCommand:
    """tessera demo: devnet + one validator + N miners, a live scoreboard, a report."""

    miners: int = field(default=4, metadata={"env": "TESSERA_DEMO_MINERS"})
    """Number of miners (4: 2 honest, 1 noise, 1 copier)."""
    windows: int = field(default=8, metadata={"env": "TESSERA_DEMO_WINDOWS"})
    """Stop after the validator has scored this many windows."""
    run_dir: str | None = field(default=None, metadata={"aliases": ("--run-dir",), "env": "TESSERA_DEMO_RUN_DIR"})
    """Run folder (none: reports/demo-<timestamp>)."""
    devnet: DemoDevnet = field(default_factory=DemoDevnet)
    model: DemoModel = field(default_factory=DemoModel)
    logging: DemoLogging = field(default_factory=DemoLogging)
    timeout: float = field(default=0.0, metadata={"env": "TESSERA_DEMO_TIMEOUT"})
    """Give up after this many seconds (0: 300 + 90 per window)."""
    keep_running: bool = field(default=False, metadata={"aliases": ("--keep-running",),
                                                        "env": "TESSERA_DEMO_KEEP_RUNNING"})
    """After the report, keep everything up until Ctrl-C."""
    plain: bool = field(default=False, metadata={"env": "TESSERA_DEMO_PLAIN"})
    """Plain-text scoreboard even on a TTY."""
    neuron_args: tuple[str, ...] = field(default=(), metadata={
        "aliases": ("--neuron-arg",), "append": True, "env": "TESSERA_DEMO_NEURON_ARGS"})
    """Extra flag passed to every neuron (repeatable), e.g. --neuron-arg=--protocol.window_blocks=5."""

    def __post_init__(self) -> None:
        if self.miners < 1:
            raise DemoError("--miners must be >= 1")
        if self.windows < 1:
            raise DemoError("--windows must be >= 1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from subnet.config import EPILOG, add_dataclass_flags

    parser.epilog = EPILOG
    add_dataclass_flags(parser, DemoCommand)
    parser.set_defaults(demo_parser=parser)


def _start_data_prepare(procs: ProcessGroup, python: str, preset: str) -> Child | None:
    """Warm the corpus/tokenizer cache once, so N neurons do not all build it at start."""
    from subnet.model.presets import get_preset

    p = get_preset(preset)  # ModelError (typed) for an unknown preset, before anything starts
    if p.tokenizer != "embedded":
        return None
    return procs.start("data-prepare", [python, "-m", "subnet.cli", "data", "prepare",
                                        "--data.vocab_size", str(p.vocab_size)], oneshot=True)


def _wait_exit(child: Child, timeout_s: float) -> None:
    try:
        rc = child.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DemoError(f"{child.name} did not finish within {timeout_s:.0f}s; see {child.log}") from None
    if rc != 0:
        raise DemoError(f"{child.name} failed ({rc}):\n{child.log_tail()}")


def _install_signal_handlers() -> None:
    """SIGTERM/SIGHUP become KeyboardInterrupt so the `finally` cleanup runs."""

    def raise_interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, raise_interrupt)
        except (ValueError, OSError):  # not the main thread
            pass


def run(ns: argparse.Namespace) -> int:
    from subnet.config import config_from_args
    from subnet.telemetry.scoreboard import Scoreboard

    args = config_from_args(DemoCommand, ns, parser=ns.demo_parser)
    plan = behaviours(args.miners)
    default_dir = REPO_ROOT / "reports" / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = (Path(args.run_dir).expanduser() if args.run_dir else default_dir).resolve()
    logs, events_dir = run_dir / "logs", run_dir / "events"
    for d in (logs, events_dir, run_dir / "store", run_dir / "state"):
        d.mkdir(parents=True, exist_ok=True)
    wallets = make_wallet_dir()  # unencrypted test keys: never inside the (shareable) run folder
    atexit.register(remove_wallet_dir, wallets)  # atexit is LIFO: runs after stop_all below
    timeout_s = args.timeout or 300.0 + 90.0 * args.windows
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    python = sys.executable
    procs = ProcessGroup(logs_dir=logs, env=env)
    atexit.register(procs.stop_all)
    _install_signal_handlers()
    logger.remove()  # the demo's own chatter stays short; neurons log to their files
    logger.add(sys.stderr, level="DEBUG" if args.logging.debug else "WARNING")
    demo_log = EventLog(events_dir / "demo.jsonl", component="demo")
    print(f"tessera demo: run folder {run_dir}", flush=True)
    print(f"test wallets (UNENCRYPTED devnet keys, deleted when the demo ends): {wallets}", flush=True)
    status = 1
    state: RunState | None = None
    network = None
    boot: Bootstrap | None = None
    try:
        prepare = _start_data_prepare(procs, python, args.model.preset)  # overlaps the devnet start-up
        port = pick_port(args.devnet.port)
        if args.devnet.port and port != args.devnet.port:
            print(f"port {args.devnet.port} is taken; devnet on {port}", flush=True)
        network = f"devnet+ws://127.0.0.1:{port}"
        devnet_args = ["--devnet.dir", str(run_dir / "devnet"), "--devnet.port", str(port)]
        devnet = procs.start("devnet", [python, "-m", "subnet.cli", "devnet", "start", *devnet_args,
                                        "--devnet.block_ms", str(args.devnet.block_ms)])
        wait_for_port(port, devnet, timeout_s=120)
        wait_for_port(port + 1, devnet, timeout_s=60)  # the Substrate face the neurons' SDK client speaks
        demo_log.emit("devnet_started", port=port, network=network, pid=devnet.proc.pid)
        print(f"devnet up at {network} (pid {devnet.proc.pid}); bootstrapping 1 validator + {args.miners} miners",
              flush=True)

        boot = run_bootstrap(python, devnet_args, args.miners, wallets, logs, env)
        if len(boot.miners) < args.miners:
            raise DemoError(f"bootstrap registered {len(boot.miners)} miners, asked for {args.miners}")
        demo_log.emit("bootstrapped", netuid=boot.netuid, validator_uid=boot.validator.uid,
                      miner_uids=[m.uid for m in boot.miners])
        demo_log.emit("demo_role", uid=boot.validator.uid, hotkey=boot.validator.ss58, role="validator")
        owner = boot.raw.get("owner") or {}
        if owner.get("uid") is not None and int(owner["uid"]) >= 0:
            demo_log.emit("demo_role", uid=int(owner["uid"]), hotkey=owner.get("hotkey"), role="owner")
        if prepare is not None:
            _wait_exit(prepare, timeout_s=900)
        common = dict(boot=boot, network=network, run_dir=run_dir, preset=args.model.preset,
                      debug=args.logging.debug, extra=args.neuron_args)
        procs.start("validator", neuron_argv(python, "validator", boot.validator, **common))
        for i, (who, beh) in enumerate(zip(boot.miners, plan)):
            procs.start(f"miner{i}-{beh}", neuron_argv(python, "miner", who, behaviour=beh, **common))
            demo_log.emit("demo_miner", uid=who.uid, hotkey=who.ss58, behaviour=beh, wallet=who.name)
        print(f"netuid {boot.netuid}: validator uid {boot.validator.uid}, miners "
              + ", ".join(f"uid {m.uid} {b}" for m, b in zip(boot.miners, plan))
              + f"; logs in {logs}", flush=True)

        deadline = time.monotonic() + timeout_s
        reason: list[str] = []

        blocks = BlockWatcher(network)

        def stop(st: RunState) -> bool:
            head = blocks.poll()
            if head is not None and (st.block is None or head > st.block):
                st.block = head
            if st.windows_scored >= args.windows:
                reason.append("done")
                return True
            for c in procs.dead():
                if c.name in ("devnet", "validator"):
                    reason.append(f"{c.name} exited with {c.proc.returncode}")
                    return True
            if time.monotonic() > deadline:
                reason.append(f"timeout after {timeout_s:.0f}s")
                return True
            return False

        board = Scoreboard(events_dir, title=f"Tessera demo (netuid {boot.netuid})")
        state = board.run(stop, live=False if args.plain else None)
        why = reason[-1] if reason else "stopped"
        status = 0 if why == "done" else 1
        for c in procs.dead():
            print(f"!! {c.name} exited with {c.proc.returncode}; last lines of {c.log}:\n{c.log_tail()}", flush=True)
        print(f"scoreboard stopped: {why} ({state.windows_scored} windows scored)", flush=True)
    except KeyboardInterrupt:
        print("interrupted; writing the report and stopping processes", flush=True)
        status = 130
    except SubnetError as exc:
        print(f"demo failed: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        try:
            _finish(run_dir, events_dir, network, boot, procs, demo_log)
            if args.keep_running and status == 0:
                print("--keep-running: processes stay up; Ctrl-C to stop", flush=True)
                while not procs.dead():
                    time.sleep(1.0)
        except KeyboardInterrupt:
            status = status or 130
        finally:
            procs.stop_all()  # neurons read their keys until here
            remove_wallet_dir(wallets)
            demo_log.emit("demo_stopped", status=status)
            demo_log.close()
    return status


def _finish(run_dir: Path, events_dir: Path, network: str | None, boot: Bootstrap | None,
            procs: ProcessGroup, demo_log: EventLog) -> None:
    """Chain snapshot (if the devnet is still up) and the report folder."""
    from subnet.telemetry.chainsnap import snapshot_chain
    from subnet.telemetry.report import write_report

    chain = None
    devnet_up = any(c.name == "devnet" and c.alive() for c in procs.children)
    if network is not None and boot is not None and devnet_up:
        try:
            chain = snapshot_chain(network, boot.netuid)
        except Exception as exc:  # a report without chain.json beats no report
            logger.warning("chain snapshot failed: {}", exc)
            print(f"chain snapshot failed: {exc}", file=sys.stderr, flush=True)
    paths = write_report(events_dir, run_dir / "report", chain=chain, title="Tessera demo")
    demo_log.emit("report_written", dir=str(paths.dir))
    print(f"\nreport: {paths.dir}\n  {paths.loss_curve.name}, {paths.leaderboard_md.name}, "
          f"{paths.leaderboard_csv.name}, {paths.summary_json.name}"
          + (f", {paths.chain_json.name}" if paths.chain_json else " (no chain.json)"), flush=True)
    print(paths.leaderboard_md.read_text(), flush=True)
