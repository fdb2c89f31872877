"""Run the devnet as a separate OS process for a test, and bootstrap a subnet on it.

`running_devnet(tmp_path, block_ms=...)` starts `python -m subnet.devnet start`
on a free loopback port with its state under `tmp_path`, waits until it
answers `devnet_head`, yields a `DevnetHandle`, and always stops it (SIGTERM,
then SIGKILL). The handle can kill -9 and restart the same devnet to test
persistence. `bootstrap(handle, wallet_path, miners=N)` creates a subnet with
an owner, a permitted validator and N miners through the bittensor SDK.

Admin RPC (`produce_blocks`) is off unless asked for: `allow_admin=True` for
tests that fast-forward; the default turns it on only in manual mode
(`block_ms=0`), where nothing else could move the chain to the next epoch.
`finality_lag` (blocks the finalized head trails the best head) defaults to 0
here so existing tests keep instant finality; pass e.g. 2 to exercise it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from subnet.devnet.bootstrap import BootstrapConfig, BootstrapResult
from subnet.devnet.bootstrap import bootstrap as _bootstrap

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair() -> int:
    """A free port whose next port is free too: the devnet's JSON face and its Substrate face (port + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair on 127.0.0.1")


@contextlib.contextmanager
def env_set(name: str, value: str) -> Iterator[None]:
    """`os.environ[name] = value` for the block, then as it was (module-scoped fixtures cannot use monkeypatch)."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def rpc(url: str, method: str, *params: Any, timeout: float = 30.0) -> Any:
    """One blocking JSON-RPC call (a fresh connection; for test control only)."""
    with connect(url, open_timeout=timeout, max_size=64 * 2**20) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}))
        reply = json.loads(ws.recv(timeout=timeout))
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


@dataclass
class DevnetHandle:
    url: str
    network: str
    dir: Path
    port: int
    block_ms: int
    allow_admin: bool = False
    finality_lag: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path = field(default=Path("devnet.log"))

    def start(self, timeout: float = 30.0) -> None:
        cmd = [sys.executable, "-m", "subnet.devnet", "start", "--devnet.port", str(self.port),
               "--devnet.dir", str(self.dir), "--devnet.block_ms", str(self.block_ms),
               "--devnet.allow_admin", "1" if self.allow_admin else "0",  # beats an inherited env
               "--devnet.finality_lag", str(self.finality_lag), "--log-level", "WARNING"]
        log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"devnet exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                rpc(self.url, "devnet_head", timeout=2)
                rpc(self.substrate_url, "system_health", timeout=2)  # served just after the JSON face
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"devnet not ready in {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    @property
    def substrate_url(self) -> str:
        """The Substrate face (what `make_subtensor(self.network)` connects to by default)."""
        from subnet.chain.factory import devnet_substrate_url

        return devnet_substrate_url(self.url)

    def head(self) -> dict:
        return rpc(self.url, "devnet_head")

    def produce_blocks(self, n: int) -> dict:
        """Seal `n` blocks now (admin RPC: needs `running_devnet(..., allow_admin=True)`)."""
        return rpc(self.url, "devnet_produceBlocks", n)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9: no shutdown hooks, exactly like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def running_devnet(tmp_path: Path, block_ms: int = 50, port: int | None = None,
                   allow_admin: bool | None = None, finality_lag: int = 0) -> Iterator[DevnetHandle]:
    """A devnet process for the duration of the block; state under `tmp_path/devnet`.

    `allow_admin` None means: only in manual mode (block_ms 0), which cannot
    reach an epoch otherwise; pass True where a test calls `produce_blocks`.
    """
    port = port or free_port_pair()
    state = Path(tmp_path) / "devnet"
    state.mkdir(parents=True, exist_ok=True)
    admin = block_ms <= 0 if allow_admin is None else allow_admin
    handle = DevnetHandle(url=f"ws://127.0.0.1:{port}", network=f"devnet+ws://127.0.0.1:{port}",
                          dir=state, port=port, block_ms=block_ms, allow_admin=admin,
                          finality_lag=finality_lag, log_path=state / "devnet.log")
    try:
        handle.start()
        yield handle
    finally:
        handle.stop()
        handle.kill()


def bootstrap(handle: DevnetHandle, wallet_path: Path, miners: int = 3, **overrides: Any) -> BootstrapResult:
    """Subnet + owner + permitted validator + `miners` miners, via the SDK."""
    cfg = BootstrapConfig(wallet_path=Path(wallet_path), miners=miners, **overrides)
    return _bootstrap(handle.url, cfg)
