"""Which wallet signs for a node and which chain it talks to (flags `--wallet.*`, `--subtensor.*`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from subnet.config import require_positive
from subnet.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class WalletConfig:
    """Which bittensor wallet (coldkey + hotkey files on disk) signs for this node."""

    name: str = "default"
    """Coldkey (wallet) name."""
    hotkey: str = "default"
    """Hotkey name inside the wallet; it signs artifacts and extrinsics."""
    path: str = "~/.bittensor/wallets"
    """Directory that holds the wallets."""


@dataclass(frozen=True, kw_only=True)
class SubtensorConfig:
    """Which chain to talk to."""

    network: str = "finney"
    """finney | test | local | ws://host:port | devnet | devnet+ws://127.0.0.1:PORT."""
    chain_endpoint: str | None = None
    """ws(s)://host:port of the node to talk to, instead of the network's default endpoint (bittensor's flag); with a
    devnet network, the devnet's ws://127.0.0.1:PORT."""
    devnet_timeout_s: float = field(default=30.0, metadata={"env": "TESSERA_DEVNET_TIMEOUT"})
    """Seconds one devnet RPC request may take before it fails (a hung devnet must not stall a neuron); the real chain
    keeps the SDK's timeouts."""

    devnet_transport: str = field(default="substrate", metadata={"env": "TESSERA_DEVNET_TRANSPORT"})
    """substrate | json: on a devnet network, talk to its Substrate face with the SDK's own transport (the same code
    path as finney; default) or to its JSON face through `DevnetSubstrate` (the older path, kept for rollback)."""

    def __post_init__(self) -> None:
        require_positive("SubtensorConfig", devnet_timeout_s=self.devnet_timeout_s)
        if self.devnet_transport not in ("substrate", "json"):
            raise ConfigError(f"--subtensor.devnet_transport must be substrate or json, got {self.devnet_transport!r}")

    @property
    def is_devnet(self) -> bool:
        """The local devnet (netuid may default there); anything else is a real network."""
        return self.network == "devnet" or self.network.startswith("devnet+")

    @property
    def target(self) -> str:
        """The network string `subnet.chain.make_subtensor` takes: the network, or the endpoint given."""
        if not self.chain_endpoint:
            return self.network
        return f"devnet+{self.chain_endpoint}" if self.is_devnet else self.chain_endpoint
