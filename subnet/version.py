"""Is this node's code the version the subnet runs, and the way to update it in place.

Why: a validator or miner left on old scoring or codec code after the subnet
moves on earns nothing and, for a validator, sets weights the chain refuses
(`set_weights` checks the version key first). Subtensor has one published
number for this, the subnet's `WeightsVersionKey` hyperparameter (the owner's
`btcli sudo set --name weights_version`); a node compares its package's
`subnet.SPEC_VERSION` with it at start-up and every `--version.every_windows`
windows. Below the key it warns, or stops (`--version.check refuse`, exit
status 4), or with `--version.autoupdate` updates its checkout (`git pull
--ff-only`, then the reinstall command) and exits with status 75 so pm2 or
systemd (`Restart=always`) starts it again on the new code. It never updates
a checkout that has diverged (a fast-forward or nothing) and never runs
without the operator's flag. A key of 0 means the subnet requires nothing.

The lead validator also stamps its spec version on every manifest. A follower
that reads one newer than its own (`VersionGuard.observe_manifest`, fed by
subnet/sync/bounds.py) treats it like a raised key: at the next window tick it
warns, or stops with exit 4 (`refuse`, which also refuses the manifest), and it
repeats the warning every `--version.every_windows` windows.

`tessera version` prints the versions; `tessera version update --repo DIR`
is the same update step for cron or a deploy script (scripts/autoupdate.sh).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from loguru import logger

import subnet
from subnet.errors import ChainError, SubnetError

REPO_ROOT = Path(__file__).resolve().parents[1]
EXIT_OUTDATED = 4  # refused to run outdated code (systemd: RestartPreventExitStatus=4)
EXIT_RESTART = 75  # EX_TEMPFAIL: updated in place, restart me (pm2/systemd Restart=always)
DEFAULT_INSTALL = "{python} -m pip install -q -e ."


@dataclass(frozen=True, kw_only=True)
class VersionConfig:
    """How the node checks its code against the subnet's published version (WeightsVersionKey)."""

    check: Literal["off", "warn", "refuse"] = "warn"
    """Below the subnet's WeightsVersionKey: warn and go on, refuse (exit 4), or do not check."""
    every_windows: int = 10
    """Check again every this many windows (the owner can raise the key while the node runs)."""
    autoupdate: bool = False
    """When outdated: git pull --ff-only the checkout, run --version.install_cmd, exit 75 so pm2/systemd restarts it."""
    repo_dir: str | None = None
    """Checkout to update (default: the one this code runs from)."""
    remote: str = "origin"
    """Git remote to pull from."""
    branch: str | None = None
    """Branch to pull (default: the checkout's upstream)."""
    install_cmd: str = DEFAULT_INSTALL
    """Reinstall command run after a pull ({python} = this interpreter); empty: none."""

    def __post_init__(self) -> None:
        if self.every_windows < 1:
            raise ValueError(f"--version.every_windows must be >= 1, got {self.every_windows}")


class VersionOutcome(Enum):
    CURRENT = "current"  # equal to the key, or the key is 0
    AHEAD = "ahead"  # newer than the key: fine (the owner raises it after the release)
    OUTDATED = "outdated"  # below the key
    UNKNOWN = "unknown"  # the chain could not be read; the next check tries again


@dataclass(frozen=True, kw_only=True)
class VersionCheck:
    outcome: VersionOutcome
    ours: int
    required: int | None
    detail: str = ""


class VersionOutdated(SubnetError):
    """This node's SPEC_VERSION is below the subnet's WeightsVersionKey and --version.check is refuse."""

    exit_status = EXIT_OUTDATED


class UpdatedRestart(SubnetError):
    """The checkout was updated in place; the process exits so its supervisor starts the new code."""

    exit_status = EXIT_RESTART


def compare(ours: int, required: int) -> VersionCheck:
    """Pure: our spec version against the subnet's key."""
    if required <= 0 or ours == required:
        return VersionCheck(outcome=VersionOutcome.CURRENT, ours=ours, required=required)
    if ours > required:
        return VersionCheck(outcome=VersionOutcome.AHEAD, ours=ours, required=required)
    return VersionCheck(outcome=VersionOutcome.OUTDATED, ours=ours, required=required,
                        detail=f"this node runs spec version {ours} (tessera {subnet.__version__}); the subnet "
                               f"requires {required} (WeightsVersionKey)")


