"""`tessera devnet bootstrap`'s flags, on the neurons' flag engine (so TESSERA_*, BT_* and --config apply).

Kept apart from bootstrap.py so `tessera devnet start|stop|status` build their
parsers without importing the bittensor SDK.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from subnet.errors import ConfigError

DEFAULT_WALLET_PATH = "~/.tessera/devnet-wallets"


@dataclass(frozen=True, kw_only=True)
class BootstrapWallet:
    """Where bootstrap writes its test wallets."""

    path: str = DEFAULT_WALLET_PATH
    """Where the (unencrypted) test wallets are written; never the real ~/.bittensor/wallets by default."""


@dataclass(frozen=True, kw_only=True)
class BootstrapOptions:
    """tessera devnet bootstrap's own flags (on the flag engine: environment variables and --config too).

    Its variables are TESSERA_BOOTSTRAP_* (a neuron's TESSERA_NETUID must not pick the subnet bootstrap
    reuses), except the wallet folder's TESSERA_WALLET_PATH / BT_WALLET_PATH.
    """

    miners: int = field(default=4, metadata={"env": "TESSERA_BOOTSTRAP_MINERS"})
    """Miner wallets to create and register."""
    wallet: BootstrapWallet = field(default_factory=BootstrapWallet)
    netuid: int | None = field(default=None, metadata={"env": "TESSERA_BOOTSTRAP_NETUID"})
    """Reuse this subnet (owned by the owner wallet) instead of creating one."""
    tempo: int = field(default=20, metadata={"env": "TESSERA_BOOTSTRAP_TEMPO"})
    """DEVNET-only (a root call on subtensor): blocks per epoch for fast demo windows."""
    weights_rate_limit: int = field(default=2, metadata={"aliases": ("--weights-rate-limit",),
                                                          "env": "TESSERA_BOOTSTRAP_WEIGHTS_RATE_LIMIT"})
    """DEVNET-only (a root call on subtensor): WeightsSetRateLimit in blocks."""
    validator_stake: float = field(default=1000.0, metadata={"aliases": ("--validator-stake",),
                                                              "env": "TESSERA_BOOTSTRAP_VALIDATOR_STAKE"})
    """TAO staked to the validator."""
    prefix: str = field(default="", metadata={"env": "TESSERA_BOOTSTRAP_PREFIX"})
    """Wallet name prefix, e.g. t1- (several bootstraps in one wallet folder)."""
    json: bool = field(default=False, metadata={"env": "TESSERA_BOOTSTRAP_JSON"})
    """Print the result as one JSON object."""

    def __post_init__(self) -> None:
        if self.miners < 0 or self.tempo <= 0 or self.weights_rate_limit < 0 or self.validator_stake < 0:
            raise ConfigError("bootstrap: --miners >= 0, --tempo > 0, --weights_rate_limit >= 0, "
                              "--validator_stake >= 0")
