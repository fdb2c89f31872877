"""Runtime metadata (V15, `MetadataVersioned` bytes) built from the devnet's runtime definitions.

Pallets, storage items, calls, events, errors and runtime APIs carry
subtensor's names, indices and type paths (`node_subtensor_runtime`,
`pallet_subtensor`, `subtensor_runtime_common`), so the SDK's generated names
(`bt.storage.SubtensorModule.Tempo`, ...) and its codec (`bittensor_core`,
which decodes storage, events and runtime-API results from these bytes) line
up. Only what the devnet serves is declared: a storage item absent here is
absent from the devnet, as `StorageFunctionNotFound` says to the SDK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from bittensor._generated.errors import ERRORS

from subnet.devnet.config import DEFAULT_HYPERPARAMETERS, GLOBAL_HYPERPARAMETERS, GLOBAL_SETTERS, SUDO_SETTERS
from subnet.devnet.substrate_rpc import scale
from subnet.devnet.substrate_rpc.types import TypeRegistry

METADATA_VERSION = 15
DEFAULT_SLOT_MS = 12_000  # finney's block time; the devnet passes its own (manual mode: config.MANUAL_MODE_SLOT_MS)
HASHERS = {"Blake2_128": 0, "Blake2_256": 1, "Blake2_128Concat": 2, "Twox128": 3,
           "Twox256": 4, "Twox64Concat": 5, "Identity": 6}
NETUID = ("Identity", "NetUid")
ACCOUNT = ("Blake2_128Concat", "AccountId32")
UID = ("Identity", "u16")


@dataclass(frozen=True)
class StorageDef:
    """One storage item: keys as (hasher, type expr), value type, `Default` or `Optional`."""

    name: str
    value: str
    keys: tuple[tuple[str, str], ...] = ()
    modifier: str = "Default"
    default: bytes | None = None  # SCALE default; None = zero bytes of the value's encoding


@dataclass(frozen=True)
class PalletDef:
    name: str
    index: int
    storage: tuple[StorageDef, ...] = ()
    calls: str | None = None  # type name of the pallet's Call enum
    event: str | None = None
    error: str | None = None
    constants: tuple[tuple[str, str, bytes], ...] = ()  # (name, type, SCALE value)


@dataclass(frozen=True)
class ApiMethod:
    name: str
    inputs: tuple[tuple[str, str], ...]
    output: str


@dataclass(frozen=True)
class ApiDef:
    name: str
    methods: tuple[ApiMethod, ...] = field(default_factory=tuple)


def _declare_types(reg: TypeRegistry) -> None:
    """The named types of the items the devnet serves, at subtensor's paths."""
    reg.struct("AccountId32", "sp_core::crypto::AccountId32", "[u8; 32]")
    reg.struct("H256", "primitive_types::H256", "[u8; 32]")
    reg.struct("NetUid", "subtensor_runtime_common::NetUid", "u16")
    reg.struct("MechId", "subtensor_runtime_common::MechId", "u8")
    reg.struct("NetUidStorageIndex", "subtensor_runtime_common::NetUidStorageIndex", "u16")
    reg.struct("TaoBalance", "subtensor_runtime_common::currency::TaoBalance", "u64")
    reg.struct("AlphaBalance", "subtensor_runtime_common::currency::AlphaBalance", "u64")
    reg.struct("ExtraFlags", "pallet_balances::types::ExtraFlags", "u128")
    reg.struct("U64F64", "substrate_fixed::FixedU128", [("bits", "u128")])
    reg.enum("EpochConsensus", "pallet_subtensor::EpochConsensus", [("Yuma", 0, []), ("Null", 1, [])])
    reg.struct("AccountData", "pallet_balances::types::AccountData", [
        ("free", "TaoBalance"), ("reserved", "TaoBalance"), ("frozen", "TaoBalance"), ("flags", "ExtraFlags")])
    reg.struct("AccountInfo", "frame_system::AccountInfo", [
        ("nonce", "u32"), ("consumers", "u32"), ("providers", "u32"), ("sufficients", "u32"),
        ("data", "AccountData")])
    reg.struct("AxonInfo", "pallet_subtensor::AxonInfo", [
        ("block", "u64"), ("version", "u32"), ("ip", "u128"), ("port", "u16"), ("ip_type", "u8"),
        ("protocol", "u8"), ("placeholder1", "u8"), ("placeholder2", "u8")])
    _declare_api_types(reg)
    _declare_dispatch_types(reg)
    data = [("None", 0, [])] + [(f"Raw{n}", n + 1, [(None, f"[u8; {n}]")]) for n in range(129)]
    data += [(name, 130 + i, [(None, "[u8; 32]")])
             for i, name in enumerate(("BlakeTwo256", "Sha256", "Keccak256", "ShaThree256"))]
    data += [("TimelockEncrypted", 134, [("encrypted", "Vec<u8>"), ("reveal_round", "u64")]),
             ("ResetBondsFlag", 135, []), ("BigRaw", 136, [(None, "Vec<u8>")])]
    reg.enum("Data", "pallet_commitments::types::Data", data)
    reg.struct("CommitmentInfo", "pallet_commitments::types::CommitmentInfo", [("fields", "Vec<Data>")])
    reg.struct("Registration", "pallet_commitments::types::Registration", [
        ("deposit", "TaoBalance"), ("block", "u32"), ("info", "CommitmentInfo")])
    reg.struct("UsageTracker", "pallet_commitments::types::UsageTracker", [
        ("last_epoch", "u64"), ("used_space", "u64")])


