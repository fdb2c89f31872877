"""Owner hyperparameter rate limits and the admin freeze window, as AdminUtils applies them.

Ported from subtensor 14bc6f9: `pallets/admin-utils/src/lib.rs` (which setter
checks what, and in which order), `utils/misc.rs`
(`ensure_sn_owner_or_root_with_limits`, `is_in_admin_freeze_window`,
`ensure_admin_window_open`, `record_owner_rl`) and `utils/rate_limiting.rs`
(`TransactionType::OwnerHyperparamUpdate(Hyperparameter)` limited to
`OwnerHyperparamRateLimit` tempos per subnet *and* hyperparameter;
`SetWeightsVersionKey` limited to `WeightsVersionKeyRateLimit` tempos per
owner and subnet; `check_passes_rate_limit`: a first call always passes).

Order in every owner-settable setter: origin, then the owner's rate limit
(`TxRateLimitExceeded`; root is exempt), then the freeze window
(`AdminActionProhibitedDuringWeightsWindow`, which binds root too): the last
`AdminFreezeWindow` blocks before `LastEpochBlock + tempo`. Root-only setters
listed in `ROOT_WINDOWED` check the window as well; the rest check nothing.
"""

from __future__ import annotations

from subnet.devnet.runtime.base import DispatchError
from subnet.devnet.runtime.chain import Runtime
from subnet.devnet.runtime.epoch import next_epoch_start_block

# The global limits themselves (AdminFreezeWindow 10 blocks, OwnerHyperparamRateLimit 2 tempos,
# WeightsVersionKeyRateLimit 5 tempos) are config.GLOBAL_HYPERPARAMETERS.
# Setter -> the `Hyperparameter` its owner rate limit is keyed by (rate_limiting.rs).
OWNER_LIMITED: dict[str, str] = {
    "sudo_set_serving_rate_limit": "ServingRateLimit",
    "sudo_set_max_difficulty": "MaxDifficulty",
    "sudo_set_adjustment_alpha": "AdjustmentAlpha",
    "sudo_set_immunity_period": "ImmunityPeriod",
    "sudo_set_min_allowed_weights": "MinAllowedWeights",
    "sudo_set_max_allowed_uids": "MaxAllowedUids",
    "sudo_set_rho": "Rho",
    "sudo_set_activity_cutoff": "ActivityCutoff",
    "sudo_set_min_burn": "MinBurn",
    "sudo_set_max_burn": "MaxBurn",
    "sudo_set_bonds_moving_average": "BondsMovingAverage",
    "sudo_set_bonds_penalty": "BondsPenalty",
    "sudo_set_commit_reveal_weights_enabled": "CommitRevealEnabled",
    "sudo_set_liquid_alpha_enabled": "LiquidAlphaEnabled",
    "sudo_set_commit_reveal_weights_interval": "WeightCommitInterval",
    "sudo_set_toggle_transfer": "TransferEnabled",
    "sudo_set_yuma3_enabled": "Yuma3Enabled",
    "sudo_set_burn_half_life": "BurnHalfLife",
    "sudo_set_owner_immune_neuron_limit": "ImmuneNeuronLimit",
}
VERSION_KEY_SETTER = "sudo_set_weights_version_key"
# Root-only setters that still refuse inside the freeze window.
ROOT_WINDOWED = frozenset({
    "sudo_set_tempo", "sudo_set_max_allowed_validators", "sudo_set_difficulty", "sudo_set_min_difficulty",
    "sudo_set_target_registrations_per_interval", "sudo_set_max_registrations_per_block",
})


def freeze_window(rt: Runtime) -> int:
    return rt.global_param("AdminFreezeWindow")


def in_freeze_window(rt: Runtime, rec: dict) -> bool:
    """`is_in_admin_freeze_window`: fewer than AdminFreezeWindow blocks left to the next epoch."""
    start = next_epoch_start_block(rec)
    if start is None:
        return False
    return max(0, start - rt.block) < freeze_window(rt)


def rate_limit_blocks(rt: Runtime, rec: dict, method: str) -> int:
    tempo = int(rec["hp"]["Tempo"])
    if method == VERSION_KEY_SETTER:
        return tempo * rt.global_param("WeightsVersionKeyRateLimit")
    return tempo * rt.global_param("OwnerHyperparamRateLimit")


def _rl_key(rec: dict, method: str, who: str) -> str:
    if method == VERSION_KEY_SETTER:  # TransactionKeyLastBlock((owner, netuid, SetWeightsVersionKey))
        return f"rl:{rec['netuid']}:SetWeightsVersionKey:{who}"
    return f"rl:{rec['netuid']}:{OWNER_LIMITED[method]}"  # LastRateLimitedBlock(OwnerHyperparamUpdate)


def is_limited(method: str) -> bool:
    return method in OWNER_LIMITED or method == VERSION_KEY_SETTER


def check(rt: Runtime, rec: dict, method: str, owner: str | None) -> None:
    """Before the write: the owner's rate limit, then the freeze window (root only the latter)."""
    limited = is_limited(method)
    if limited and owner is not None:
        last = int(rt.store.get(_rl_key(rec, method, owner)) or 0)
        limit = rate_limit_blocks(rt, rec, method)
        if not (last == 0 or rt.block - last >= limit):
            raise DispatchError("TxRateLimitExceeded",
                                f"last owner update at block {last}; the limit is {limit} blocks")
    if (limited or method in ROOT_WINDOWED) and in_freeze_window(rt, rec):
        start = next_epoch_start_block(rec)
        raise DispatchError("AdminActionProhibitedDuringWeightsWindow",
                            f"block {rt.block} is within {freeze_window(rt)} blocks of the epoch at {start}")


def record(rt: Runtime, rec: dict, method: str, owner: str | None) -> None:
    """`record_owner_rl`: remember the owner's update block (root calls are not recorded)."""
    if owner is not None and is_limited(method):
        rt.store.put(_rl_key(rec, method, owner), rt.block)

