"""Devnet configuration: where it lives, how fast it runs, and genesis hyperparameters.

Defaults mirror subtensor (opentensor/subtensor 14bc6f9, spec 425;
`runtime/src/lib.rs` and `pallets/subtensor/src/lib.rs`) except where a local
devnet needs otherwise; those few are marked DEVNET and listed in
contrib/DEVNET.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from subnet.config import parse_bool

RAO_PER_TAO = 1_000_000_000
U16_MAX = 65535
DEFAULT_PORT = 9946
DEFAULT_BLOCK_MS = 1000
DEFAULT_DIR = "~/.tessera/devnet"
# The block time a manual-mode devnet (block_ms 0) reports (`Aura.SlotDuration` on both faces): what the SDK
# times commit-reveal rounds and waits by; blocks there come when sealed, so a short one keeps tests fast.
MANUAL_MODE_SLOT_MS = 50
DEFAULT_FINALITY_LAG = 2  # blocks the finalized head trails the best head (GRANDPA on finney: ~2-3)
ADMIN_FLAG = "--devnet.allow_admin"
ADMIN_ENV = "TESSERA_DEVNET_ALLOW_ADMIN"
SUBSTRATE_PORT_ENV = "TESSERA_DEVNET_SUBSTRATE_PORT"
# Which face of the devnet `subnet.chain.make_subtensor("devnet...")` talks to: "substrate" = the plain SDK
# client (`bt.Subtensor` on the Substrate face, the SDK's own RpcSubstrate transport, as on finney); "json" =
# the SDK client with `DevnetSubstrate` in its Substrate seam (the devnet's own JSON-RPC).
TRANSPORT_ENV = "TESSERA_DEVNET_TRANSPORT"
TRANSPORTS = ("substrate", "json")
DEFAULT_TRANSPORT = "substrate"
SPEC_VERSION = 425
PORTED_FROM = "opentensor/subtensor 14bc6f9 (spec 425)"

# Per-subnet hyperparameters, keyed by their subtensor storage names so that
# `query("SubtensorModule", <name>, [netuid])` maps 1:1.
DEFAULT_HYPERPARAMETERS: dict[str, int | bool | str] = {
    "Tempo": 360,
    "Kappa": 32767,
    "Rho": 10,
    "MaxAllowedUids": 256,
    "MinAllowedWeights": 1024,  # capped at the subnet's n by the weights check
    "MaxAllowedValidators": 128,
    "ImmunityPeriod": 4096,
    "ActivityCutoff": 5000,
    "BondsMovingAverage": 900_000,
    "BondsPenalty": 65535,
    "WeightsVersionKey": 0,
    "ServingRateLimit": 50,
    "Burn": RAO_PER_TAO // 10,
    "MinBurn": 500_000,
    "MaxBurn": 100 * RAO_PER_TAO,
    "WeightsSetRateLimit": 100,
    "CommitRevealWeightsEnabled": True,  # as subtensor; reveals via the escrow (runtime/commit_reveal.py)
    "RevealPeriodEpochs": 1,
    "MaxWeightsLimit": U16_MAX,
    "NetworkRegistrationAllowed": True,
    "MaxRegistrationsPerBlock": 1,  # stored and settable; do_register no longer enforces it
    "MinNonImmuneUids": 10,
    "LiquidAlphaOn": False,
    "Yuma3On": False,
    "SubnetOwnerCut": 11796,  # 18 %
    "TransferToggle": True,
    "Difficulty": 10_000_000,
    "AdjustmentAlpha": 0,
    "AdjustmentInterval": 100,
    "TargetRegistrationsPerInterval": 2,
    "MaxDifficulty": 2**63 - 1,
    "MinDifficulty": 1,
    "SubnetEpochConsensus": "Yuma",
    # Registration burn (subnets/registration.rs): x BurnIncreaseMult per registration, halving
    # every BurnHalfLife blocks, within MinBurn..MaxBurn.
    "BurnHalfLife": 360,  # DefaultBurnHalfLife
    "BurnIncreaseMult": 1.26,  # DefaultBurnIncreaseMult (U64F64)
    "ImmuneOwnerUidsLimit": 1,  # DefaultImmuneOwnerUidsLimit
}

# Chain-wide StorageValues (not per subnet), kept in meta:hparams. lib.rs / runtime defaults.
GLOBAL_HYPERPARAMETERS: dict[str, int] = {
    "StakeThreshold": 0,  # DefaultStakeThreshold: minimum stake to set weights
    "TxRateLimit": 1000,  # SubtensorInitialTxRateLimit
    "AdminFreezeWindow": 10,  # DefaultAdminFreezeWindow: blocks before an epoch closed to admin calls
    "OwnerHyperparamRateLimit": 2,  # DefaultOwnerHyperparamRateLimit: tempos between owner updates
    "WeightsVersionKeyRateLimit": 5,  # DefaultWeightsVersionKeyRateLimit: tempos
}

# AdminUtils setter -> (storage name, value parameter). Owner-settable ones are
# those the SDK's SetHyperparameter exposes; the rest need sudo (//Alice).
SUDO_SETTERS: dict[str, tuple[str, str]] = {
    "sudo_set_tempo": ("Tempo", "tempo"),
    "sudo_set_kappa": ("Kappa", "kappa"),
    "sudo_set_rho": ("Rho", "rho"),
    "sudo_set_max_allowed_uids": ("MaxAllowedUids", "max_allowed_uids"),
    "sudo_set_min_allowed_weights": ("MinAllowedWeights", "min_allowed_weights"),
    "sudo_set_max_allowed_validators": ("MaxAllowedValidators", "max_allowed_validators"),
    "sudo_set_immunity_period": ("ImmunityPeriod", "immunity_period"),
    "sudo_set_activity_cutoff": ("ActivityCutoff", "activity_cutoff"),
    "sudo_set_bonds_moving_average": ("BondsMovingAverage", "bonds_moving_average"),
    "sudo_set_bonds_penalty": ("BondsPenalty", "bonds_penalty"),
    "sudo_set_weights_version_key": ("WeightsVersionKey", "weights_version_key"),
    "sudo_set_serving_rate_limit": ("ServingRateLimit", "serving_rate_limit"),
    "sudo_set_min_burn": ("MinBurn", "min_burn"),
    "sudo_set_max_burn": ("MaxBurn", "max_burn"),
    "sudo_set_weights_set_rate_limit": ("WeightsSetRateLimit", "weights_set_rate_limit"),
    "sudo_set_commit_reveal_weights_enabled": ("CommitRevealWeightsEnabled", "enabled"),
    "sudo_set_commit_reveal_weights_interval": ("RevealPeriodEpochs", "interval"),
    "sudo_set_network_registration_allowed": ("NetworkRegistrationAllowed", "registration_allowed"),
    "sudo_set_max_registrations_per_block": ("MaxRegistrationsPerBlock", "max_registrations_per_block"),
    "sudo_set_min_non_immune_uids": ("MinNonImmuneUids", "min"),
    "sudo_set_liquid_alpha_enabled": ("LiquidAlphaOn", "enabled"),
    "sudo_set_yuma3_enabled": ("Yuma3On", "enabled"),
    "sudo_set_toggle_transfer": ("TransferToggle", "toggle"),
    "sudo_set_difficulty": ("Difficulty", "difficulty"),
    "sudo_set_adjustment_alpha": ("AdjustmentAlpha", "adjustment_alpha"),
    "sudo_set_adjustment_interval": ("AdjustmentInterval", "adjustment_interval"),
    "sudo_set_target_registrations_per_interval": (
        "TargetRegistrationsPerInterval",
        "target_registrations_per_interval",
    ),
    "sudo_set_max_difficulty": ("MaxDifficulty", "max_difficulty"),
    "sudo_set_min_difficulty": ("MinDifficulty", "min_difficulty"),
    "sudo_set_epoch_consensus": ("SubnetEpochConsensus", "mode"),
    "sudo_set_burn_half_life": ("BurnHalfLife", "burn_half_life"),
    "sudo_set_owner_immune_neuron_limit": ("ImmuneOwnerUidsLimit", "immune_neurons"),
}
# Root-only setters of the chain-wide values above (no netuid).
GLOBAL_SETTERS: dict[str, tuple[str, str]] = {
    "sudo_set_stake_threshold": ("StakeThreshold", "min_stake"),
    "sudo_set_tx_rate_limit": ("TxRateLimit", "tx_rate_limit"),
    "sudo_set_admin_freeze_window": ("AdminFreezeWindow", "window"),
    "sudo_set_owner_hparam_rate_limit": ("OwnerHyperparamRateLimit", "epochs"),
}
OWNER_SETTABLE = {  # sudo_set_tempo is root-only (owners use set_tempo, not served by the devnet)
    "sudo_set_immunity_period", "sudo_set_min_allowed_weights",
    "sudo_set_weights_version_key", "sudo_set_min_burn", "sudo_set_max_burn",
    "sudo_set_bonds_moving_average", "sudo_set_bonds_penalty", "sudo_set_serving_rate_limit",
    "sudo_set_commit_reveal_weights_interval", "sudo_set_max_allowed_uids", "sudo_set_rho",
    "sudo_set_commit_reveal_weights_enabled", "sudo_set_liquid_alpha_enabled",
    "sudo_set_network_registration_allowed", "sudo_set_yuma3_enabled", "sudo_set_toggle_transfer",
    "sudo_set_adjustment_alpha", "sudo_set_max_difficulty", "sudo_set_epoch_consensus",
    "sudo_set_burn_half_life", "sudo_set_owner_immune_neuron_limit", "sudo_set_activity_cutoff",
}


@dataclass(frozen=True, kw_only=True)
class GenesisConfig:
    """What a fresh devnet starts with."""

    # //Alice (sudo), //Bob, //Charlie, each funded with this many TAO.
    dev_accounts: tuple[str, ...] = ("//Alice", "//Bob", "//Charlie")
    dev_balance_tao: int = 1_000_000
    sudo_uri: str = "//Alice"
    # Alpha minted per block per started subnet (rao); 1 alpha before halvings.
    alpha_per_block: int = RAO_PER_TAO
    # TAO locked to register a subnet (the real chain's cost floats; fixed here).
    network_lock_cost: int = 100 * RAO_PER_TAO
    hyperparameters: dict = field(default_factory=lambda: {**DEFAULT_HYPERPARAMETERS, **GLOBAL_HYPERPARAMETERS})


@dataclass(frozen=True, kw_only=True)
class DevnetConfig:
    """Where the devnet process listens and keeps its state."""

    host: str = "127.0.0.1"  # loopback only, by design
    port: int = DEFAULT_PORT
    dir: Path = Path(DEFAULT_DIR).expanduser()
    # Block interval in milliseconds; 0 = manual mode (blocks only via devnet_produceBlocks).
    block_ms: int = DEFAULT_BLOCK_MS
    # Serve admin RPC calls (devnet_produceBlocks). Off by default: they are
    # unauthenticated, so any local process could fast-forward the chain (and
    # with it epochs, rate limits and immunity). Tests opt in explicitly.
    allow_admin: bool = False
    # Blocks the finalized head trails the best head (`finalized_block_number`,
    # finalized head subscriptions, wait_for_finalization). None = 2 with a
    # block timer, 0 in instant-seal mode (nothing would seal the blocks that
    # finalize a submission, as Substrate's instant seal finalizes at once).
    finality_lag: int | None = None
    # Blocks of state history kept for block-pinned reads (a pruned node's --state-pruning).
    state_pruning: int = 256
    # Port of the Substrate JSON-RPC face (SCALE + metadata, what btcli and the SDK's
    # RpcSubstrate speak; subnet/devnet/substrate_rpc). None = port + 1, tried and
    # skipped with a warning when taken; 0 = off. Env TESSERA_DEVNET_SUBSTRATE_PORT.
    substrate_port: int | None = field(default_factory=lambda: _optional_int(os.environ.get(SUBSTRATE_PORT_ENV)))
    genesis: GenesisConfig = field(default_factory=GenesisConfig)

    @property
    def effective_finality_lag(self) -> int:
        if self.finality_lag is not None:
            return max(0, int(self.finality_lag))
        return DEFAULT_FINALITY_LAG if self.block_ms > 0 else 0

    @property
    def db_path(self) -> Path:
        return self.dir / "devnet.sqlite"

    @property
    def pid_path(self) -> Path:
        return self.dir / "devnet.pid"

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"


def env_defaults() -> dict[str, object]:
    """Flag defaults from TESSERA_DEVNET_* environment variables."""
    return {
        "port": int(os.environ.get("TESSERA_DEVNET_PORT", DEFAULT_PORT)),
        "dir": os.environ.get("TESSERA_DEVNET_DIR", DEFAULT_DIR),
        "block_ms": int(os.environ.get("TESSERA_DEVNET_BLOCK_MS", DEFAULT_BLOCK_MS)),
        "allow_admin": parse_bool(os.environ.get(ADMIN_ENV, "0") or "0"),
        "finality_lag": _optional_int(os.environ.get("TESSERA_DEVNET_FINALITY_LAG")),
    }


def _optional_int(raw: str | None) -> int | None:
    return None if raw in (None, "") else int(raw)