# SubtensorModule events served in System.Events (pallets/subtensor/src/macros/events.rs: name, variant index,
# unnamed fields as (the runtime's attribute name, type)): those an SDK intent reads its outcome from
# (`RegisterSubnet` takes its netuid from NetworkAdded). Other runtime events are not served on this face.
SUBTENSOR_EVENTS: tuple[tuple[str, int, tuple[tuple[str, str], ...]], ...] = (
    ("NetworkAdded", 0, (("netuid", "NetUid"), ("mechanism", "u16"))),
)


def _declare_dispatch_types(reg: TypeRegistry) -> None:
    """Calls, System events and module errors: what the SDK composes and reads outcomes from."""
    reg.struct("Weight", "sp_weights::weight_v2::Weight",
               [("ref_time", "Compact<u64>"), ("proof_size", "Compact<u64>")])
    reg.enum("DispatchClass", "frame_support::dispatch::DispatchClass",
             [("Normal", 0, []), ("Operational", 1, []), ("Mandatory", 2, [])])
    reg.enum("Pays", "frame_support::dispatch::Pays", [("Yes", 0, []), ("No", 1, [])])
    reg.struct("DispatchEventInfo", "frame_system::DispatchEventInfo", [
        ("weight", "Weight"), ("class", "DispatchClass"), ("pays_fee", "Pays")])
    reg.struct("ModuleError", "sp_runtime::ModuleError", [("index", "u8"), ("error", "[u8; 4]")])
    reg.enum("DispatchError", "sp_runtime::DispatchError", [
        ("Other", 0, []), ("CannotLookup", 1, []), ("BadOrigin", 2, []), ("Module", 3, [(None, "ModuleError")]),
        ("ConsumerRemaining", 4, []), ("NoProviders", 5, []), ("TooManyConsumers", 6, [])])
    reg.enum("SystemEvent", "frame_system::pallet::Event", [
        ("ExtrinsicSuccess", 0, [("dispatch_info", "DispatchEventInfo")]),
        ("ExtrinsicFailed", 1, [("dispatch_error", "DispatchError"), ("dispatch_info", "DispatchEventInfo")])])
    at = ("index", "u32")
    reg.enum("MevShieldEvent", "pallet_shield::pallet::Event", [  # pallets/shield/src/lib.rs, in its order
        ("EncryptedSubmitted", 0, [("id", "H256"), ("who", "AccountId32")]),
        ("ExtrinsicStored", 1, [at, ("who", "AccountId32")]), ("ExtrinsicDecodeFailed", 2, [at]),
        ("ExtrinsicDispatchFailed", 3, [at, ("error", "DispatchError")]), ("ExtrinsicDispatched", 4, [at]),
        ("ExtrinsicExpired", 5, [at]), ("ExtrinsicPostponed", 6, [at]),
        ("MaxPendingExtrinsicsNumberSet", 7, [("value", "u32")]), ("OnInitializeWeightSet", 8, [("value", "u64")]),
        ("ExtrinsicLifetimeSet", 9, [("value", "u32")]), ("MaxExtrinsicWeightSet", 10, [("value", "u64")]),
        ("ExtrinsicWeightExceeded", 11, [at])])
    reg.enum("SubtensorModuleEvent", "pallet_subtensor::pallet::Event", [
        (name, index, [(None, type_) for _, type_ in fields]) for name, index, fields in SUBTENSOR_EVENTS])
    reg.enum("Phase", "frame_system::Phase",
             [("ApplyExtrinsic", 0, [(None, "u32")]), ("Finalization", 1, []), ("Initialization", 2, [])])
    reg.struct("EventRecord", "frame_system::EventRecord", [
        ("phase", "Phase"), ("event", "RuntimeEvent"), ("topics", "Vec<H256>")])
    for pallet, calls in CALLS.items():
        reg.enum(f"{pallet}Call", f"{_PALLET_PATHS[pallet]}::pallet::Call",
                 [(name, index, list(args)) for name, index, args in calls])
    for pallet in _PALLET_PATHS:
        errors = sorted((e, info.name) for (p, e), info in ERRORS.items() if p == PALLET_INDEX[pallet])
        reg.enum(f"{pallet}Error", f"{_PALLET_PATHS[pallet]}::pallet::Error", [(n, e, []) for e, n in errors])


