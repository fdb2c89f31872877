"""`tessera devnet bootstrap`: a ready-to-use subnet on a running devnet.

Creates real bittensor wallets on disk (unencrypted coldkeys: devnet only),
funds them from //Alice, registers a subnet (owner), starts it, sets demo
hyperparameters, registers a validator and N miners, lowers MinAllowedWeights
(owner call), stakes the validator, and waits for the next epoch so the validator
holds a validator permit. Everything goes through the bittensor SDK against
`DevnetSubstrate`, exactly as on a chain.

Hyperparameters: what a real subnet owner can change goes through owner calls
(`bt.SetHyperparameter`, i.e. `btcli sudo set`): MinAllowedWeights (subtensor's
1024 would make the SDK refuse every vector on a small subnet), ImmunityPeriod
and, if asked, CommitRevealWeightsEnabled (left on by default, as on chain).
The fast demo windows (Tempo, WeightsSetRateLimit, ActivityCutoff) are root
calls on subtensor and are applied through Sudo as DEVNET-only settings.
Every change is printed (stderr) and listed in the result's `changes`.
The chain refuses admin calls (owner and most root ones) in the last
AdminFreezeWindow blocks before an epoch, so bootstrap waits out that window
before each one, as an operator would; each owner call sets a different
hyperparameter, so the per-hyperparameter owner rate limit (2 tempos) never
binds within one bootstrap.

Its flags (`BootstrapOptions`) are on the neurons' flag engine, so each is also
a TESSERA_* variable and a key of `--config FILE.yaml`. Wallets go to
`~/.tessera/devnet-wallets` unless `--wallet.path` (or
TESSERA_WALLET_PATH, then BT_WALLET_PATH) says otherwise: never into the real
`~/.bittensor/wallets` by default, since these keys are unencrypted.
Waiting for the epoch uses timer blocks, so no admin RPC is needed; a devnet
started with `--devnet.allow_admin` is fast-forwarded instead, and a
manual-mode devnet (`--devnet.block_ms 0`) needs that flag.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bittensor as bt
import bittensor_core

from subnet.devnet.bootstrap_flags import DEFAULT_WALLET_PATH, BootstrapOptions
from subnet.devnet.config import ADMIN_ENV, ADMIN_FLAG, RAO_PER_TAO
from subnet.errors import ChainError

BITTENSOR_WALLET_PATH = "~/.bittensor/wallets"
WALLET_PATH_ENVS = ("TESSERA_WALLET_PATH", "BT_WALLET_PATH")  # first set wins
# Waiting for timer blocks: this many times the nominal time, plus slack for a busy machine.
WAIT_BUDGET_FACTOR = 3.0
WAIT_SLACK_S = 15.0


@dataclass(frozen=True, kw_only=True)
class BootstrapConfig:
    """What to create. Amounts in TAO, times in blocks."""

    wallet_path: Path
    miners: int = 4
    netuid: int | None = None  # reuse an existing subnet (owned by the owner wallet)
    # DEVNET-only (root calls on a real chain, sent through Sudo as //Alice): fast demo windows.
    tempo: int = 20
    weights_rate_limit: int = 2
    activity_cutoff: int = 5000
    # Owner calls (what a real subnet owner can do with `btcli sudo set`).
    # Subtensor's 1024 exceeds a small subnet's n, and the SDK then refuses every vector. 1 lets any
    # client set any vector; None sets it to the uid count (the validator's floor spread then meets it).
    min_allowed_weights: int | None = 1
    immunity_period: int = 100
    commit_reveal: bool | None = None  # None: keep the chain's default (on, as on subtensor)
    validator_stake_tao: float = 1000.0
    fund_tao: float = 100.0
    owner_fund_tao: float = 1000.0
    prefix: str = ""  # wallet name prefix, e.g. "t1-"
    wait_for_permit: bool = True


@dataclass(frozen=True, kw_only=True)
class NeuronInfo:
    wallet: str  # wallet name; hotkey name is "default"
    hotkey: str
    coldkey: str
    uid: int


@dataclass(frozen=True, kw_only=True)
class BootstrapResult:
    netuid: int
    wallet_path: str
    owner: NeuronInfo
    validator: NeuronInfo
    miners: list[NeuronInfo] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # hyperparameters bootstrap changed, and how

    def to_dict(self) -> dict:
        return asdict(self)


def ensure_wallet(name: str, path: Path) -> bt.Wallet:
    """A wallet with an unencrypted coldkey and a 'default' hotkey, created if missing."""
    wallet = bt.Wallet(name, "default", str(path))
    if not (path / name / "coldkey").exists():
        wallet.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
    if not (path / name / "hotkeys" / "default").exists():
        wallet.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
    return wallet


def _ok(result, what: str):
    if not result.success:
        raise ChainError(f"bootstrap: {what} failed: {result.message}")
    return result


async def bootstrap_async(url: str, cfg: BootstrapConfig) -> BootstrapResult:
    from subnet.devnet.substrate import DevnetSubstrate

    path = Path(cfg.wallet_path).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    owner = ensure_wallet(f"{cfg.prefix}owner", path)
    validator = ensure_wallet(f"{cfg.prefix}validator", path)
    miners = [ensure_wallet(f"{cfg.prefix}miner-{i}", path) for i in range(cfg.miners)]
    alice = bittensor_core.Keypair.create_from_uri("//Alice")

    substrate = DevnetSubstrate(url)
    async with bt.Client("local", substrate=substrate) as client:
        # Fund every coldkey from //Alice in one block (nonces pipelined).
        funding = [(owner, cfg.owner_fund_tao), (validator, cfg.fund_tao + cfg.validator_stake_tao)]
        funding += [(m, cfg.fund_tao) for m in miners]
        results = await asyncio.gather(*[
            client.execute(bt.Transfer(dest_ss58=w.coldkeypub.ss58_address, amount_tao=amount), alice)
            for w, amount in funding
        ])
        for result in results:
            _ok(result, "funding")

        netuid = cfg.netuid
        if netuid is None:
            result = _ok(await client.execute(bt.RegisterSubnet(), owner), "register_network")
            netuid = int(result.data["netuid"])
            _ok(await client.execute(bt.StartCall(netuid=netuid), owner), "start_call")
        elif not await client.query(("SubtensorModule", "NetworksAdded"), [netuid]):
            raise ChainError(f"bootstrap: subnet {netuid} does not exist")

        owner_ss58 = owner.coldkeypub.ss58_address
        changes: list[str] = []
        # DEVNET-only fast windows: root-only on subtensor (tempo also outside the owner's 360..50400
        # bounds), so they go through Sudo (//Alice), which a real subnet owner does not hold.
        for method, item, value in (
            ("sudo_set_tempo", "Tempo", cfg.tempo),
            ("sudo_set_weights_set_rate_limit", "WeightsSetRateLimit", cfg.weights_rate_limit),
            ("sudo_set_activity_cutoff", "ActivityCutoff", cfg.activity_cutoff),
        ):
            changes += await _set_hparam(client, netuid, item, value, root=(method, alice))
        # Owner calls, as `btcli sudo set` would send them.
        changes += await _set_hparam(client, netuid, "ImmunityPeriod", cfg.immunity_period,
                                     owner=("immunity_period", owner))
        if cfg.commit_reveal is not None:
            changes += await _set_hparam(client, netuid, "CommitRevealWeightsEnabled", cfg.commit_reveal,
                                         owner=("commit_reveal_weights_enabled", owner))

        regs = await asyncio.gather(*[
            client.execute(bt.BurnedRegister(netuid=netuid), w) for w in [validator, *miners]
        ])
        for result in regs:
            _ok(result, "burned_register")
        # A new subnet starts at MinAllowedWeights 1 (init_new_network; the runtime's initial value is
        # 1024, and the SDK refuses fewer weights than it), so this is an owner call only when the
        # configured value differs (None: the uid count, which validators meet by spreading a floor).
        n = int(await client.query(("SubtensorModule", "SubnetworkN"), [netuid]))
        changes += await _set_hparam(client, netuid, "MinAllowedWeights",
                                     n if cfg.min_allowed_weights is None else cfg.min_allowed_weights,
                                     owner=("min_allowed_weights", owner))
        for line in changes:
            print(f"bootstrap: {line}", file=sys.stderr, flush=True)
        stake = bt.AddStake(
            hotkey_ss58=validator.hotkeypub.ss58_address, netuid=netuid, amount_tao=cfg.validator_stake_tao
        )
        _ok(await client.execute(stake, validator), "add_stake")

        if cfg.wait_for_permit:
            await _fast_forward_to_epoch(substrate, client, netuid)

        uids = dict(await client.query_map(("SubtensorModule", "Uids"), [netuid]))

        def info(wallet: bt.Wallet) -> NeuronInfo:
            hotkey = wallet.hotkeypub.ss58_address
            return NeuronInfo(wallet=wallet.name, hotkey=hotkey, coldkey=wallet.coldkeypub.ss58_address,
                              uid=int(uids.get(hotkey, -1)))

        if cfg.wait_for_permit:
            permits = await client.query(("SubtensorModule", "ValidatorPermit"), [netuid])
            vuid = int(uids[validator.hotkeypub.ss58_address])
            if not permits[vuid]:
                raise ChainError("bootstrap: validator has no permit after the epoch")
        owner_hotkey = await client.query(("SubtensorModule", "SubnetOwnerHotkey"), [netuid])
        owner_info = NeuronInfo(wallet=owner.name, hotkey=owner_hotkey, coldkey=owner_ss58,
                                uid=int(uids.get(owner_hotkey, -1)))
        return BootstrapResult(netuid=netuid, wallet_path=str(path), owner=owner_info,
                               validator=info(validator), miners=[info(m) for m in miners], changes=changes)


async def _set_hparam(client, netuid: int, item: str, value, *, owner=None, root=None) -> list[str]:
    """Set one hyperparameter if it differs: `owner=(btcli name, owner wallet)` or
    `root=(AdminUtils call, sudo key)`."""
    before = await client.query(("SubtensorModule", item), [netuid])
    if before == value:
        return []
    if owner is not None or method_windowed(root[0] if root else ""):
        await wait_admin_window(client._substrate, client, netuid)
    if owner is not None:
        name, wallet = owner
        _ok(await client.execute(bt.SetHyperparameter(netuid=netuid, name=name, value=value), wallet), name)
        how = f"owner call (btcli sudo set --netuid {netuid} --name {name} --value {value})"
    else:
        method, sudo_key = root
        inner = await client.compose(getattr(bt.calls.AdminUtils, method)(netuid, value))
        _ok(await client.submit_call(bt.calls.Sudo.sudo(call=inner), sudo_key), method)
        how = f"DEVNET-only root call (Sudo {method}; not available to a subnet owner)"
    return [f"{item} {before} -> {value}: {how}"]


def method_windowed(method: str) -> bool:
    """Root setters that the freeze window binds too (`runtime/admin_limits.py`)."""
    from subnet.devnet.runtime.admin_limits import OWNER_LIMITED, ROOT_WINDOWED, VERSION_KEY_SETTER

    return method in OWNER_LIMITED or method in ROOT_WINDOWED or method == VERSION_KEY_SETTER


async def _next_epoch(client, netuid: int) -> tuple[int, int]:
    """(head, block of the next epoch) from the chain's `LastEpochBlock + tempo` schedule."""
    tempo = int(await client.query(("SubtensorModule", "Tempo"), [netuid]))
    last = int(await client.query(("SubtensorModule", "LastEpochBlock"), [netuid]))
    return await client.block(), last + tempo


