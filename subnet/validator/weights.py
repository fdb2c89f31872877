"""Turn the competition's weights into a vector the SDK and the chain accept.

The competition (``competition.compute_weights``) gives a few winners (and
maybe the burn uid) nonzero weight and everyone else exactly 0. Real subnets
refuse such a vector: subtensor's ``set_weights`` wants at least
``min(MinAllowedWeights, n)`` entries (the runtime default is 1024; a new
subnet starts at 1 (`init_new_network`), and owners may raise it), the
SDK's ``SetWeights`` preflight wants at least the raw ``MinAllowedWeights``
nonzero entries after u16 quantization, and no entry may exceed
``MaxWeightsLimit`` of the row's total. ``plan_weights`` meets those rules
without changing what the competition means:

Floor spread (count rule). The vector is quantized the way the chain stores
it (max-upscaled u16, the top entry exactly 65535). When it has fewer than
MinAllowedWeights nonzero entries, **every** registered non-winner (other
than the validator itself, unless even that is needed) gets the same floor,
u16 value 1, the smallest nonzero weight; winners keep at least 2. So:

- every winner stays strictly above every floor entry, and winners keep
  their relative order (up to u16 rounding);
- the floor is equal for all non-winners, so it ranks nobody above anybody
  and every validator spreads it the same way (no disagreement for Yuma's
  consensus clipping to punish);
- the floor's total share is at most (n - 1) / 65535 (0.39 % at n = 256):
  winners keep >= 1 - n/65535 of the mass.

Max-weight rule. When the top entry exceeds ``MaxWeightsLimit``/65535 of
the row (the limit defaults to 65535, i.e. no cap, and owners cannot set it),
the top entries are water-filled down to the cap exactly as the SDK's
``clip_to_max_weight`` would do, with one u16 step of margin; if the vector
has too few entries to fit under the cap, the floor is spread first so the
excess lands evenly. Order is then kept weakly (the clipped top places tie):
that is the most the chain allows.

Where the subnet's settings make any valid vector impossible (MinAllowedWeights
above n, which the SDK refuses outright; a cap no n entries can meet; a
required version key above ours) ``plan_weights`` raises ``WeightsImpossible``
naming the hyperparameter, its value and the owner's fix, instead of letting
the validator retry a vector that can never land.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from subnet.errors import ConfigError

U16_MAX = 65535
FLOOR = 1  # u16 value of a floor entry
WINNER_MIN = 2  # a winner is always strictly above the floor


class WeightsImpossible(ConfigError):
    """The subnet's hyperparameters admit no weight vector this validator could send."""

    def __init__(self, netuid: int, hyperparameter: str, value: int, why: str, fix: str) -> None:
        super().__init__(f"subnet {netuid}: {hyperparameter} = {value} makes setting weights impossible: {why}",
                         remediation=fix)
        self.netuid = netuid
        self.hyperparameter = hyperparameter
        self.value = value
        self.fix = fix


@dataclass(frozen=True, kw_only=True)
class WeightRules:
    """The subnet's weight hyperparameters and this validator's row, read at one cadence."""

    netuid: int
    n: int
    """Registered uids on the subnet (SubnetworkN)."""
    min_allowed: int
    """MinAllowedWeights, raw (the SDK does not cap it at n; the chain does)."""
    max_weight_limit: int = U16_MAX
    """MaxWeightsLimit: the largest entry may be at most this/65535 of the row's total."""
    rate_limit: int = 0
    """WeightsSetRateLimit in blocks; applies to plaintext sets and to commits."""
    commit_reveal: bool = False
    """CommitRevealWeightsEnabled: weights go through a timelocked commit."""
    reveal_period: int = 1
    """RevealPeriodEpochs: epochs between a commit and its reveal."""
    tempo: int = 360
    weights_version: int = 0
    """WeightsVersionKey the subnet requires (0: any)."""
    self_uid: int | None = None
    last_update: int = 0
    """This validator's LastUpdate (block of its last set, commit or reveal)."""
    block: int = 0
    """The head when these were read."""

    def epoch_blocks(self) -> int:
        return max(1, self.tempo + 1)


@dataclass(frozen=True)
class WeightPlan:
    """What to send: parallel uids/u16 values (top exactly 65535), and how they were derived."""

    uids: tuple[int, ...]
    values: tuple[int, ...]
    floor: tuple[int, ...] = ()
    clipped: bool = False

    def as_weights(self) -> dict[int, float]:
        """The {uid: weight} mapping for ``bt.SetWeights``; the SDK's normalize reproduces the values exactly."""
        return {u: float(v) for u, v in zip(self.uids, self.values)}

    def winner_share(self) -> float:
        """Share of the row's mass on non-floor entries."""
        total = sum(self.values)
        floor = set(self.floor)
        return sum(v for u, v in zip(self.uids, self.values) if u not in floor) / total if total else 0.0


def required_count(rules: WeightRules) -> int:
    """Nonzero entries both the SDK (raw MinAllowedWeights) and the chain (min of it and n) accept.

    The SDK's raw count is the binding one; ``check_rules`` refuses it above n.
    """
    return max(0, rules.min_allowed)


def cap_count(max_weight_limit: int) -> int:
    """Fewest entries that fit strictly under the cap with one u16 step of margin (1 when uncapped)."""
    if max_weight_limit >= U16_MAX:
        return 1
    margin = max_weight_limit - 1
    return U16_MAX // margin + 1 if margin > 0 else 1 << 31