def _declare_api_types(reg: TypeRegistry) -> None:
    """Runtime-API result types (pallets/subtensor/src/rpc_info), the fields the devnet fills."""
    reg.struct("I96F32", "substrate_fixed::FixedI128", [("bits", "i128")])
    reg.struct("PrometheusInfo", "pallet_subtensor::PrometheusInfo", [
        ("block", "u64"), ("version", "u32"), ("ip", "u128"), ("port", "u16"), ("ip_type", "u8")])
    text = "Vec<u8>"
    reg.struct("SubnetIdentityV3", "pallet_subtensor::SubnetIdentityV3", [
        (n, text) for n in ("subnet_name", "github_repo", "subnet_contact", "subnet_url", "discord",
                            "description", "logo_url", "additional")])
    reg.struct("ChainIdentityOfV2", "pallet_subtensor::ChainIdentityV2", [
        (n, text) for n in ("name", "url", "github_repo", "image", "discord", "description", "additional")])
    reg.struct("Metagraph", "pallet_subtensor::rpc_info::metagraph::Metagraph", METAGRAPH_FIELDS)
    neuron = [
        ("hotkey", "AccountId32"), ("coldkey", "AccountId32"), ("uid", "Compact<u16>"),
        ("netuid", "Compact<u16>"), ("active", "bool"), ("axon_info", "AxonInfo"),
        ("prometheus_info", "PrometheusInfo"), ("stake", "Vec<(AccountId32, Compact<u64>)>"),
        ("rank", "Compact<u16>"), ("emission", "Compact<u64>"), ("incentive", "Compact<u16>"),
        ("consensus", "Compact<u16>"), ("trust", "Compact<u16>"), ("validator_trust", "Compact<u16>"),
        ("dividends", "Compact<u16>"), ("last_update", "Compact<u64>"), ("validator_permit", "bool")]
    reg.struct("NeuronInfoLite", "pallet_subtensor::rpc_info::neuron_info::NeuronInfoLite",
               neuron + [("pruning_score", "Compact<u16>")])
    reg.struct("NeuronInfo", "pallet_subtensor::rpc_info::neuron_info::NeuronInfo", neuron + [
        ("weights", "Vec<(Compact<u16>, Compact<u16>)>"), ("bonds", "Vec<(Compact<u16>, Compact<u16>)>"),
        ("pruning_score", "Compact<u16>")])
    reg.struct("StakeInfo", "pallet_subtensor::rpc_info::stake_info::StakeInfo", [
        ("hotkey", "AccountId32"), ("coldkey", "AccountId32"), ("netuid", "Compact<u16>"),
        ("stake", "Compact<u64>"), ("locked", "Compact<u64>"), ("emission", "Compact<u64>"),
        ("tao_emission", "Compact<u64>"), ("drain", "Compact<u64>"), ("is_registered", "bool")])
    reg.struct("I32F32", "substrate_fixed::FixedI64", [("bits", "i64")])
    reg.enum("HyperparamValue", "pallet_subtensor::rpc_info::subnet_info::HyperparamValue", [
        ("Bool", 0, [(None, "bool")]), ("U16", 1, [(None, "u16")]), ("U64", 2, [(None, "u64")]),
        ("U64F64", 3, [(None, "U64F64")]), ("I32F32", 4, [(None, "I32F32")]), ("Str", 5, [(None, "str")])])
    reg.struct("SubnetHyperparam", "pallet_subtensor::rpc_info::subnet_info::SubnetHyperparam", [
        ("name", "str"), ("value", "HyperparamValue")])
    reg.struct("StakeAvailability", "pallet_subtensor::rpc_info::stake_info::StakeAvailability", [
        ("total", "u64"), ("locked", "u64"), ("available", "u64")])
    reg.struct("LockState", "pallet_subtensor::staking::lock::LockState", [
        ("locked_mass", "u64"), ("conviction", "U64F64"), ("last_update", "u64")])
    reg.struct("SubnetPrice", "pallet_subtensor_swap::SubnetPrice", [("netuid", "u16"), ("price", "u64")])
    reg.struct("I64F64", "substrate_fixed::FixedI128", [("bits", "i128")])
    reg.struct("SimSwapResult", "pallet_subtensor_swap::SimSwapResult", [
        (n, "u64") for n in ("alpha_amount", "tao_amount", "tao_fee", "alpha_fee", "tao_slippage", "alpha_slippage")])


