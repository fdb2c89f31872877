"""Stake and balances: add/remove stake at 1:1 TAO<->alpha, transfers.

Ported from subtensor `staking/add_stake.rs` / `remove_stake.rs` and
pallet_balances. Simplified: no AMM (alpha is minted/burned 1:1 for TAO, so a
limit price at or above 1.0 always fills), no fees, no root or childkeys.
"""

from __future__ import annotations

from typing import Any

from subnet.devnet.config import RAO_PER_TAO
from subnet.devnet.runtime.base import DispatchError, as_account, as_int, call
from subnet.devnet.runtime.chain import Runtime

MIN_STAKE = 2_000_000  # DefaultMinStake: 0.002 TAO
EXISTENTIAL_DEPOSIT = 500


def _check_stake_target(rt: Runtime, netuid: Any, hotkey: str) -> int:
    rec = rt.subnet(netuid)
    if rt.hotkey_owner(hotkey) is None:
        raise DispatchError("HotKeyAccountNotExists")
    return rec["netuid"]


@call("SubtensorModule", "add_stake")
def add_stake(rt: Runtime, origin: str, hotkey: Any, netuid: Any, amount_staked: Any) -> None:
    hotkey = as_account(hotkey, "hotkey")
    amount = as_int(amount_staked, "amount_staked")
    netuid = _check_stake_target(rt, netuid, hotkey)
    if amount < MIN_STAKE:
        raise DispatchError("AmountTooLow")
    rt.withdraw(origin, amount, "NotEnoughBalanceToStake")
    rt.credit_stake(netuid, hotkey, origin, amount)
    rt.deposit_event(
        "SubtensorModule",
        "StakeAdded",
        {"coldkey": origin, "hotkey": hotkey, "tao": amount, "alpha": amount, "netuid": netuid},
    )


@call("SubtensorModule", "add_stake_limit")
def add_stake_limit(
    rt: Runtime, origin: str, hotkey: Any, netuid: Any, amount_staked: Any,
    limit_price: Any, allow_partial: Any = False,
) -> None:
    if as_int(limit_price, "limit_price") < RAO_PER_TAO:  # the 1:1 price is 1e9 rao/alpha
        raise DispatchError("SlippageTooHigh")
    add_stake(rt, origin, hotkey, netuid, amount_staked)


@call("SubtensorModule", "remove_stake")
def remove_stake(rt: Runtime, origin: str, hotkey: Any, netuid: Any, amount_unstaked: Any) -> None:
    hotkey = as_account(hotkey, "hotkey")
    amount = as_int(amount_unstaked, "amount_unstaked")
    netuid = _check_stake_target(rt, netuid, hotkey)
    if amount <= 0:
        raise DispatchError("AmountTooLow")
    row = rt.store.get(f"stake:{netuid}:{hotkey}") or {}
    if int(row.get(origin, 0)) < amount:
        raise DispatchError("NotEnoughStakeToWithdraw")
    row = rt.store.get_mut(f"stake:{netuid}:{hotkey}")
    row[origin] = int(row[origin]) - amount
    if row[origin] == 0:
        del row[origin]
    rt.account_mut(origin)["free"] += amount
    rt.deposit_event(
        "SubtensorModule",
        "StakeRemoved",
        {"coldkey": origin, "hotkey": hotkey, "tao": amount, "alpha": amount, "netuid": netuid},
    )


@call("SubtensorModule", "remove_stake_limit")
def remove_stake_limit(
    rt: Runtime, origin: str, hotkey: Any, netuid: Any, amount_unstaked: Any,
    limit_price: Any, allow_partial: Any = False,
) -> None:
    if as_int(limit_price, "limit_price") > RAO_PER_TAO:
        raise DispatchError("SlippageTooHigh")
    remove_stake(rt, origin, hotkey, netuid, amount_unstaked)


def _transfer(rt: Runtime, origin: str, dest: Any, value: Any, keep_alive: bool) -> None:
    dest = as_account(dest, "dest")
    amount = as_int(value, "value")
    if amount <= 0:
        raise DispatchError("InvalidValue", "transfer amount must be positive")
    free = rt.account(origin)["free"]
    if free < amount:
        raise DispatchError("InsufficientBalance")
    if keep_alive and free - amount < EXISTENTIAL_DEPOSIT:
        raise DispatchError("Expendability")
    if rt.account(dest)["free"] + amount < EXISTENTIAL_DEPOSIT:
        raise DispatchError("ExistentialDeposit")
    rt.account_mut(origin)["free"] -= amount
    rt.account_mut(dest)["free"] += amount
    rt.deposit_event("Balances", "Transfer", {"from": origin, "to": dest, "amount": amount})


@call("Balances", "transfer_keep_alive")
def transfer_keep_alive(rt: Runtime, origin: str, dest: Any, value: Any) -> None:
    _transfer(rt, origin, dest, value, keep_alive=True)


@call("Balances", "transfer_allow_death")
def transfer_allow_death(rt: Runtime, origin: str, dest: Any, value: Any) -> None:
    _transfer(rt, origin, dest, value, keep_alive=False)


@call("Balances", "transfer_all")
def transfer_all(rt: Runtime, origin: str, dest: Any, keep_alive: Any = True) -> None:
    free = rt.account(origin)["free"]
    amount = free - EXISTENTIAL_DEPOSIT if keep_alive else free
    _transfer(rt, origin, dest, amount, keep_alive=bool(keep_alive))