async def wait_admin_window(substrate, client, netuid: int) -> None:
    """If the next block falls in the admin freeze window, wait until it is the epoch block (open again)."""
    window = int(await client.query(("SubtensorModule", "AdminFreezeWindow")) or 0)
    head, next_epoch = await _next_epoch(client, netuid)
    if next_epoch - (head + 1) >= window:
        return
    await advance_blocks(substrate, max(0, next_epoch - 1 - head), start=head)


async def _fast_forward_to_epoch(substrate, client, netuid: int) -> None:
    """Get the chain past the subnet's next epoch (so permits are assigned)."""
    block, next_epoch = await _next_epoch(client, netuid)
    await advance_blocks(substrate, max(1, next_epoch - block), start=block)


async def advance_blocks(substrate, count: int, *, start: int | None = None) -> int:
    """Until the head is `count` blocks past `start` (default: the head now); returns the head.

    An admin-enabled devnet seals them at once (`devnet_produceBlocks`); any
    other waits for its timer, polling the head within a budget derived from
    the block interval. Manual mode has no timer, so it needs the admin flag.
    """
    head = await substrate._call("devnet_head")
    number = int(head["number"])
    target = (number if start is None else int(start)) + int(count)
    if number >= target:
        return number
    if head.get("admin"):
        return int((await substrate._call("devnet_produceBlocks", target - number))["number"])
    block_ms = int(head.get("block_ms") or 0)
    if block_ms <= 0:
        raise ChainError(
            f"bootstrap: the devnet runs in manual mode (block_ms 0) without admin RPC, "
            f"so nothing can produce the {target - number} blocks to the next epoch",
            remediation=f"restart it with {ADMIN_FLAG} (or {ADMIN_ENV}=1), or with "
                        "--devnet.block_ms > 0 so blocks come on a timer",
        )
    interval = block_ms / 1000.0
    budget = (target - number) * interval * WAIT_BUDGET_FACTOR + WAIT_SLACK_S
    print(f"waiting for {target - number} devnet blocks (~{(target - number) * interval:.0f} s) "
          "to reach the next epoch", file=sys.stderr, flush=True)
    deadline = time.monotonic() + budget
    while number < target:
        if time.monotonic() > deadline:
            raise ChainError(
                f"bootstrap: the devnet reached block {number} of {target} within {budget:.0f} s "
                f"({block_ms} ms blocks); is it stalled?"
            )
        await asyncio.sleep(min(max(interval / 2, 0.02), 0.5))
        number = int((await substrate._call("devnet_head"))["number"])
    return number