# The Metagraph fields the devnet fills (subtensor's struct has more: emissions per pool,
# per-hotkey TAO/alpha dividends, the hyperparameter copies; the SDK reads them with .get).
METAGRAPH_FIELDS: list[tuple[str, str]] = [
    ("netuid", "Compact<u16>"), ("name", "Vec<Compact<u8>>"), ("symbol", "Vec<Compact<u8>>"),
    ("identity", "Option<SubnetIdentityV3>"), ("network_registered_at", "Compact<u64>"),
    ("owner_hotkey", "AccountId32"), ("owner_coldkey", "AccountId32"), ("block", "Compact<u64>"),
    ("tempo", "Compact<u16>"), ("last_step", "Compact<u64>"), ("blocks_since_last_step", "Compact<u64>"),
    ("subnet_emission", "Compact<u64>"), ("alpha_in", "Compact<u64>"), ("alpha_out", "Compact<u64>"),
    ("tao_in", "Compact<u64>"), ("moving_price", "I96F32"), ("num_uids", "Compact<u16>"),
    ("max_uids", "Compact<u16>"), ("pending_server_emission", "Compact<u64>"),
    ("hotkeys", "Vec<AccountId32>"), ("coldkeys", "Vec<AccountId32>"),
    ("identities", "Vec<Option<ChainIdentityOfV2>>"), ("axons", "Vec<AxonInfo>"), ("active", "Vec<bool>"),
    ("validator_permit", "Vec<bool>"), ("pruning_score", "Vec<Compact<u16>>"),
    ("last_update", "Vec<Compact<u64>>"), ("emission", "Vec<Compact<u64>>"), ("dividends", "Vec<Compact<u16>>"),
    ("incentives", "Vec<Compact<u16>>"), ("consensus", "Vec<Compact<u16>>"), ("trust", "Vec<Compact<u16>>"),
    ("rank", "Vec<Compact<u16>>"), ("block_at_registration", "Vec<Compact<u64>>"),
    ("alpha_stake", "Vec<Compact<u64>>"), ("tao_stake", "Vec<Compact<u64>>"), ("total_stake", "Vec<Compact<u64>>"),
    # Pool and emission accounting the devnet does not model (no AMM): always zero.
    ("subnet_volume", "Compact<u128>"), ("tao_in_emission", "Compact<u64>"),
    ("alpha_in_emission", "Compact<u64>"), ("alpha_out_emission", "Compact<u64>"),
    ("pending_alpha_emission", "Compact<u64>"), ("pending_root_emission", "Compact<u64>"),
    # Hyperparameter copies, from the subnet's storage (`Reader.metagraph` snake_cases them).
    ("rho", "Compact<u16>"), ("kappa", "Compact<u16>"), ("min_allowed_weights", "Compact<u16>"),
    ("max_weights_limit", "Compact<u16>"), ("weights_version", "Compact<u64>"),
    ("weights_rate_limit", "Compact<u64>"), ("activity_cutoff", "Compact<u16>"),
    ("max_validators", "Compact<u16>"), ("burn", "Compact<u64>"), ("difficulty", "Compact<u64>"),
    ("registration_allowed", "bool"), ("pow_registration_allowed", "bool"),
    ("immunity_period", "Compact<u16>"), ("min_difficulty", "Compact<u64>"), ("max_difficulty", "Compact<u64>"),
    ("min_burn", "Compact<u64>"), ("max_burn", "Compact<u64>"), ("adjustment_alpha", "Compact<u64>"),
    ("adjustment_interval", "Compact<u16>"), ("target_regs_per_interval", "Compact<u16>"),
    ("max_regs_per_block", "Compact<u16>"), ("serving_rate_limit", "Compact<u64>"),
    ("commit_reveal_weights_enabled", "bool"), ("commit_reveal_period", "Compact<u64>"),
    ("liquid_alpha_enabled", "bool"), ("alpha_high", "Compact<u16>"), ("alpha_low", "Compact<u16>"),
    ("bonds_moving_avg", "Compact<u64>"),
]
# Metagraph field -> the key `Reader.metagraph` fills it from (its hyperparameters are snake_cased storage names).
METAGRAPH_SOURCES = {
    "weights_version": "weights_version_key", "weights_rate_limit": "weights_set_rate_limit",
    "max_validators": "max_allowed_validators", "registration_allowed": "network_registration_allowed",
    "target_regs_per_interval": "target_registrations_per_interval",
    "max_regs_per_block": "max_registrations_per_block", "commit_reveal_period": "reveal_period_epochs",
    "liquid_alpha_enabled": "liquid_alpha_on", "bonds_moving_avg": "bonds_moving_average",
}
METAGRAPH_DEFAULTS = {"subnet_volume": 0, "tao_in_emission": 0, "alpha_in_emission": 0,
                      "alpha_out_emission": 0, "pending_alpha_emission": 0, "pending_root_emission": 0,
                      "pow_registration_allowed": False,
                      "alpha_high": 58982, "alpha_low": 45875}  # subtensor's AlphaHigh/AlphaLow defaults


def runtime_apis() -> tuple[ApiDef, ...]:
    netuid = (("netuid", "u16"),)
    return (
        ApiDef("SubnetInfoRuntimeApi", (
            ApiMethod("get_metagraph", netuid, "Option<Metagraph>"),
            ApiMethod("get_subnet_hyperparams_v3", netuid, "Option<Vec<SubnetHyperparam>>"),
            ApiMethod("get_next_epoch_start_block", netuid, "Option<u64>"),
        )),
        ApiDef("NeuronInfoRuntimeApi", (
            ApiMethod("get_neurons_lite", netuid, "Vec<NeuronInfoLite>"),
            ApiMethod("get_neurons", netuid, "Vec<NeuronInfo>"),
        )),
        ApiDef("StakeInfoRuntimeApi", (
            ApiMethod("get_stake_info_for_coldkey", (("coldkey_account", "AccountId32"),), "Vec<StakeInfo>"),
            ApiMethod("get_stake_info_for_coldkeys", (("coldkey_accounts", "Vec<AccountId32>"),),
                      "Vec<(AccountId32, Vec<StakeInfo>)>"),
            ApiMethod("get_stake_info_for_hotkey_coldkey_netuid",
                      (("hotkey_account", "AccountId32"), ("coldkey_account", "AccountId32"), ("netuid", "u16")),
                      "Option<StakeInfo>"),
            ApiMethod("get_stake_availability_for_coldkeys",
                      (("coldkeys", "Vec<AccountId32>"), ("netuids", "Vec<u16>")),
                      "BTreeMap<AccountId32, BTreeMap<u16, StakeAvailability>>"),
        )),
        # Root/beta baskets are not modelled (no root network): no positions.
        ApiDef("BetaBasketRuntimeApi", (
            ApiMethod("get_root_basket_positions", (("coldkey", "AccountId32"),), "Vec<(AccountId32, u64, u64)>"),
            ApiMethod("get_root_basket_owed", (("coldkey", "AccountId32"),), "u64"),
        )),
        ApiDef("SubnetRegistrationRuntimeApi", (ApiMethod("get_network_registration_cost", (), "TaoBalance"),)),
        ApiDef("SwapRuntimeApi", (
            ApiMethod("current_alpha_price", netuid, "u64"),
            ApiMethod("current_alpha_price_all", (), "Vec<SubnetPrice>"),
            ApiMethod("sim_swap_tao_for_alpha", (("netuid", "u16"), ("tao", "u64")), "SimSwapResult"),
            ApiMethod("sim_swap_alpha_for_tao", (("netuid", "u16"), ("alpha", "u64")), "SimSwapResult"),
        )),
    )


