"""The version check (our SPEC_VERSION against the subnet's WeightsVersionKey) and the auto-update path.

Auto-update runs against real git repositories in a tmp dir (a bare "origin"
and a clone), no network; the start-up refusal runs against a real devnet
whose key the owner raised (slow).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import subnet
from subnet.errors import ChainError
from subnet.version import (
    EXIT_OUTDATED,
    EXIT_RESTART,
    UpdatedRestart,
    UpdateOutcome,
    VersionConfig,
    VersionGuard,
    VersionOutcome,
    VersionOutdated,
    autoupdate,
    compare,
)

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def test_compare_golden_values() -> None:
    assert compare(100, 0).outcome is VersionOutcome.CURRENT  # 0: the subnet requires nothing
    assert compare(100, 100).outcome is VersionOutcome.CURRENT
    assert compare(101, 100).outcome is VersionOutcome.AHEAD
    out = compare(100, 101)
    assert out.outcome is VersionOutcome.OUTDATED and "spec version 100" in out.detail and "requires 101" in out.detail


class Key:
    """The subnet's WeightsVersionKey as the chain would answer it; counts reads."""

    def __init__(self, value: int | Exception) -> None:
        self.value, self.reads = value, 0

    def __call__(self) -> int:
        self.reads += 1
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def test_guard_warns_refuses_or_stays_off() -> None:
    key = Key(subnet.SPEC_VERSION + 1)
    warn = VersionGuard(cfg=VersionConfig(check="warn"), read_key=key)
    assert warn.at_start().outcome is VersionOutcome.OUTDATED  # logged, not raised
    with pytest.raises(VersionOutdated) as exc:
        VersionGuard(cfg=VersionConfig(check="refuse"), read_key=key).at_start()
    assert exc.value.exit_status == EXIT_OUTDATED == 4 and "WeightsVersionKey" in str(exc.value)
    off = Key(10**6)
    assert VersionGuard(cfg=VersionConfig(check="off"), read_key=off).at_start() is None and off.reads == 0
    ok = VersionGuard(cfg=VersionConfig(check="refuse"), read_key=Key(subnet.SPEC_VERSION))
    assert ok.at_start().outcome is VersionOutcome.CURRENT


def test_guard_checks_every_n_windows_and_survives_chain_errors() -> None:
    key = Key(subnet.SPEC_VERSION)
    guard = VersionGuard(cfg=VersionConfig(check="refuse", every_windows=3), read_key=key)
    assert [guard.tick() is not None for _ in range(7)] == [False, False, True, False, False, True, False]
    assert key.reads == 2
    key.value = subnet.SPEC_VERSION + 5  # the owner raises the key while the node runs
    assert guard.tick() is None  # window 8: not a check window
    with pytest.raises(VersionOutdated):  # window 9
        guard.tick()
    flaky = VersionGuard(cfg=VersionConfig(check="refuse"), read_key=Key(ChainError("chain unreachable")))
    res = flaky.at_start()
    assert res.outcome is VersionOutcome.UNKNOWN and "unreachable" in res.detail  # retried at the next check
    with pytest.raises(ValueError):
        VersionConfig(every_windows=0)


