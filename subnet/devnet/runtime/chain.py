"""The devnet runtime: state accessors, genesis, extrinsic application, block hooks.

`Runtime` is the single place chain rules run. The node (`subnet.devnet.node`)
owns block timing and the transaction pool; this class applies one extrinsic
at a time with rollback on failure and runs `on_initialize` (epochs) per block.
"""

from __future__ import annotations

from typing import Any

import bittensor_core
from loguru import logger

from subnet.devnet.codec import from_wire
from subnet.devnet.config import GLOBAL_HYPERPARAMETERS, RAO_PER_TAO, GenesisConfig
from subnet.devnet.extrinsic import Extrinsic
from subnet.devnet.runtime.base import CALLS, DispatchError, event
from subnet.devnet.state import Store

# Per-uid vectors kept on the subnet record, in uid order.
NEURON_FIELDS = (
    "hotkeys",
    "block_at_registration",
    "last_update",
    "active",
    "validator_permit",
    "rank",
    "trust",
    "consensus",
    "incentive",
    "dividends",
    "validator_trust",
    "emission",
    "pruning_score",
)


def dev_address(uri: str) -> str:
    return bittensor_core.Keypair.create_from_uri(uri).ss58_address


class Runtime:
    """Chain rules over a `Store`. `block` is the number of the block being built."""

    def __init__(self, store: Store, genesis: GenesisConfig) -> None:
        self.store = store
        self.genesis = genesis
        self.block = 0
        self.timestamp_ms = 0
        self.events: list[dict] = []
        self._idx: int | None = None

    # -- genesis ---------------------------------------------------------------

    def init_genesis(self) -> None:
        if self.store.get("meta:sudo") is not None:
            return
        for uri in self.genesis.dev_accounts:
            acct = self.account_mut(dev_address(uri))
            acct["free"] += self.genesis.dev_balance_tao * RAO_PER_TAO
        self.store.put("meta:sudo", dev_address(self.genesis.sudo_uri))
        self.store.put("meta:netuids", [])
        self.store.put("meta:hparams", dict(self.genesis.hyperparameters))

    # -- accounts --------------------------------------------------------------

    def account(self, ss58: str) -> dict:
        return self.store.get(f"acct:{ss58}") or {"free": 0, "nonce": 0}

    def account_mut(self, ss58: str) -> dict:
        return self.store.get_mut(f"acct:{ss58}", lambda: {"free": 0, "nonce": 0})

    def global_param(self, name: str) -> int:
        """A chain-wide StorageValue (StakeThreshold, TxRateLimit, ...), its default when never set."""
        value = (self.store.get("meta:hparams") or {}).get(name)
        return int(GLOBAL_HYPERPARAMETERS[name] if value is None else value)

    @property
    def sudo_key(self) -> str:
        return self.store.get("meta:sudo")

    def withdraw(self, ss58: str, amount: int, error: str = "InsufficientBalance") -> None:
        if amount < 0:
            raise DispatchError("InvalidValue", "negative amount")
        if self.account(ss58)["free"] < amount:
            raise DispatchError(error, f"needs {amount} rao, has {self.account(ss58)['free']}")
        self.account_mut(ss58)["free"] -= amount

    # -- subnets ---------------------------------------------------------------

    def netuids(self) -> list[int]:
        return list(self.store.get("meta:netuids") or [])

    def subnet(self, netuid: Any) -> dict:
        rec = self.store.get(f"net:{_netuid(netuid)}")
        if rec is None:
            raise DispatchError("SubnetNotExists", f"netuid {netuid}")
        return rec

    def subnet_mut(self, netuid: Any) -> dict:
        self.subnet(netuid)
        return self.store.get_mut(f"net:{_netuid(netuid)}")

    def uid_of(self, netuid: int, hotkey: str) -> int | None:
        rec = self.store.get(f"net:{netuid}")
        if rec is None:
            return None
        try:
            return rec["hotkeys"].index(hotkey)
        except ValueError:
            return None

    def hotkey_owner(self, hotkey: str) -> str | None:
        return self.store.get(f"hk:{hotkey}")

    def stake_of(self, netuid: int, hotkey: str) -> int:
        return sum((self.store.get(f"stake:{netuid}:{hotkey}") or {}).values())

    def credit_stake(self, netuid: int, hotkey: str, coldkey: str, amount: int) -> None:
        if amount <= 0:
            return
        row = self.store.get_mut(f"stake:{netuid}:{hotkey}", dict)
        row[coldkey] = int(row.get(coldkey, 0)) + int(amount)

    # -- events ----------------------------------------------------------------

    def deposit_event(self, module: str, name: str, attributes: Any) -> None:
        self.events.append(event(module, name, attributes, self._idx))

    # -- application -----------------------------------------------------------

    def apply(self, ext: Extrinsic, idx: int) -> dict:
        """Apply one pool-validated extrinsic; returns its receipt."""
        self._idx = idx
        start = len(self.events)
        acct = self.account_mut(ext.signer)
        acct["nonce"] = int(acct.get("nonce", 0)) + 1  # consumed even when dispatch fails
        self.store.begin()
        error = None
        try:
            self.dispatch(ext.signer, ext.module, ext.function, from_wire(ext.params))
        except DispatchError as exc:
            self.store.rollback()
            del self.events[start:]
            error = exc.to_wire()
            self.deposit_event("System", "ExtrinsicFailed", {"dispatch_error": error})
        except Exception as exc:  # a bug or malformed params: fail the extrinsic, keep the chain
            logger.exception("devnet: {}.{} crashed", ext.module, ext.function)
            self.store.rollback()
            del self.events[start:]
            error = DispatchError("InvalidValue", f"{type(exc).__name__}: {exc}").to_wire()
            self.deposit_event("System", "ExtrinsicFailed", {"dispatch_error": error})
        else:
            self.store.release()
            self.deposit_event("System", "ExtrinsicSuccess", {"dispatch_info": {}})
        finally:
            self._idx = None
        return {
            "hash": ext.hash,
            "extrinsic": ext.to_wire(),
            "index": idx,
            "success": error is None,
            "error": error,
            "events": self.events[start:],
        }

    def dispatch(self, origin: str, module: str, function: str, params: dict) -> None:
        handler = CALLS.get((module, function))
        if handler is None:
            raise DispatchError("CallFiltered", f"{module}.{function} is not supported by the devnet")
        if not isinstance(params, dict):
            raise DispatchError("InvalidValue", "call params must be an object")
        handler(self, origin, **params)

    def on_initialize(self) -> None:
        """Per-block hooks, in `block_step`'s order: burn decay, reveal matured weight commits, then epochs."""
        from subnet.devnet.runtime import burn, commit_reveal, epoch

        burn.decay_all(self)
        for netuid in self.netuids():
            commit_reveal.reveal_commits(self, netuid)
        for netuid in self.netuids():
            epoch.maybe_run(self, netuid)


def _netuid(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DispatchError("InvalidValue", f"netuid must be an integer, got {value!r}") from None