# Pallet indices as the SDK's generated error table has them (subtensor's construct_runtime order).
PALLET_INDEX = {info.pallet: pallet for (pallet, _), info in sorted(ERRORS.items(), reverse=True)}
_PALLET_PATHS = {"System": "frame_system", "Balances": "pallet_balances", "SubtensorModule": "pallet_subtensor",
                 "Sudo": "pallet_sudo", "Commitments": "pallet_commitments", "AdminUtils": "pallet_admin_utils",
                 "MevShield": "pallet_shield"}


def _admin_calls() -> list[tuple[str, int, tuple[tuple[str, str], ...]]]:
    """AdminUtils setters the devnet serves, `(netuid, value)` with the stored value's type."""
    out = []
    for index, (method, (item, param)) in enumerate(sorted(SUDO_SETTERS.items())):
        out.append((method, index, (("netuid", "NetUid"), (param, _HP_TYPES.get(item, "u64")))))
    for index, (method, (item, param)) in enumerate(sorted(GLOBAL_SETTERS.items()), start=len(out)):
        out.append((method, index, ((param, _GLOBAL_TYPES.get(item, "u64")),)))
    return out


# The calls the Substrate face accepts: (name, call index, ((arg, type), ...)). Arg names are subtensor's
# (the SDK's generated `bt.calls`); indices are consistent within this metadata, not subtensor's.
CALLS: dict[str, list[tuple[str, int, tuple[tuple[str, str], ...]]]] = {
    "Balances": [
        ("transfer_allow_death", 0, (("dest", "MultiAddress"), ("value", "Compact<u64>"))),
        ("transfer_keep_alive", 3, (("dest", "MultiAddress"), ("value", "Compact<u64>"))),
        ("transfer_all", 4, (("dest", "MultiAddress"), ("keep_alive", "bool"))),
    ],
    "SubtensorModule": [
        ("add_stake", 2, (("hotkey", "AccountId32"), ("netuid", "NetUid"), ("amount_staked", "TaoBalance"))),
        ("remove_stake", 3, (("hotkey", "AccountId32"), ("netuid", "NetUid"), ("amount_unstaked", "AlphaBalance"))),
        ("set_weights", 0, (("netuid", "NetUid"), ("dests", "Vec<u16>"), ("weights", "Vec<u16>"),
                            ("version_key", "u64"))),
        ("serve_axon", 4, (("netuid", "NetUid"), ("version", "u32"), ("ip", "u128"), ("port", "u16"),
                           ("ip_type", "u8"), ("protocol", "u8"), ("placeholder1", "u8"), ("placeholder2", "u8"))),
        ("burned_register", 7, (("netuid", "NetUid"), ("hotkey", "AccountId32"))),
        ("add_stake_limit", 88, (("hotkey", "AccountId32"), ("netuid", "NetUid"), ("amount_staked", "TaoBalance"),
                                 ("limit_price", "TaoBalance"), ("allow_partial", "bool"))),
        ("remove_stake_limit", 89, (("hotkey", "AccountId32"), ("netuid", "NetUid"),
                                    ("amount_unstaked", "AlphaBalance"), ("limit_price", "TaoBalance"),
                                    ("allow_partial", "bool"))),
        # Timelocked commits are stored with subtensor's checks but never revealed over this face: the
        # devnet reveals from a plaintext escrow only DevnetSubstrate attaches (contrib/DEVNET.md).
        ("commit_timelocked_mechanism_weights", 118, (("netuid", "NetUid"), ("mecid", "MechId"),
                                                      ("commit", "Vec<u8>"), ("reveal_round", "u64"),
                                                      ("commit_reveal_version", "u16"))),
        ("register_network", 59, (("hotkey", "AccountId32"),)),
        ("set_mechanism_weights", 119, (("netuid", "NetUid"), ("mecid", "MechId"), ("dests", "Vec<u16>"),
                                        ("weights", "Vec<u16>"), ("version_key", "u64"))),
    ],
    "Commitments": [("set_commitment", 0, (("netuid", "NetUid"), ("info", "CommitmentInfo")))],
    "Sudo": [("sudo", 0, (("call", "RuntimeCall"),))],
    # pallet_shield's user call, at its index; the author decrypts it (substrate_rpc/mev_shield.py).
    "MevShield": [("submit_encrypted", 1, (("ciphertext", "Vec<u8>"),))],
}