def fits_cap(values: Mapping[int, int] | list[int], limit: int) -> bool:
    """The chain's MaxWeightExceeded check on max-upscaled values: max * 65535 <= limit * sum."""
    vals = list(values.values()) if isinstance(values, Mapping) else list(values)
    if not vals or limit >= U16_MAX:
        return True
    return max(vals) * U16_MAX <= limit * sum(vals)


def check_rules(rules: WeightRules, version_key: int) -> None:
    """Raise ``WeightsImpossible`` where no vector can satisfy the subnet's settings."""
    n, netuid = rules.n, rules.netuid
    if rules.min_allowed > n:
        raise WeightsImpossible(
            netuid, "min_allowed_weights", rules.min_allowed,
            f"the subnet has only {n} uids and the SDK's SetWeights refuses fewer than "
            f"{rules.min_allowed} nonzero weights (the chain would cap it at n, the SDK does not)",
            f"the subnet owner runs `btcli sudo set --netuid {netuid} --name min_allowed_weights "
            f"--value {max(1, n)}` (any value <= {max(1, n)} works; Tessera spreads a floor to meet it)")
    if n < cap_count(rules.max_weight_limit):
        raise WeightsImpossible(
            netuid, "max_weight_limit", rules.max_weight_limit,
            f"{n} uids cannot each stay under {rules.max_weight_limit}/65535 of a row",
            "MaxWeightsLimit is not owner-settable: register more uids, or ask the chain's root to raise it")
    if rules.weights_version and version_key < rules.weights_version:
        raise WeightsImpossible(
            netuid, "weights_version", rules.weights_version,
            f"this validator sends version key {version_key}, below the subnet's required {rules.weights_version}",
            f"upgrade the validator, or the subnet owner runs `btcli sudo set --netuid {netuid} "
            f"--name weights_version --value {version_key}`")


def plan_weights(weights: Mapping[int, float], rules: WeightRules, version_key: int = 0) -> WeightPlan | None:
    """The vector to send for the competition's ``weights``; None when nobody has weight.

    Uids outside the subnet (deregistered) are dropped. Raises ``ValueError``
    for negative or non-finite weights and ``WeightsImpossible`` (see
    ``check_rules``) when the subnet's settings admit no vector.
    """
    check_rules(rules, version_key)
    for uid, w in weights.items():
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"weight for uid {uid} must be finite and >= 0, got {w!r}")
    pos = {int(u): float(w) for u, w in weights.items() if 0 <= int(u) < rules.n and w > 0}
    if not pos:
        return None
    top = max(pos.values())
    q = {u: v for u, w in pos.items() if (v := round(w / top * U16_MAX)) > 0}
    winners = set(q)
    margin = rules.max_weight_limit - 1 if rules.max_weight_limit < U16_MAX else U16_MAX
    need = max(required_count(rules), cap_count(rules.max_weight_limit))
    floor: list[int] = []
    if len(q) < need:
        floor = _floor_uids(q, rules, need)
        q = {u: max(v, WINNER_MIN) for u, v in q.items()}
        q.update({u: FLOOR for u in floor})
    clipped = False
    if not fits_cap(q, margin):
        q = _clip(q, margin, rules)
        clipped = True
    uids = tuple(sorted(q))
    return WeightPlan(uids=uids, values=tuple(q[u] for u in uids),
                      floor=tuple(u for u in uids if u not in winners), clipped=clipped)


def _floor_uids(q: Mapping[int, int], rules: WeightRules, need: int) -> list[int]:
    """Every non-winner except this validator; itself too only if the count needs it."""
    floor = [u for u in range(rules.n) if u not in q and u != rules.self_uid]
    me = rules.self_uid
    if len(q) + len(floor) < need and me is not None and 0 <= me < rules.n and me not in q:
        floor.append(me)
    return floor


def _clip(q: Mapping[int, int], limit: int, rules: WeightRules) -> dict[int, int]:
    """Water-fill the top entries down to the cap, re-upscale to u16 and verify; tighten on rounding misses."""
    for target in range(limit, max(limit - 64, 0), -1):
        out = _waterfill(q, target / U16_MAX)
        if out is not None and fits_cap(out, rules.max_weight_limit) and sdk_keeps(out, rules.max_weight_limit):
            return out
    raise WeightsImpossible(rules.netuid, "max_weight_limit", rules.max_weight_limit,
                            "u16 rounding leaves no vector under the cap",
                            "MaxWeightsLimit is not owner-settable: ask the chain's root to raise it")


def sdk_keeps(values: Mapping[int, int], limit: int) -> bool:
    """The SDK's clip_to_max_weight leaves the vector as is (its float test: max/sum <= limit/65535)."""
    vals = list(values.values())
    total = float(sum(vals))
    return limit >= U16_MAX or max(v / total for v in vals) <= limit / U16_MAX


def _waterfill(q: Mapping[int, int], cap: float) -> dict[int, int] | None:
    """Clip values above a cutoff c with c <= cap * sum(min(v, c)), the largest such c (SDK clip_to_max_weight)."""
    vals = sorted(q.values(), reverse=True)
    rest = float(sum(vals))
    c = None
    for j, v in enumerate(vals, start=1):
        rest -= v  # mass of the entries below the top j
        nxt = vals[j] if j < len(vals) else 0
        if j * cap >= 1:  # the top j tied at v_j already fit
            c = float(v)
            break
        cut = cap * rest / (1 - j * cap)
        if 0 < cut and nxt <= cut <= v:
            c = cut
            break
    if c is None:
        return None
    return {u: max(1, round(min(x, c) / c * U16_MAX)) for u, x in q.items()}
