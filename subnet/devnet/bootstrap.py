"""`tessera devnet bootstrap`: a ready-to-use subnet on a running devnet.

Creates real bittensor wallets on disk (unencrypted coldkeys: devnet only),
funds them from //Alice, registers a subnet (owner), starts it, sets demo
hyperparameters (short tempo, small WeightsSetRateLimit, MinAllowedWeights 1),
registers a validator and N miners, stakes the validator, and fast-forwards
to the next epoch so the validator holds a validator permit. Everything goes
through the bittensor SDK against `DevnetSubstrate`, exactly as on a chain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bittensor as bt
import bittensor_core

from subnet.devnet.config import RAO_PER_TAO
from subnet.errors import ChainError


@dataclass(frozen=True, kw_only=True)
class BootstrapConfig:
    """What to create. Amounts in TAO, times in blocks."""

    wallet_path: Path
    miners: int = 4
    netuid: int | None = None  # reuse an existing subnet (owned by the owner wallet)
    tempo: int = 20
    weights_rate_limit: int = 2
    min_allowed_weights: int = 1
    immunity_period: int = 100
    activity_cutoff: int = 5000
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
        # Demo values sit outside the SDK's owner-settable bounds (tempo >= 360) or are
        # root-only on chain (WeightsSetRateLimit, ActivityCutoff): set through Sudo (//Alice).
        for method, value in (
            ("sudo_set_tempo", cfg.tempo),
            ("sudo_set_min_allowed_weights", cfg.min_allowed_weights),
            ("sudo_set_immunity_period", cfg.immunity_period),
            ("sudo_set_weights_set_rate_limit", cfg.weights_rate_limit),
            ("sudo_set_activity_cutoff", cfg.activity_cutoff),
        ):
            inner = await client.compose(getattr(bt.calls.AdminUtils, method)(netuid, value))
            _ok(await client.submit_call(bt.calls.Sudo.sudo(call=inner), alice), method)

        regs = await asyncio.gather(*[
            client.execute(bt.BurnedRegister(netuid=netuid), w) for w in [validator, *miners]
        ])
        for result in regs:
            _ok(result, "burned_register")
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
                               validator=info(validator), miners=[info(m) for m in miners])


async def _fast_forward_to_epoch(substrate, client, netuid: int) -> None:
    """Produce blocks (admin RPC) up to and including the subnet's next epoch."""
    tempo = int(await client.query(("SubtensorModule", "Tempo"), [netuid]))
    block = await client.block()
    # Epoch runs at the first block b > head with (b + netuid + 1) % (tempo + 1) == 0.
    wait = (tempo + 1) - ((block + netuid + 1) % (tempo + 1))
    await substrate._call("devnet_produceBlocks", wait or (tempo + 1))


def bootstrap(url: str, cfg: BootstrapConfig) -> BootstrapResult:
    """Blocking wrapper around `bootstrap_async` (its own event loop)."""
    return asyncio.run(bootstrap_async(url, cfg))


def add_bootstrap_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--miners", type=int, default=4)
    p.add_argument("--wallet.path", dest="wallet_path", default=os.environ.get("BT_WALLET_PATH", "~/.bittensor/wallets"))
    p.add_argument("--netuid", type=int, default=None, help="reuse this subnet instead of creating one")
    p.add_argument("--tempo", type=int, default=20)
    p.add_argument("--weights-rate-limit", type=int, default=2)
    p.add_argument("--validator-stake", type=float, default=1000.0, help="TAO staked to the validator")
    p.add_argument("--prefix", default="", help="wallet name prefix")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_bootstrap(args: argparse.Namespace, url: str) -> int:
    if args.miners < 0 or args.tempo <= 0 or args.weights_rate_limit < 0:
        print("error: --miners >= 0, --tempo > 0, --weights-rate-limit >= 0")
        return 2
    cfg = BootstrapConfig(
        wallet_path=Path(args.wallet_path).expanduser(), miners=args.miners, netuid=args.netuid,
        tempo=args.tempo, weights_rate_limit=args.weights_rate_limit,
        validator_stake_tao=args.validator_stake, prefix=args.prefix,
    )
    try:
        result = bootstrap(url, cfg)
    except (ChainError, bt.BittensorError) as exc:
        print(f"error: {exc}")
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"netuid {result.netuid}  (wallets under {result.wallet_path})")
    rows = [("owner", result.owner), ("validator", result.validator)] + [("miner", m) for m in result.miners]
    for role, n in rows:
        print(f"  {role:9s} uid {n.uid:>3}  wallet {n.wallet:<14s} hotkey {n.hotkey}")
    return 0


__all__ = ["BootstrapConfig", "BootstrapResult", "NeuronInfo", "bootstrap", "bootstrap_async", "RAO_PER_TAO"]