# Per-subnet hyperparameter storage types (pallets/subtensor/src/lib.rs).
_HP_TYPES = {
    "Tempo": "u16", "Kappa": "u16", "Rho": "u16", "MaxAllowedUids": "u16", "MinAllowedWeights": "u16",
    "MaxAllowedValidators": "u16", "ImmunityPeriod": "u16", "ActivityCutoff": "u16",
    "BondsMovingAverage": "u64", "BondsPenalty": "u16", "WeightsVersionKey": "u64",
    "ServingRateLimit": "u64", "Burn": "TaoBalance", "MinBurn": "TaoBalance", "MaxBurn": "TaoBalance",
    "WeightsSetRateLimit": "u64", "CommitRevealWeightsEnabled": "bool", "RevealPeriodEpochs": "u64",
    "MaxWeightsLimit": "u16", "NetworkRegistrationAllowed": "bool", "MaxRegistrationsPerBlock": "u16",
    "MinNonImmuneUids": "u16", "LiquidAlphaOn": "bool", "Yuma3On": "bool", "TransferToggle": "bool",
    "Difficulty": "u64", "AdjustmentAlpha": "u64", "AdjustmentInterval": "u16",
    "TargetRegistrationsPerInterval": "u16", "MaxDifficulty": "u64", "MinDifficulty": "u64",
    "BurnHalfLife": "u16", "BurnIncreaseMult": "U64F64", "ImmuneOwnerUidsLimit": "u16",
    "SubnetEpochConsensus": "EpochConsensus",
}
# Hyperparameters the SDK's `hyperparams.STORAGE_ITEMS` reads that the devnet does not model:
# served with their chain defaults (the runtime has no such rule).
_UNMODELLED_HP = {
    "ActivityCutoffFactorMilli": "u32", "NetworkPowRegistrationAllowed": "bool", "AlphaSigmoidSteepness": "i16",
    "MinChildkeyTakePerSubnet": "u16", "CollateralLockShare": "u16", "CollateralDrainRatio": "U64F64",
    "SubnetEmissionEnabled": "bool", "BondsResetOn": "bool", "OwnerCutEnabled": "bool",
    "OwnerCutAutoLockEnabled": "bool",
}
_GLOBAL_TYPES = {"StakeThreshold": "u64", "TxRateLimit": "u64", "AdminFreezeWindow": "u16",
                 "OwnerHyperparamRateLimit": "u16", "WeightsVersionKeyRateLimit": "u64",
                 "SubnetOwnerCut": "u16", "TotalNetworks": "u16", "CommitRevealWeightsVersion": "u16"}
CALLS["AdminUtils"] = _admin_calls()
_SUBNET_ITEMS = {
    "NetworksAdded": "bool", "SubnetOwner": "AccountId32", "SubnetOwnerHotkey": "AccountId32",
    "NetworkRegisteredAt": "u64", "LastUpdate": "Vec<u64>", "ValidatorPermit": "Vec<bool>",
    "Active": "Vec<bool>", "Consensus": "Vec<u16>", "Incentive": "Vec<u16>", "Dividends": "Vec<u16>",
    "ValidatorTrust": "Vec<u16>", "Emission": "Vec<AlphaBalance>", "Rank": "Vec<u16>", "Trust": "Vec<u16>",
    "PruningScores": "Vec<u16>", "SubnetworkN": "u16", "BlocksSinceLastStep": "u64",
    "LastMechansimStepBlock": "u64", "LastEpochBlock": "u64", "FirstEmissionBlockNumber": "Option<u64>",
    "SubtokenEnabled": "bool", "SubnetMechanism": "u16", "MechanismCountCurrent": "MechId",
    "SubnetEpochIndex": "u64", "PendingEpochAt": "u64", "PendingOwnerCut": "AlphaBalance",
    "PendingServerEmission": "AlphaBalance", "PendingValidatorEmission": "AlphaBalance",
    "SubnetLocked": "TaoBalance", "TokenSymbol": "Vec<u8>", "SubnetName": "Vec<u8>",
}
_OPTIONAL_SUBNET_ITEMS = {"FirstEmissionBlockNumber"}


def subtensor_storage() -> tuple[StorageDef, ...]:
    items: list[StorageDef] = []
    for name in DEFAULT_HYPERPARAMETERS:
        if name in _HP_TYPES and name not in GLOBAL_HYPERPARAMETERS:
            items.append(StorageDef(name, _HP_TYPES[name], (NETUID,)))
    for name, ty in _UNMODELLED_HP.items():
        if name not in _SUBNET_ITEMS:
            items.append(StorageDef(name, ty, (NETUID,)))
    for name, ty in _SUBNET_ITEMS.items():
        if name in _OPTIONAL_SUBNET_ITEMS:
            items.append(StorageDef(name, ty.removeprefix("Option<")[:-1], (NETUID,), "Optional"))
        else:
            items.append(StorageDef(name, ty, (NETUID,)))
    for name, ty in _GLOBAL_TYPES.items():
        if name != "SubnetOwnerCut":
            items.append(StorageDef(name, ty))
    items += [
        # Items the devnet does not model (no identities, no pools, no TAO flows): served, always empty.
        StorageDef("SubnetIdentitiesV3", "SubnetIdentityV3", (NETUID,), "Optional"),
        StorageDef("SubnetTaoInEmission", "TaoBalance", (NETUID,)),
        StorageDef("SubnetEmaTaoFlow", "(u64, I64F64)", (NETUID,), "Optional"),
        StorageDef("Lock", "LockState", (ACCOUNT, NETUID, ACCOUNT), "Optional"),
        StorageDef("Uids", "u16", (NETUID, ACCOUNT), "Optional"),
        StorageDef("Keys", "AccountId32", (NETUID, UID)),
        StorageDef("BlockAtRegistration", "u64", (NETUID, UID)),
        StorageDef("Owner", "AccountId32", (ACCOUNT,)),
        StorageDef("OwnedHotkeys", "Vec<AccountId32>", (ACCOUNT,)),
        StorageDef("StakingHotkeys", "Vec<AccountId32>", (ACCOUNT,)),
        StorageDef("IsNetworkMember", "bool", (ACCOUNT, NETUID)),
        StorageDef("Axons", "AxonInfo", (NETUID, ACCOUNT), "Optional"),
        StorageDef("Weights", "Vec<(u16, u16)>", (("Identity", "NetUidStorageIndex"), UID)),
        StorageDef("Bonds", "Vec<(u16, u16)>", (("Identity", "NetUidStorageIndex"), UID)),
        StorageDef("TotalHotkeyAlpha", "AlphaBalance", (ACCOUNT, NETUID)),
        StorageDef("TimelockedWeightCommits", "Vec<(AccountId32, u64, Vec<u8>, u64)>",
                   (("Twox64Concat", "NetUidStorageIndex"), ("Twox64Concat", "u64"))),
    ]
    return tuple(items)


