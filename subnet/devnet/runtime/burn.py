"""The registration burn price: x BurnIncreaseMult per registration, decaying by half every BurnHalfLife blocks.

Ported from subtensor 14bc6f9 `subnets/registration.rs`
(`update_registration_prices_for_networks`, run first in `block_step`, and
`bump_registration_price_after_registration`) and `utils/misc.rs`
(`decay_factor_q32`, `pow_q32`, `mul_by_q32`): the same Q32 / U64F64 integer
arithmetic, so the devnet's burn matches the chain's to the rao.
"""

from __future__ import annotations

from functools import lru_cache

from subnet.devnet.runtime.chain import Runtime

Q32_ONE = 1 << 32
DEFAULT_HALF_LIFE = 360  # DefaultBurnHalfLife
DEFAULT_INCREASE_MULT = 1.26  # DefaultBurnIncreaseMult


def mul_by_q32(value: int, factor_q32: int) -> int:
    return min((int(value) * int(factor_q32)) >> 32, 2**64 - 1)


def pow_q32(base_q32: int, exp: int) -> int:
    result, factor, power = Q32_ONE, int(base_q32), int(exp)
    while power > 0:
        if power & 1:
            result = mul_by_q32(result, factor)
        power >>= 1
        if power > 0:
            factor = mul_by_q32(factor, factor)
    return result


@lru_cache(maxsize=64)
def decay_factor_q32(half_life: int) -> int:
    """The per-block factor f (Q32) with f ** half_life <= 1/2, by the chain's bisection."""
    if half_life == 0:
        return Q32_ONE
    lo, hi = 0, Q32_ONE
    while lo + 1 < hi:
        mid = lo + ((hi - lo) >> 1)
        if pow_q32(mid, half_life) > Q32_ONE >> 1:
            hi = mid
        else:
            lo = mid
    return lo


def _clamp(hp: dict, burn: int) -> int:
    return max(int(hp["MinBurn"]), min(int(hp["MaxBurn"]), int(burn)))


def decay_all(rt: Runtime) -> None:
    """Every block, before anything else: decay each subnet's burn once, clamped to MinBurn..MaxBurn."""
    for netuid in rt.netuids():
        rec = rt.store.get(f"net:{netuid}")
        if rec is None:
            continue
        hp = rec["hp"]
        burn = int(hp["Burn"])
        half_life = int(hp.get("BurnHalfLife", DEFAULT_HALF_LIFE))
        new = mul_by_q32(burn, decay_factor_q32(half_life)) if half_life > 0 and rt.block > 1 else burn
        new = _clamp(hp, new)
        if new != burn:
            rt.subnet_mut(netuid)["hp"]["Burn"] = new


def bump_after_registration(rt: Runtime, netuid: int) -> None:
    """`bump_registration_price_after_registration`: burn * max(mult, 1) in U64F64, truncated, clamped."""
    rec = rt.subnet_mut(netuid)
    hp = rec["hp"]
    mult = max(float(hp.get("BurnIncreaseMult", DEFAULT_INCREASE_MULT)), 1.0)
    bits = int(mult * 2**64)  # U64F64::from_num(f64): exact for an f64 scaled by 2^64
    hp["Burn"] = _clamp(hp, (int(hp["Burn"]) * bits) >> 64)
