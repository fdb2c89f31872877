"""A whole Tessera network as processes for end-to-end tests: devnet, validator, miners.

Built on the demo's `ProcessGroup` (own process groups, SIGTERM then SIGKILL,
no orphans) and the devnet harness; neurons are the real `neurons/*.py`
entry points with real wallets from the devnet bootstrap.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.devnet import DevnetHandle, bootstrap
from subnet.demo import REPO_ROOT, Child, ProcessGroup

# Small, fast windows: 0.5 s blocks, 16-block windows, H=6 inner steps.
FAST_FLAGS = {
    "--protocol.window_blocks": "16",
    "--train.inner_steps": "6",
    "--train.lr": "3e-3",
    "--train.warmup_steps": "6",
    "--validator.poll_interval": "0.5",
    "--validator.watch_interval": "0.5",
    "--store.peer_request_timeout_s": "3",  # 8 s windows: a dead store must fail inside one
}


@dataclass
class Network:
    devnet: DevnetHandle
    root: Path
    boot: Any  # subnet.devnet.bootstrap.BootstrapResult
    procs: ProcessGroup
    flags: dict[str, str] = field(default_factory=lambda: dict(FAST_FLAGS))

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    def state_dir(self, name: str) -> Path:
        return self.root / "state" / name

    def store_dir(self, name: str) -> Path:
        return self.root / "store" / name

    def argv(self, role: str, wallet: str, extra: Sequence[str] = ()) -> list[str]:
        """`role` names the entry point: validator, miner, or adversary_miner (tests only)."""
        argv = [sys.executable, str(REPO_ROOT / "neurons" / f"{role}.py"),
                "--netuid", str(self.boot.netuid), "--wallet.name", wallet, "--wallet.path", str(self.boot.wallet_path),
                "--subtensor.network", self.devnet.network, "--store.location", str(self.store_dir(wallet)),
                "--state_dir", str(self.state_dir(wallet)), "--telemetry.dir", str(self.events_dir),
                "--model.preset", "tiny"]
        if role == "validator":
            argv += ["--competition.owner_uid", str(self.boot.owner.uid)]
        for k, v in self.flags.items():
            if role != "validator" and k.startswith(("--validator.", "--competition.", "--score.")):
                continue
            if role == "validator" and k.startswith(("--train.", "--adversary.")):
                continue
            if role == "miner" and k.startswith("--adversary."):
                continue
            argv += [k, v]
        return argv + list(extra)

    def start_validator(self, name: str = "validator") -> Child:
        return self.procs.start(name, self.argv("validator", self.boot.validator.wallet))

    def start_miner(self, index: int, behaviour: str = "honest", extra: Sequence[str] = ()) -> Child:
        """honest: the production neurons/miner.py; anything else: neurons/adversary_miner.py."""
        m = self.boot.miners[index]
        if behaviour == "honest":
            return self.procs.start(f"miner{index}-honest", self.argv("miner", m.wallet, extra))
        return self.procs.start(f"miner{index}-{behaviour}", self.argv(
            "adversary_miner", m.wallet, ["--adversary.behaviour", behaviour, *extra]))

    def events(self, component: str | None = None, event: str | None = None) -> list[dict]:
        from subnet.telemetry.events import read_events

        out = read_events(self.events_dir) if self.events_dir.exists() else []
        return [e for e in out if (component is None or e.get("component") == component)
                and (event is None or e.get("event") == event)]

    def wait_for(self, what: str, cond: Callable[[], bool], timeout: float, poll: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            dead = [c for c in self.procs.dead()]
            if dead:
                raise AssertionError(f"while waiting for {what}: {dead[0].name} exited "
                                     f"({dead[0].proc.returncode}):\n{dead[0].log_tail(40)}")
            time.sleep(poll)
        logs = "\n".join(f"--- {c.name}\n{c.log_tail(15)}" for c in self.procs.children)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def wait_for_weights_in_effect(net: Network, tempo_blocks: int, block_s: float, timeout: float = 120.0) -> int:
    """Block the caller until the validator's latest weights are what the chain's incentive reflects.

    With commit-reveal (the chain's default) a `weights_set` is only a commit:
    wait for its `weights_revealed`, then one Yuma epoch (tempo) past the
    reveal. Plaintext weights need just the epoch. Returns the block the
    weights took effect at.
    """
    sets = [e for e in net.events("validator", "weights_set") if e.get("success")]
    assert sets, "the validator never set weights successfully"
    last = max(sets, key=lambda e: e["block"])
    effective = last["block"]
    if last.get("pending") or last.get("outcome") == "committed_pending":
        def revealed() -> list[dict]:
            return [e for e in net.events("validator", "weights_revealed")
                    if e.get("outcome") == "revealed" and e["block"] >= last["block"]]

        net.wait_for(f"the reveal of the commit at block {last['block']}", lambda: bool(revealed()), timeout=timeout)
        effective = min(e["block"] for e in revealed())
    net.wait_for("an epoch on the weights", lambda: net.devnet.head()["number"] >= effective + tempo_blocks + 2,
                 timeout=tempo_blocks * block_s * 3 + 10)
    return effective


def start_network(devnet: DevnetHandle, root: Path, miners: int) -> Network:
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    boot = bootstrap(devnet, root / "wallets", miners=miners)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TESSERA_TORCH_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return Network(devnet=devnet, root=root, boot=boot, procs=ProcessGroup(logs_dir=root / "logs", env=env))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
