"""Yuma Consensus (original Yuma, `Yuma3On = false`) as pure numpy functions.

The devnet runs this once per tempo per subnet. It mirrors subtensor's
`epoch_dense` / `epoch_mechanism` (opentensor/subtensor
`pallets/subtensor/src/epoch/run_epoch.rs`, RaoFoundation HEAD
`epoch/run_epoch/epoch_mechanism.rs`), step for step, in float64 instead of
I32F32 fixed point; see /work/shared/notes/devnet-reference.md §4.

HEAD owner rules are included: the subnet owner UID is exempt from the stake
threshold, always holds a validator permit (old and new), and keeps its
self-weight. Rows and columns are UIDs; weights are `W[i, j]` = weight set by
validator i on neuron j.

Not modelled: Yuma3 / liquid alpha, commit-reveal masks, root/child stake
(callers pass total stake), the `current_block - tempo` fallback for the
registration mask when no epoch has run yet (no bonds exist then anyway).

Every function is pure: inputs are never mutated and no I/O happens except one
debug log line per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from loguru import logger

from subnet.errors import ChainError

U16_MAX = 65535
# Slack for float sums compared with kappa: I32F32 resolves ~2.3e-10, and the
# chain's own kappa (32767/65535) is never this close to a stake boundary.
_KAPPA_TOL = 1e-9
# Values within this many u16 units below an integer are rounded up in to_u16,
# so float noise (0.99999999999 * 65535) does not lose a whole unit.
_U16_SLACK = 1e-6

__all__ = [
    "U16_MAX",
    "YumaInputError",
    "YumaInputs",
    "YumaOutputs",
    "activity_mask",
    "active_stake",
    "bonds_registration_mask",
    "clip_weights",
    "col_max_upscale",
    "col_normalize",
    "compute_bonds",
    "compute_dividends",
    "emission_shares",
    "epoch_emission",
    "filter_stake",
    "mask_weights",
    "normalize",
    "row_normalize",
    "split_emission",
    "to_u16",
    "topk_nonzero",
    "validator_permits",
    "weighted_median_col",
    "yuma_epoch",
]


class YumaInputError(ChainError, ValueError):
    """Epoch inputs that do not describe a valid subnet state."""


# ---------------------------------------------------------------- inputs/outputs


@dataclass(frozen=True, kw_only=True, eq=False)
class YumaInputs:
    """One subnet's state at an epoch (arrays indexed by UID, length n)."""

    weights: np.ndarray  # [n, n] row i = weights set by uid i (u16 or floats; row-normalised here)
    stake: np.ndarray  # [n] total stake per uid (any unit, e.g. rao)
    last_update: np.ndarray  # [n] block of each uid's last set_weights
    block_at_registration: np.ndarray  # [n]
    validator_permit: np.ndarray  # [n] bool, permits from the previous epoch
    bonds: np.ndarray  # [n, n] previous bonds as stored (u16 scale, column max-upscaled)
    current_block: int
    activity_cutoff: int  # blocks
    kappa: float  # 0..1 (chain stores u16/65535)
    bonds_moving_average: float  # per-million, e.g. 900_000 -> EMA alpha 0.1
    bonds_penalty: float  # beta in 0..1
    max_allowed_validators: int
    last_epoch_block: int  # block of the last epoch (new-registration bond mask)
    owner_uid: int | None = None
    stake_threshold: float = 0.0  # same unit as `stake`; owner exempt

    def __post_init__(self) -> None:
        w = _as_float_matrix("weights", self.weights)
        n = w.shape[0]
        if w.shape != (n, n):
            raise YumaInputError(f"weights must be square [n, n], got shape {w.shape}")
        coerced: dict[str, Any] = {
            "weights": w,
            "bonds": _as_float_matrix("bonds", self.bonds),
            "stake": _as_float_vector("stake", self.stake),
            "last_update": _as_int_vector("last_update", self.last_update),
            "block_at_registration": _as_int_vector("block_at_registration", self.block_at_registration),
            "validator_permit": np.asarray(self.validator_permit, dtype=bool),
        }
        for name, arr in coerced.items():
            want = (n, n) if name in ("weights", "bonds") else (n,)
            if arr.shape != want:
                raise YumaInputError(f"{name} must have shape {want}, got {arr.shape}")
            object.__setattr__(self, name, arr)
        if np.any(coerced["bonds"] > U16_MAX):
            raise YumaInputError("bonds must be u16-scale values in [0, 65535]")
        _check_range("kappa", self.kappa, 0.0, 1.0)
        _check_range("bonds_penalty", self.bonds_penalty, 0.0, 1.0)
        _check_range("bonds_moving_average", self.bonds_moving_average, 0.0, 1_000_000.0)
        _check_range("stake_threshold", self.stake_threshold, 0.0, np.inf)
        for name in ("current_block", "activity_cutoff", "max_allowed_validators", "last_epoch_block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise YumaInputError(f"{name} must be a non-negative int, got {value!r}")
        if self.owner_uid is not None and not (0 <= int(self.owner_uid) < n):
            raise YumaInputError(f"owner_uid {self.owner_uid} is not a uid of this subnet (n={n})")

    @property
    def n(self) -> int:
        return int(self.stake.shape[0])


@dataclass(frozen=True, kw_only=True, eq=False)
class YumaOutputs:
    """Epoch results as float proportions; `bonds` is already u16 storage form."""

    active: np.ndarray  # [n] bool
    stake_norm: np.ndarray  # [n] S, thresholded and normalised
    active_stake: np.ndarray  # [n] S_a, inactive / non-permitted masked, normalised
    new_validator_permit: np.ndarray  # [n] bool
    consensus: np.ndarray  # [n] C_j
    validator_trust: np.ndarray  # [n] sum_j Wc_ij
    rank: np.ndarray  # [n] normalised rank, as the pre-HEAD chain stored Rank (== incentive)
    incentive: np.ndarray  # [n] I, sums to 1 or 0
    dividends: np.ndarray  # [n] D, sums to 1 or 0
    bonds: np.ndarray  # [n, n] int64 u16 values, column max-upscaled, rows without new permit cleared
    server_emission_share: np.ndarray  # [n] I / (sum I + sum D)
    validator_emission_share: np.ndarray  # [n] D / (sum I + sum D), or the stake fallback

    def as_storage(self) -> dict[str, list[int] | list[bool]]:
        """Per-subnet vectors under subtensor's storage names, u16-quantised."""
        return {
            "Active": self.active.tolist(),
            "ValidatorPermit": self.new_validator_permit.tolist(),
            "StakeWeight": to_u16(self.stake_norm).tolist(),
            "Consensus": to_u16(self.consensus).tolist(),
            "ValidatorTrust": to_u16(self.validator_trust).tolist(),
            "Rank": to_u16(self.rank).tolist(),
            "Incentive": to_u16(self.incentive).tolist(),
            "Dividends": to_u16(self.dividends).tolist(),
        }


# ---------------------------------------------------------------- validation helpers


def _as_float_matrix(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 0)
    if arr.ndim != 2:
        raise YumaInputError(f"{name} must be a 2-D matrix, got {arr.ndim} dimensions")
    _check_finite_nonneg(name, arr)
    return arr


def _as_float_vector(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise YumaInputError(f"{name} must be a 1-D vector, got {arr.ndim} dimensions")
    _check_finite_nonneg(name, arr)
    return arr


def _as_int_vector(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise YumaInputError(f"{name} must be a 1-D vector, got {arr.ndim} dimensions")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise YumaInputError(f"{name} must hold integer block numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise YumaInputError(f"{name} must be non-negative block numbers")
    return arr


def _check_finite_nonneg(name: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        raise YumaInputError(f"{name} contains NaN or infinity")
    if np.any(arr < 0):
        raise YumaInputError(f"{name} contains negative values")


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise YumaInputError(f"{name} must be a number, got {value!r}")
    if not (lo <= float(value) <= hi):
        raise YumaInputError(f"{name} must be in [{lo}, {hi}], got {value}")


# ---------------------------------------------------------------- vector/matrix maths


def normalize(x: np.ndarray) -> np.ndarray:
    """x / sum(x); an all-zero vector stays zero (chain `inplace_normalize`)."""
    total = float(x.sum())
    return x / total if total > 0 else np.zeros_like(x, dtype=np.float64)


def row_normalize(m: np.ndarray) -> np.ndarray:
    """Each row sums to 1; all-zero rows stay zero."""
    sums = m.sum(axis=1, keepdims=True)
    return np.divide(m, sums, out=np.zeros_like(m, dtype=np.float64), where=sums > 0)


def col_normalize(m: np.ndarray) -> np.ndarray:
    """Each column sums to 1; all-zero columns stay zero."""
    sums = m.sum(axis=0, keepdims=True)
    return np.divide(m, sums, out=np.zeros_like(m, dtype=np.float64), where=sums > 0)


def col_max_upscale(m: np.ndarray) -> np.ndarray:
    """Each column's max becomes 1 (how the chain stores bonds)."""
    maxes = m.max(axis=0, keepdims=True) if m.size else np.zeros((1, m.shape[1]))
    return np.divide(m, maxes, out=np.zeros_like(m, dtype=np.float64), where=maxes > 0)


def to_u16(x: np.ndarray) -> np.ndarray:
    """Proportions in [0, 1] -> u16 ints as the chain stores them (floor of x*65535).

    I32F32 `to_num::<u16>` truncates; a tiny slack absorbs float error so that
    exactly-1.0-in-theory values map to 65535. Returns int64 (values 0..65535)
    so callers can do arithmetic without u16 overflow.
    """
    scaled = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0) * U16_MAX
    return np.floor(scaled + _U16_SLACK).astype(np.int64)


# ---------------------------------------------------------------- steps 1-2: activity, stake, permits


def activity_mask(last_update: np.ndarray, current_block: int, activity_cutoff: int) -> np.ndarray:
    """active_i = LastUpdate[i] + activity_cutoff >= current_block."""
    return last_update + activity_cutoff >= current_block


def filter_stake(stake: np.ndarray, threshold: float, owner_uid: int | None) -> np.ndarray:
    """Zero stakes below StakeThreshold (owner exempt), before normalisation."""
    keep = stake >= threshold
    if owner_uid is not None:
        keep[owner_uid] = True
    return np.where(keep, stake, 0.0)


def topk_nonzero(stake: np.ndarray, k: int) -> np.ndarray:
    """Chain `is_topk_nonzero`: top-k by stake among nonzero entries.

    Ties follow the chain's ascending stable sort: the bottom n-k are dropped in
    (stake, uid) order, so among equal stakes the higher uid keeps its permit.
    """
    n = stake.shape[0]
    result = stake != 0
    if n < k:
        return result
    order = np.argsort(stake, kind="stable")
    result[order[: n - k]] = False
    return result


def validator_permits(stake_norm: np.ndarray, k: int, owner_uid: int | None) -> np.ndarray:
    """New permits: top-k nonzero stake, plus the owner (HEAD rule)."""
    permits = topk_nonzero(stake_norm, k)
    if owner_uid is not None:
        permits[owner_uid] = True
    return permits


def active_stake(stake_norm: np.ndarray, active: np.ndarray, permit: np.ndarray) -> np.ndarray:
    """S_a: stake of active uids holding the (previous) permit, re-normalised."""
    return normalize(np.where(active & permit, stake_norm, 0.0))


# ---------------------------------------------------------------- step 3: weights


def mask_weights(
    weights: np.ndarray,
    permit: np.ndarray,
    last_update: np.ndarray,
    block_at_registration: np.ndarray,
    owner_uid: int | None,
) -> np.ndarray:
    """Drop non-permitted rows, self-weights (owner's kept) and outdated entries.

    Outdated: W_ij where LastUpdate[i] <= BlockAtRegistration[j], i.e. the
    weight predates j's (re-)registration and was meant for the previous holder.
    """
    n = weights.shape[0]
    keep = permit[:, None] & (last_update[:, None] > block_at_registration[None, :])
    diag = np.eye(n, dtype=bool)
    if owner_uid is not None:
        diag[owner_uid, owner_uid] = False
    keep &= ~diag
    return np.where(keep, weights, 0.0)


# ---------------------------------------------------------------- steps 4-6: consensus, clip, incentive


def weighted_median_col(stake: np.ndarray, weights: np.ndarray, kappa: float) -> np.ndarray:
    """Stake-weighted median per column, chain semantics.

    C_j = max{ w in column j : sum of stake over rows with W_ij >= w is >= kappa },
    taken over rows with stake > 0 (their stake re-normalised), without
    interpolation; this is what the chain's mid-pivot partition returns. With no
    staked rows every C_j is 0. Vectorised: sort each column descending and take
    the first value where the cumulative stake reaches kappa.
    """
    stake = np.asarray(stake, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    cols = weights.shape[1]
    use = stake > 0
    if not use.any():
        return np.zeros(cols)
    s = stake[use] / stake[use].sum()
    w = weights[use]  # [m, cols]
    order = np.argsort(-w, axis=0, kind="stable")
    w_sorted = np.take_along_axis(w, order, axis=0)
    cum = np.cumsum(s[order], axis=0)
    reached = cum >= kappa - _KAPPA_TOL
    first = np.where(reached.any(axis=0), reached.argmax(axis=0), w.shape[0] - 1)
    return w_sorted[first, np.arange(cols)]


def clip_weights(weights: np.ndarray, consensus: np.ndarray) -> np.ndarray:
    """Wc_ij = min(W_ij, C_j)."""
    return np.minimum(weights, consensus[None, :])


# ---------------------------------------------------------------- steps 7-8: bonds, dividends


def bonds_registration_mask(block_at_registration: np.ndarray, last_epoch_block: int) -> np.ndarray:
    """Columns whose uid registered since the last epoch (`last_epoch_block + 1 <= reg`)."""
    return block_at_registration >= last_epoch_block + 1


def compute_bonds(
    bonds_stored: np.ndarray,
    weights_for_bonds: np.ndarray,
    stake_a: np.ndarray,
    alpha: float,
    recently_registered: np.ndarray,
) -> np.ndarray:
    """Original-Yuma EMA bonds, column-normalised (sum_i B_ij = 1 or 0).

    B_old: stored bonds with recently registered columns masked, col-normalised.
    dB = S_a * Wb col-normalised; B = col_norm(alpha*dB + (1-alpha)*B_old).
    """
    b_old = col_normalize(np.where(recently_registered[None, :], 0.0, bonds_stored))
    delta = col_normalize(weights_for_bonds * stake_a[:, None])
    return col_normalize(alpha * delta + (1.0 - alpha) * b_old)


def compute_dividends(bonds: np.ndarray, incentive: np.ndarray) -> np.ndarray:
    """D_i = sum_j B_ij I_j, normalised."""
    return normalize(bonds @ incentive)


# ---------------------------------------------------------------- steps 10: emission


def emission_shares(
    incentive: np.ndarray, dividends: np.ndarray, stake_a: np.ndarray, stake_norm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(server, validator) shares of the epoch emission; together they sum to 1.

    I/(sum I + sum D) and D/(sum I + sum D). When both are zero (no weights,
    outdated or self-only weights) everything goes to validators pro rata S_a,
    or S if there is no active stake; with zero stake everywhere nothing is
    paid, as on chain.
    """
    total = float(incentive.sum() + dividends.sum())
    if total > 0:
        return incentive / total, dividends / total
    fallback = stake_a if stake_a.any() else stake_norm
    return np.zeros_like(incentive), fallback.copy()


def split_emission(total: float, owner_cut: float = 0.18) -> tuple[float, float]:
    """(owner, miners_and_validators). Int totals (rao) stay ints and are conserved."""
    _check_range("owner_cut", owner_cut, 0.0, 1.0)
    if isinstance(total, bool) or not isinstance(total, (int, float, np.integer, np.floating)):
        raise YumaInputError(f"total emission must be a number, got {total!r}")
    if not np.isfinite(total) or total < 0:
        raise YumaInputError(f"total emission must be finite and >= 0, got {total}")
    if isinstance(total, (int, np.integer)):
        owner = int(int(total) * owner_cut)
        return owner, int(total) - owner
    owner_f = float(total) * owner_cut
    return owner_f, float(total) - owner_f


def epoch_emission(out: YumaOutputs, pending: float) -> np.ndarray:
    """Per-uid emission (server + validator parts) of `pending` alpha.

    An int `pending` (rao) gives int64 amounts, each part floored as the chain
    does (so a few rao of dust may be lost); a float gives exact float shares.
    """
    if isinstance(pending, bool) or not isinstance(pending, (int, float, np.integer, np.floating)):
        raise YumaInputError(f"pending emission must be a number, got {pending!r}")
    if not np.isfinite(pending) or pending < 0:
        raise YumaInputError(f"pending emission must be finite and >= 0, got {pending}")
    server = out.server_emission_share * float(pending)
    validator = out.validator_emission_share * float(pending)
    if isinstance(pending, (int, np.integer)):
        return np.floor(server).astype(np.int64) + np.floor(validator).astype(np.int64)
    return server + validator


# ---------------------------------------------------------------- the epoch


def yuma_epoch(inp: YumaInputs) -> YumaOutputs:
    """Run one original-Yuma epoch over a subnet's state (§4.2 steps 1-10)."""
    owner = None if inp.owner_uid is None else int(inp.owner_uid)

    # 1-2. activity, stake, permits
    active = activity_mask(inp.last_update, inp.current_block, inp.activity_cutoff)
    stake_norm = normalize(filter_stake(inp.stake, inp.stake_threshold, owner))
    old_permit = inp.validator_permit.copy()
    if owner is not None:
        old_permit[owner] = True
    new_permit = validator_permits(stake_norm, inp.max_allowed_validators, owner)
    s_a = active_stake(stake_norm, active, old_permit)

    # 3. weights
    w = row_normalize(mask_weights(inp.weights, old_permit, inp.last_update, inp.block_at_registration, owner))

    # 4-6. consensus, clipping, trust, rank, incentive
    consensus = weighted_median_col(s_a, w, float(inp.kappa))
    wc = clip_weights(w, consensus)
    validator_trust = wc.sum(axis=1)
    incentive = normalize(s_a @ wc)

    # 7-8. bonds and dividends
    beta = float(inp.bonds_penalty)
    wb = (1.0 - beta) * w + beta * wc
    alpha = 1.0 - float(inp.bonds_moving_average) / 1_000_000.0
    recent = bonds_registration_mask(inp.block_at_registration, inp.last_epoch_block)
    bonds = compute_bonds(inp.bonds, wb, s_a, alpha, recent)
    dividends = compute_dividends(bonds, incentive)
    stored_bonds = np.where(new_permit[:, None], to_u16(col_max_upscale(bonds)), 0)

    # 10. emission shares
    server_share, validator_share = emission_shares(incentive, dividends, s_a, stake_norm)

    logger.debug(
        "yuma epoch n={} block={} validators={} active_stake_uids={} sum_I={:.3f} sum_D={:.3f}",
        inp.n, inp.current_block, int(new_permit.sum()), int((s_a > 0).sum()),
        float(incentive.sum()), float(dividends.sum()),
    )
    return YumaOutputs(
        active=active,
        stake_norm=stake_norm,
        active_stake=s_a,
        new_validator_permit=new_permit,
        consensus=consensus,
        validator_trust=validator_trust,
        rank=incentive.copy(),
        incentive=incentive,
        dividends=dividends,
        bonds=stored_bonds.astype(np.int64),
        server_emission_share=server_share,
        validator_emission_share=validator_share,
    )