# --------------------------------------------------------------------------- auto-update on real git repos


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(upstream work tree, bare origin, the node's checkout) with one shared commit."""
    up, origin, node = tmp_path / "upstream", tmp_path / "origin.git", tmp_path / "node"
    up.mkdir()
    git(up, "init", "-q", "-b", "main")
    (up / "VERSION").write_text("100\n")
    git(up, "add", "VERSION")
    git(up, "commit", "-q", "-m", "v100")
    git(tmp_path, "clone", "-q", "--bare", str(up), str(origin))
    git(up, "remote", "add", "origin", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(node))
    return up, origin, node


def _release(up: Path, version: str) -> str:
    (up / "VERSION").write_text(version + "\n")
    git(up, "commit", "-q", "-am", f"v{version}")
    git(up, "push", "-q", "origin", "main")
    return git(up, "rev-parse", "HEAD")


def _install_marker(node: Path) -> list[str]:
    return [sys.executable, "-c", "import pathlib; pathlib.Path('installed').write_text('yes')"]


def test_autoupdate_fast_forwards_and_reinstalls(repos, monkeypatch) -> None:
    up, _, node = repos
    monkeypatch.setattr(os, "environ", GIT_ENV)  # git in the subprocess: no user config
    before = git(node, "rev-parse", "HEAD")
    res = autoupdate(node, install=_install_marker(node))
    assert res.outcome is UpdateOutcome.UP_TO_DATE and res.old_rev == res.new_rev == before
    assert not (node / "installed").exists()  # nothing new: no reinstall
    new = _release(up, "101")
    res = autoupdate(node, install=_install_marker(node))
    assert res.outcome is UpdateOutcome.UPDATED and (res.old_rev, res.new_rev) == (before, new)
    assert (node / "VERSION").read_text() == "101\n" and (node / "installed").read_text() == "yes"


def test_autoupdate_refuses_a_diverged_checkout_and_reports_failures(repos, tmp_path, monkeypatch) -> None:
    up, _, node = repos
    monkeypatch.setattr(os, "environ", GIT_ENV)
    _release(up, "101")
    (node / "local.txt").write_text("operator patch\n")
    git(node, "add", "local.txt")
    git(node, "commit", "-q", "-m", "local patch")
    mine = git(node, "rev-parse", "HEAD")
    res = autoupdate(node, install=_install_marker(node))
    assert res.outcome is UpdateOutcome.FAILED and "ff-only" in res.detail
    assert git(node, "rev-parse", "HEAD") == mine and not (node / "installed").exists()  # untouched
    nothing = tmp_path / "plain"
    nothing.mkdir()
    assert autoupdate(nothing).outcome is UpdateOutcome.FAILED
    git(node, "reset", "-q", "--hard", "origin/main~1")  # back in line, one release behind
    res = autoupdate(node, install=[sys.executable, "-c", "raise SystemExit(3)"])
    assert res.outcome is UpdateOutcome.FAILED and "reinstall failed (3)" in res.detail


def test_guard_autoupdates_then_asks_for_a_restart(repos, monkeypatch) -> None:
    up, _, node = repos
    monkeypatch.setattr(os, "environ", GIT_ENV)
    _release(up, "101")
    install = "{python} -c \"import pathlib; pathlib.Path('installed').write_text('yes')\""
    cfg = VersionConfig(check="warn", autoupdate=True, repo_dir=str(node), install_cmd=install)
    with pytest.raises(UpdatedRestart) as exc:
        VersionGuard(cfg=cfg, read_key=Key(subnet.SPEC_VERSION + 1)).at_start()
    assert exc.value.exit_status == EXIT_RESTART == 75
    assert (node / "VERSION").read_text() == "101\n" and (node / "installed").exists()
    # Nothing newer on the remote: the guard falls back to warn / refuse.
    VersionGuard(cfg=cfg, read_key=Key(subnet.SPEC_VERSION + 1)).at_start()
    with pytest.raises(VersionOutdated):
        VersionGuard(cfg=VersionConfig(check="refuse", autoupdate=True, repo_dir=str(node), install_cmd=""),
                     read_key=Key(subnet.SPEC_VERSION + 1)).at_start()


def test_tessera_version_update_exit_codes(repos) -> None:
    up, _, node = repos
    env = {**GIT_ENV, "PYTHONPATH": str(ROOT)}

    def update() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "subnet.cli", "version", "update", "--repo", str(node),
                               "--install_cmd", ""], capture_output=True, text=True, env=env, timeout=120)

    assert update().returncode == 0
    _release(up, "102")
    res = update()
    assert res.returncode == 75 and res.stdout.startswith("updated:"), res.stdout + res.stderr
    shown = subprocess.run([sys.executable, "-m", "subnet.cli", "version"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert shown.stdout.split() == ["tessera", subnet.__version__, "spec_version", str(subnet.SPEC_VERSION)]


# --------------------------------------------------------------------------- against the chain


@pytest.mark.slow
def test_neuron_refuses_to_start_below_the_subnets_version_key(tmp_path, monkeypatch) -> None:
    from harness.devnet import bootstrap, running_devnet
    from test_devnet_sdk import sudo

    from subnet.chain import make_subtensor
    from subnet.node.chain import ChainView
    from subnet.node.config import MinerNeuronConfig
    from subnet.node.entry import run_neuron
    from subnet.protocol.windows import WindowParams

    monkeypatch.setattr("subnet.node.entry.setup_logging", lambda cfg, role: None)  # keep the suite's handlers
    with running_devnet(tmp_path, block_ms=0, allow_admin=True) as handle:
        boot = bootstrap(handle, tmp_path / "wallets", miners=1)
        sub = make_subtensor(handle.network)
        chain = ChainView(sub, boot.netuid, WindowParams(window_blocks=16))
        assert chain.weights_version() == 0
        assert sudo(sub, "sudo_set_weights_version_key", boot.netuid, subnet.SPEC_VERSION + 1, handle=handle).success
        assert chain.weights_version() == subnet.SPEC_VERSION + 1
        argv = ["--netuid", str(boot.netuid), "--wallet.name", boot.miners[0].wallet, "--wallet.path",
                str(tmp_path / "wallets"), "--subtensor.network", handle.network, "--state_dir",
                str(tmp_path / "state"), "--store.location", str(tmp_path / "store"), "--version.check", "refuse"]
        assert run_neuron(MinerNeuronConfig, "miner", argv) == EXIT_OUTDATED
        assert not (tmp_path / "state").exists()  # refused before any state was written
        sub.close()


def test_autoupdate_script_restarts_only_when_the_checkout_moved(repos, tmp_path) -> None:
    up, _, node = repos
    marker = tmp_path / "restarted"
    env = {**GIT_ENV, "PYTHONPATH": str(ROOT), "TESSERA_REPO": str(node), "PYTHON": sys.executable}

    def script() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(ROOT / "scripts" / "autoupdate.sh"), "touch", str(marker)],
                              capture_output=True, text=True, env=env, timeout=300)

    # The default reinstall (pip install -e .) needs a pyproject and the network; the tmp checkout has
    # neither, so the flag's environment variable (engine rule: TESSERA_INSTALL_CMD) turns it off.
    env["TESSERA_INSTALL_CMD"] = ""
    res = script()
    assert res.returncode == 0 and not marker.exists(), res.stderr
    _release(up, "103")
    res = script()
    assert res.returncode == 0 and marker.exists(), res.stdout + res.stderr
    assert (node / "VERSION").read_text() == "103\n"