def bootstrap(url: str, cfg: BootstrapConfig) -> BootstrapResult:
    """Blocking wrapper around `bootstrap_async` (its own event loop)."""
    return asyncio.run(bootstrap_async(url, cfg))


def default_wallet_path(env: dict[str, str] | None = None) -> str:
    """TESSERA_WALLET_PATH, then BT_WALLET_PATH, then a Tessera-owned folder."""
    env = dict(os.environ) if env is None else env
    for var in WALLET_PATH_ENVS:
        if env.get(var):
            return env[var]
    return DEFAULT_WALLET_PATH


def is_bittensor_wallet_dir(path: Path) -> bool:
    """True for the real bittensor wallet folder (or anything inside it)."""
    real = Path(BITTENSOR_WALLET_PATH).expanduser().resolve()
    here = Path(path).expanduser().resolve()
    return here == real or real in here.parents


def bootstrap_config(opts: BootstrapOptions) -> BootstrapConfig:
    """What to create, from bootstrap's flags."""
    return BootstrapConfig(wallet_path=Path(opts.wallet.path).expanduser(), miners=opts.miners, netuid=opts.netuid,
                           tempo=opts.tempo, weights_rate_limit=opts.weights_rate_limit,
                           validator_stake_tao=opts.validator_stake, prefix=opts.prefix)