def compare_lead(ours: int, lead: int) -> VersionCheck:
    """Pure: our spec version against the one the lead's manifests carry (newer lead: OUTDATED)."""
    if lead <= ours:
        return VersionCheck(outcome=VersionOutcome.CURRENT if lead == ours else VersionOutcome.AHEAD,
                            ours=ours, required=lead)
    return VersionCheck(outcome=VersionOutcome.OUTDATED, ours=ours, required=lead,
                        detail=f"this node runs spec version {ours} (tessera {subnet.__version__}); the lead "
                               f"validator's manifests come from spec version {lead}")


def check_chain(read_key: Callable[[], int], ours: int = subnet.SPEC_VERSION) -> VersionCheck:
    """Read the subnet's key (e.g. `ChainView.weights_version`) and compare; a chain failure is UNKNOWN."""
    try:
        required = int(read_key())
    except (ChainError, ConnectionError, OSError, TimeoutError) as exc:
        return VersionCheck(outcome=VersionOutcome.UNKNOWN, ours=ours, required=None, detail=str(exc))
    return compare(ours, required)


# --------------------------------------------------------------------------- auto-update


class UpdateOutcome(Enum):
    UP_TO_DATE = "up_to_date"
    UPDATED = "updated"
    FAILED = "failed"  # not a git checkout, diverged, no network, or the reinstall failed


@dataclass(frozen=True, kw_only=True)
class UpdateResult:
    outcome: UpdateOutcome
    old_rev: str | None = None
    new_rev: str | None = None
    detail: str = ""