def runtime_definition(slot_ms: int = DEFAULT_SLOT_MS) -> tuple[tuple[PalletDef, ...], tuple[ApiDef, ...]]:
    """The devnet runtime; `slot_ms` is its block time (`Aura.SlotDuration`, what the SDK times blocks by)."""
    pallets = (
        PalletDef("System", 0, storage=(
            StorageDef("Account", "AccountInfo", (ACCOUNT,)),
            StorageDef("Number", "u32"),
            StorageDef("BlockHash", "H256", (("Twox64Concat", "u32"),)),
            StorageDef("Events", "Vec<EventRecord>"),
        ), constants=(("SS58Prefix", "u16", (42).to_bytes(2, "little")),),
            event="SystemEvent", error="SystemError"),
        PalletDef("Timestamp", 2, storage=(StorageDef("Now", "u64"),)),
        PalletDef("Aura", 3, constants=(("SlotDuration", "u64", int(slot_ms).to_bytes(8, "little")),)),
        PalletDef("Balances", 5, storage=(StorageDef("TotalIssuance", "TaoBalance"),),
                  constants=(("ExistentialDeposit", "TaoBalance", (500).to_bytes(8, "little")),),
                  calls="BalancesCall", error="BalancesError"),
        PalletDef("SubtensorModule", 7, storage=subtensor_storage(), calls="SubtensorModuleCall",
                  event="SubtensorModuleEvent", error="SubtensorModuleError"),
        PalletDef("Sudo", 12, calls="SudoCall", error="SudoError"),
        PalletDef("AdminUtils", 19, calls="AdminUtilsCall", error="AdminUtilsError"),
        PalletDef("Commitments", 18, calls="CommitmentsCall", error="CommitmentsError", storage=(
            StorageDef("CommitmentOf", "Registration", (NETUID, ("Twox64Concat", "AccountId32")), "Optional"),
            StorageDef("LastCommitment", "u32", (NETUID, ("Twox64Concat", "AccountId32")), "Optional"),
            StorageDef("UsedSpaceOf", "UsageTracker", (NETUID, ("Twox64Concat", "AccountId32")), "Optional"),
            StorageDef("RevealedCommitments", "Vec<(Vec<u8>, u64)>",
                       (NETUID, ("Twox64Concat", "AccountId32")), "Optional"),
        )),
        # The author's rotating ML-KEM-768 keys (answered by substrate_rpc/mev_shield.py); AuthorKeys and the
        # store_encrypted queue are not served.
        PalletDef("MevShield", 30, calls="MevShieldCall", event="MevShieldEvent", error="MevShieldError", storage=(
            StorageDef("CurrentKey", "Vec<u8>", modifier="Optional"),
            StorageDef("PendingKey", "Vec<u8>", modifier="Optional"),
            StorageDef("NextKey", "Vec<u8>", modifier="Optional"),
            StorageDef("PendingKeyExpiresAt", "u32", modifier="Optional"),
            StorageDef("NextKeyExpiresAt", "u32", modifier="Optional"),
        )),
    )
    return pallets, runtime_apis()


def _zero_default(reg: TypeRegistry, expr: str) -> bytes:
    """A `ValueQuery` default: zero for numbers, false, empty vec (one zero byte suffices for
    compact/vec/bool/option; fixed-width values need their width)."""
    widths = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "u128": 16, "bool": 1,
              "i8": 1, "i16": 2, "i32": 4, "i64": 8, "i128": 16}
    named = {"NetUid": 2, "MechId": 1, "NetUidStorageIndex": 2, "TaoBalance": 8, "AlphaBalance": 8,
             "AccountId32": 32, "H256": 32, "U64F64": 16,
             "AccountInfo": 16 + 8 * 3 + 16, "AxonInfo": 8 + 4 + 16 + 2 + 4}
    if expr in widths:
        return bytes(widths[expr])
    if expr in named:
        return bytes(named[expr])
    return b"\x00"


def _storage_entry(reg: TypeRegistry, item: StorageDef) -> bytes:
    value_id = reg.resolve(item.value)
    if item.keys:
        key_expr = item.keys[0][1] if len(item.keys) == 1 else "(" + ", ".join(k for _, k in item.keys) + ")"
        ty = (b"\x01" + scale.vec([h for h, _ in item.keys], lambda h: scale.u8(HASHERS[h]))
              + scale.compact(reg.resolve(key_expr)) + scale.compact(value_id))
    else:
        ty = b"\x00" + scale.compact(value_id)
    default = item.default if item.default is not None else (
        b"\x00" if item.modifier == "Optional" else _zero_default(reg, item.value))
    modifier = b"\x00" if item.modifier == "Optional" else b"\x01"
    return scale.text(item.name) + modifier + ty + scale.blob(default) + scale.vec([], scale.text)