def run_bootstrap(opts: BootstrapOptions, url: str) -> int:
    cfg = bootstrap_config(opts)
    print(f"note: bootstrap writes UNENCRYPTED test keys to {cfg.wallet_path}: for this devnet "
          "only, never fund or register them on a real network", file=sys.stderr, flush=True)
    if is_bittensor_wallet_dir(cfg.wallet_path):
        print(f"warning: {cfg.wallet_path} is the bittensor wallet folder; unencrypted test keys "
              "will sit next to your real wallets", file=sys.stderr, flush=True)
    try:
        result = bootstrap(url, cfg)
    except (ChainError, bt.BittensorError) as exc:
        print(f"error: {exc}")
        return 1
    if opts.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"netuid {result.netuid}  (wallets under {result.wallet_path})")
    rows = [("owner", result.owner), ("validator", result.validator)] + [("miner", m) for m in result.miners]
    for role, n in rows:
        print(f"  {role:9s} uid {n.uid:>3}  wallet {n.wallet:<14s} hotkey {n.hotkey}")
    return 0


__all__ = ["BootstrapConfig", "BootstrapOptions", "BootstrapResult", "DEFAULT_WALLET_PATH", "NeuronInfo",
           "advance_blocks", "bootstrap", "bootstrap_async", "bootstrap_config", "default_wallet_path", "RAO_PER_TAO"]