def _git(repo: Path, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


def install_argv(template: str) -> list[str]:
    return shlex.split(template.replace("{python}", shlex.quote(sys.executable)))


def autoupdate(repo: Path, *, remote: str = "origin", branch: str | None = None,
               install: Sequence[str] | None = None, timeout_s: float = 600.0) -> UpdateResult:
    """`git pull --ff-only` in `repo`, then `install` if HEAD moved. Never raises for a git or install failure."""
    repo = Path(repo).expanduser()
    try:
        head = _git(repo, "rev-parse", "HEAD", timeout_s=timeout_s)
        if head.returncode != 0:
            return UpdateResult(outcome=UpdateOutcome.FAILED, detail=f"{repo} is not a git checkout: "
                                                                     f"{head.stderr.strip()[-300:]}")
        old = head.stdout.strip()
        pull = _git(repo, "pull", "--ff-only", "--quiet", remote, *([branch] if branch else []), timeout_s=timeout_s)
        if pull.returncode != 0:
            return UpdateResult(outcome=UpdateOutcome.FAILED, old_rev=old,
                                detail=f"git pull --ff-only failed: {(pull.stderr or pull.stdout).strip()[-400:]}")
        new = _git(repo, "rev-parse", "HEAD", timeout_s=timeout_s).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return UpdateResult(outcome=UpdateOutcome.FAILED, detail=f"git: {exc}")
    if new == old:
        return UpdateResult(outcome=UpdateOutcome.UP_TO_DATE, old_rev=old, new_rev=new)
    if install:
        try:
            res = subprocess.run(list(install), cwd=repo, capture_output=True, text=True, timeout=timeout_s,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return UpdateResult(outcome=UpdateOutcome.FAILED, old_rev=old, new_rev=new,
                                detail=f"pulled {new[:12]} but the reinstall could not run: {exc}")
        if res.returncode != 0:
            return UpdateResult(outcome=UpdateOutcome.FAILED, old_rev=old, new_rev=new,
                                detail=f"pulled {new[:12]} but the reinstall failed ({res.returncode}): "
                                       f"{(res.stderr or res.stdout).strip()[-400:]}")
    return UpdateResult(outcome=UpdateOutcome.UPDATED, old_rev=old, new_rev=new)


# --------------------------------------------------------------------------- the guard a neuron runs


@dataclass(kw_only=True)
class VersionGuard:
    """Start-up and every-N-windows version checks of one neuron (`NodeRuntime.require_registered` ticks it)."""

    cfg: VersionConfig
    read_key: Callable[[], int]
    role: str = "node"
    ours: int = subnet.SPEC_VERSION
    _ticks: int = 0
    last: VersionCheck | None = field(default=None)
    lead_spec: int | None = None
    """The newest spec version seen on the lead's manifests (None: none seen or none stamped)."""
    _lead_pending: bool = False

    def at_start(self) -> VersionCheck | None:
        return self._check("start-up")

    def observe_manifest(self, spec_version: int) -> None:
        """A manifest the node read carries the lead's spec version; a newer one is acted on at the next tick."""
        if self.lead_spec is None or spec_version > self.lead_spec:
            self.lead_spec = spec_version
            self._lead_pending = spec_version > self.ours

    def tick(self) -> VersionCheck | None:
        """Once per window; checks the chain every `every_windows` ticks, a newly newer lead at once."""
        self._ticks += 1
        if self._ticks % self.cfg.every_windows:
            if self._lead_pending:
                return self._check(f"window {self._ticks}, lead manifest", chain=False)
            return None
        return self._check(f"window check {self._ticks}")

    def _check(self, when: str, *, chain: bool = True) -> VersionCheck | None:
        if self.cfg.check == "off":
            return None
        res = check_chain(self.read_key, self.ours) if chain else None
        if self.lead_spec is not None and (res is None or res.outcome is not VersionOutcome.OUTDATED):
            lead = compare_lead(self.ours, self.lead_spec)
            if lead.outcome is VersionOutcome.OUTDATED or res is None:
                res = lead
        self._lead_pending = False
        if res is None:  # a chain-less check with no lead version seen: nothing to judge
            return None
        self.last = res
        if res.outcome is VersionOutcome.UNKNOWN:
            logger.warning("version check ({}): cannot read WeightsVersionKey: {}; trying again later", when,
                           res.detail)
        elif res.outcome is VersionOutcome.OUTDATED:
            self._outdated(res, when)
        else:
            logger.info("version check ({}): spec version {} {} {} {}", when, res.ours,
                        "matches" if res.outcome is VersionOutcome.CURRENT else "is ahead of",
                        "the subnet's key" if chain else "the lead's manifests", res.required)
        return res

    def _outdated(self, res: VersionCheck, when: str) -> None:
        if self.cfg.autoupdate:
            repo = Path(self.cfg.repo_dir).expanduser() if self.cfg.repo_dir else REPO_ROOT
            up = autoupdate(repo, remote=self.cfg.remote, branch=self.cfg.branch,
                            install=install_argv(self.cfg.install_cmd) if self.cfg.install_cmd.strip() else None)
            if up.outcome is UpdateOutcome.UPDATED:
                raise UpdatedRestart(f"{res.detail}; updated {repo} {up.old_rev[:12] if up.old_rev else '?'} -> "
                                     f"{up.new_rev[:12] if up.new_rev else '?'}; restarting on the new code")
            logger.error("version check ({}): {}; auto-update {}: {}", when, res.detail, up.outcome.value,
                         up.detail or "no newer code on the remote")
        if self.cfg.check == "refuse":
            raise VersionOutdated(res.detail, remediation="update the checkout (git pull && pip install -e .) "
                                                          "or run with --version.autoupdate under pm2/systemd")
        logger.warning("version check ({}): {}; this {} keeps running, but validators may refuse its work "
                       "and the chain its weights (--version.check refuse to stop instead)", when, res.detail,
                       self.role)


def start_guard(cfg: Any, chain: Any, role: str) -> VersionGuard | None:
    """The guard of a neuron config with a `version` group (None without one); runs the start-up check."""
    vcfg = getattr(cfg, "version", None)
    if not isinstance(vcfg, VersionConfig):
        return None
    guard = VersionGuard(cfg=vcfg, read_key=chain.weights_version, role=role)
    guard.at_start()
    return guard


# --------------------------------------------------------------------------- `tessera version`


@dataclass(frozen=True, kw_only=True)
class UpdateCommand:
    """tessera version update."""

    repo: str = str(REPO_ROOT)
    """Checkout to update."""
    remote: str = "origin"
    """Git remote to pull from."""
    branch: str | None = None
    """Branch to pull (default: the checkout's upstream)."""
    install_cmd: str = DEFAULT_INSTALL
    """Reinstall command after a pull ({python} = this interpreter); empty: none."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from subnet.config import add_dataclass_flags

    sub = parser.add_subparsers(dest="version_cmd")
    up = sub.add_parser("update", help="git pull --ff-only + reinstall; exit 75 when updated, 0 when up to date",
                        description="git pull --ff-only + reinstall; exit 75 when updated, 0 when up to date")
    add_dataclass_flags(up, UpdateCommand)
    up.set_defaults(version_parser=up)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "version_cmd", None) != "update":
        print(f"tessera {subnet.__version__} spec_version {subnet.SPEC_VERSION}")
        return 0
    from subnet.config import config_from_args

    cmd = config_from_args(UpdateCommand, args, parser=args.version_parser)
    res = autoupdate(Path(cmd.repo), remote=cmd.remote, branch=cmd.branch,
                     install=install_argv(cmd.install_cmd) if cmd.install_cmd.strip() else None)
    print(f"{res.outcome.value}: {res.old_rev and res.old_rev[:12]} -> {res.new_rev and res.new_rev[:12]}"
          + (f" ({res.detail})" if res.detail else ""))
    return {UpdateOutcome.UPDATED: EXIT_RESTART, UpdateOutcome.UP_TO_DATE: 0}.get(res.outcome, 1)