def _pallet(reg: TypeRegistry, pallet: PalletDef) -> bytes:
    storage = None
    if pallet.storage:
        storage = scale.text(pallet.name) + scale.vec(pallet.storage, lambda s: _storage_entry(reg, s))
    ty_ref = lambda name: scale.option(name, lambda n: scale.compact(reg.resolve(n)))  # noqa: E731
    constants = scale.vec(pallet.constants, lambda c: scale.text(c[0]) + scale.compact(reg.resolve(c[1]))
                          + scale.blob(c[2]) + scale.vec([], scale.text))
    return (scale.text(pallet.name) + scale.option(storage, lambda b: b) + ty_ref(pallet.calls)
            + ty_ref(pallet.event) + constants + ty_ref(pallet.error) + scale.u8(pallet.index)
            + scale.vec([], scale.text))


SIGNED_EXTENSIONS = (  # (identifier, extra type, additional-signed type)
    ("CheckNonZeroSender", "()", "()"),
    ("CheckSpecVersion", "()", "u32"),
    ("CheckTxVersion", "()", "u32"),
    ("CheckGenesis", "()", "H256"),
    ("CheckMortality", "Era", "H256"),
    ("CheckNonce", "Compact<u32>", "()"),
    ("CheckWeight", "()", "()"),
    ("ChargeTransactionPayment", "Compact<u64>", "()"),
    ("CheckMetadataHash", "Mode", "Option<[u8; 32]>"),
)


def _runtime_enums(reg: TypeRegistry, pallets: tuple[PalletDef, ...]) -> None:
    def outer(name: str, attr: str, path: str) -> None:
        reg.enum(name, path, [(p.name, p.index, [(None, getattr(p, attr))]) for p in pallets if getattr(p, attr)])
    outer("RuntimeCall", "calls", "node_subtensor_runtime::RuntimeCall")
    outer("RuntimeEvent", "event", "node_subtensor_runtime::RuntimeEvent")
    outer("RuntimeError", "error", "node_subtensor_runtime::RuntimeError")
    reg.enum("MultiAddress", "sp_runtime::multiaddress::MultiAddress", [
        ("Id", 0, [(None, "AccountId32")]), ("Index", 1, [(None, "Compact<()>")]),
        ("Raw", 2, [(None, "Vec<u8>")]), ("Address32", 3, [(None, "[u8; 32]")]),
        ("Address20", 4, [(None, "[u8; 20]")])])
    reg.enum("MultiSignature", "sp_runtime::MultiSignature", [
        ("Ed25519", 0, [(None, "[u8; 64]")]), ("Sr25519", 1, [(None, "[u8; 64]")]),
        ("Ecdsa", 2, [(None, "[u8; 65]")])])
    reg.enum("Era", "sp_runtime::generic::era::Era",
             [("Immortal", 0, [])] + [(f"Mortal{i}", i, [(None, "u8")]) for i in range(1, 256)])
    reg.enum("Mode", "frame_metadata_hash_extension::Mode", [("Disabled", 0, []), ("Enabled", 1, [])])


@dataclass(frozen=True)
class Metadata:
    """The encoded metadata and, per runtime-API method, the registry id of its inputs as one tuple."""

    data: bytes
    api_inputs: dict[tuple[str, str], int]


def build_metadata() -> bytes:
    """`b"meta" + 15 + RuntimeMetadataV15` for the devnet runtime."""
    return build().data


@lru_cache(maxsize=4)
def build(slot_ms: int = DEFAULT_SLOT_MS) -> Metadata:
    reg = TypeRegistry()
    _declare_types(reg)
    pallets, apis = runtime_definition(slot_ms)
    _runtime_enums(reg, pallets)
    pallet_bytes = scale.vec(pallets, lambda p: _pallet(reg, p))
    call_id, event_id, error_id = (reg.resolve(n) for n in ("RuntimeCall", "RuntimeEvent", "RuntimeError"))
    extra = "(" + ", ".join(ext for _, ext, _ in SIGNED_EXTENSIONS) + ")"
    extrinsic = (scale.u8(4) + scale.compact(reg.resolve("MultiAddress")) + scale.compact(call_id)
                 + scale.compact(reg.resolve("MultiSignature")) + scale.compact(reg.resolve(extra))
                 + scale.vec(SIGNED_EXTENSIONS, lambda e: scale.text(e[0]) + scale.compact(reg.resolve(e[1]))
                             + scale.compact(reg.resolve(e[2]))))
    runtime_ty = scale.compact(reg.resolve("()"))
    api_bytes = scale.vec(apis, lambda a: _api(reg, a))
    outer_enums = scale.compact(call_id) + scale.compact(event_id) + scale.compact(error_id)
    custom = scale.compact(0)
    body = pallet_bytes + extrinsic + runtime_ty + api_bytes + outer_enums + custom
    inputs = {(a.name, m.name): reg.resolve(_tuple_expr([t for _, t in m.inputs])) for a in apis for m in a.methods}
    return Metadata(b"meta" + scale.u8(METADATA_VERSION) + reg.encode() + body, inputs)


def _tuple_expr(types: list[str]) -> str:
    """A runtime-API method's inputs as one tuple type, so one decode splits them."""
    return "(" + ", ".join(types) + ("," if len(types) == 1 else "") + ")"


def _api(reg: TypeRegistry, api: ApiDef) -> bytes:
    def method(m: ApiMethod) -> bytes:
        return (scale.text(m.name)
                + scale.vec(m.inputs, lambda i: scale.text(i[0]) + scale.compact(reg.resolve(i[1])))
                + scale.compact(reg.resolve(m.output)) + scale.vec([], scale.text))
    return scale.text(api.name) + scale.vec(api.methods, method) + scale.vec([], scale.text)
