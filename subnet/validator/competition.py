"""Apex-style competition: OpenSkill ratings over windows, a sticky leader, winner-take-most weights.

Why this shape: a single window's score is noisy (a few eval batches), so a
miner's standing is an OpenSkill Plackett-Luce rating accumulated over rounds
(one round per window), compared by its conservative *ordinal*
(mu - z*sigma). First place is sticky: a challenger must beat the incumbent
leader's ordinal by ``margin`` to take it, so noise cannot flip the top of
the leaderboard every window (Apex's "beat the champion by a threshold").
Weights then follow a winner-take-most curve over the leaderboard, with an
optional burn to the subnet owner.

Everything here is a pure, deterministic function of its arguments: the state
is a plain value (``CompetitionState``), ``play_round`` returns a new one, and
``to_json``/``from_json`` give a stable, versioned serialisation that the
neuron persists atomically. No I/O, no clock, no randomness.

Splitting one miner's compute across k hotkeys (sybils). The rank curves
("geometric", "linear") pay places, not magnitudes: k weaker hotkeys that
still rank above every competitor take k places, so they can out-earn one
hotkey (at most by ``1 / (1 - decay)`` for the geometric curve). The
``"power"`` curve, the default, is the rule that makes splitting pay nothing: every
eligible player's share is proportional to ``strength ** power``, where
strength is the mean of its last ``recent_rounds`` cohort-normalised scores
(rounds without a positive score count 0). If a hotkey's score grows with its
compute ``c`` like ``c ** alpha`` (alpha <= 1; bench/sybil.py measures it),
k hotkeys of ``c / k`` hold ``k * (s * k**-alpha) ** power = s**power *
k**(1 - alpha*power)`` of the numerator, which is <= one hotkey's ``s**power``
whenever ``power >= 1 / alpha``; the other players' part of the denominator
is unchanged (the power curve pays every eligible player, no ``top_k`` cut a
flood of hotkeys could push competitors out of), so the operator's share
cannot grow (``split_gain`` computes it; validator_tests/test_validator_sybil.py
checks it).

The default guarantee (``CompetitionConfig()``: power curve, ``power = 3``):
splitting one hotkey's compute across any k hotkeys earns the operator no
more weight than one hotkey, for every score-vs-compute elasticity
``alpha >= 1/3``. bench/sybil.py measures alpha ~0.6 on the tiny preset
(score ~ compute**0.61 at k=2, **0.65 at k=4), and the operator's weight
at k = 2 / 4 over k = 1 (bench/results/sybil.md). ``power = 2`` would
cover only alpha >= 0.5 and measured 1.02 at k = 2 without the noise floor,
so 3 it is. What the guarantee is over: the scores the round receives. It
does not cover a split that moves a fragment cohort's normalisation (the
pieces' own cohort median) or the noise floor's cut (which only makes
splitting pay less). The rank curves remain as settings (sweeps).

Late pay for a held proof-of-work window (``credit_round``, validator/powevidence.py's deferred credit):
each held round's entry in ``recent`` is replaced by the score it was held from, when the miner's account
later reaches the bar; the rating that round produced is not replayed. At most ``ScoreConfig.pow_credits``
rounds per release, one call each (only entries move, so each call's index is the same arithmetic).

Eligibility for weight (otherwise exactly 0): played at least ``min_rounds``
rounds, scored > 0 in at least one of the last ``recent_rounds`` rounds, and
not charged with copying in the last ``slash_rounds`` rounds.

Players are keyed by uid but a uid is not a player: subtensor recycles a
pruned uid for the next registration (``subnets/uids.rs::replace_neuron``). A
uid whose hotkey differs from the one its player was recorded with is a new
player: fresh rating, no rounds, no copy charge, and no inherited leadership
(a recycled leader's uid does not keep first place); until it plays a round
under its new hotkey it holds no weight (``compute_weights(..., hotkeys=)``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from loguru import logger
from openskill.models import PlackettLuce

from subnet.errors import ConfigError, ErrorCode, SubnetError

STATE_VERSION = 1


class CompetitionStateError(SubnetError, ValueError):
    """Persisted competition state is malformed or from an unknown version."""

    code = ErrorCode.CONFIG


@dataclass(frozen=True, kw_only=True)
class CompetitionConfig:
    """Competition parameters; all rating quantities are in OpenSkill units (mu=25 scale).

    Sybil guarantee of the defaults (curve "power", power 3): splitting one
    miner's compute across k hotkeys earns no more weight than one hotkey
    whenever its score grows with compute at least like ``compute ** (1/3)``
    (measured: ``compute ** 0.6``); module docstring, bench/sybil.py,
    validator_tests/test_validator_sybil.py (hypothesis, the default config).
    """

    margin: float = 1.0
    """Ordinal points a challenger must exceed the incumbent leader by to take first place."""
    mu: float = 25.0
    """Initial rating mean for a new uid."""
    sigma: float = 25.0 / 3.0
    """Initial rating uncertainty for a new uid."""
    beta: float = 7.0
    """Performance noise per round (templar uses 7): larger = slower rating moves."""
    tau: float = 0.1
    """Additive sigma dynamics per round, so ratings keep adapting (templar: 0.1)."""
    z: float = 3.0
    """Ordinal = mu - z*sigma (conservative skill estimate)."""
    top_k: int = 8
    """How many leaderboard places receive weight (rank curves; the power curve pays every eligible player)."""
    curve: Literal["geometric", "linear", "power"] = "power"
    """Weight curve: power (default): strength**power over every eligible player, so splitting across
    hotkeys cannot pay (module docstring); or the rank curves geometric decay**i, linear (top_k - i)."""
    power: float = 3.0
    """Exponent of the power curve: splitting pays nothing while alpha >= 1/power (alpha: score-vs-compute
    elasticity, measured ~0.6 by bench/sybil.py)."""
    decay: float = 0.5
    """Geometric ratio between consecutive places (0 < decay <= 1)."""
    burn_share: float = 0.0
    """Fraction of the total weight sent to ``owner_uid`` (burned emission)."""
    owner_uid: int | None = None
    """Uid receiving ``burn_share``; never competes."""
    min_rounds: int = 1
    """Rounds a uid must have played before it can hold weight or lead."""
    recent_rounds: int = 8
    """Window of recent rounds in which a uid must have scored > 0 to hold weight."""
    slash_rounds: int = 8
    """Rounds a uid charged with copying is held at zero weight."""

    def __post_init__(self) -> None:
        checks = [
            (self.margin >= 0 and math.isfinite(self.margin), "margin must be finite and >= 0"),
            (self.sigma > 0 and self.beta > 0 and self.tau >= 0, "sigma, beta > 0 and tau >= 0"),
            (self.top_k >= 1, "top_k must be >= 1"),
            (self.curve in ("geometric", "linear", "power"),
             f"curve must be geometric|linear|power, got {self.curve!r}"),
            (math.isfinite(self.power) and self.power >= 1, "power must be finite and >= 1"),
            (0 < self.decay <= 1, "decay must be in (0, 1]"),
            (0 <= self.burn_share <= 1, "burn_share must be in [0, 1]"),
            (self.burn_share == 0 or self.owner_uid is not None, "burn_share > 0 needs owner_uid"),
            (self.min_rounds >= 0 and self.recent_rounds >= 1 and self.slash_rounds >= 0,
             "min_rounds >= 0, recent_rounds >= 1, slash_rounds >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"CompetitionConfig: {message}")

    def model(self) -> PlackettLuce:
        return PlackettLuce(mu=self.mu, sigma=self.sigma, beta=self.beta, tau=self.tau)


@dataclass(frozen=True, kw_only=True)
class PlayerState:
    """One uid's standing: rating, rounds played, recent scores and last copy charge."""

    mu: float
    sigma: float
    rounds: int = 0
    recent: tuple[float | None, ...] = ()
    """Last ``recent_rounds`` scores, oldest first (None = no submission)."""
    slashed_round: int | None = None
    """Round index of the last copy charge."""
    hotkey: str | None = None

    def ordinal(self, z: float) -> float:
        return self.mu - z * self.sigma


@dataclass(frozen=True, kw_only=True)
class CompetitionState:
    """The whole competition as a value: ``round`` counts rounds played so far."""

    round: int = 0
    players: Mapping[int, PlayerState] = field(default_factory=dict)
    leader: int | None = None
    leader_since: int | None = None
    """Round index at which the current leader took first place."""

    # -- serialisation -------------------------------------------------------------------------
    def to_json(self) -> str:
        """Canonical JSON (sorted keys, exact float repr) so equal states give equal bytes."""
        doc = {
            "version": STATE_VERSION,
            "round": self.round,
            "leader": self.leader,
            "leader_since": self.leader_since,
            "players": {
                str(uid): {
                    "mu": p.mu,
                    "sigma": p.sigma,
                    "rounds": p.rounds,
                    "recent": list(p.recent),
                    "slashed_round": p.slashed_round,
                    "hotkey": p.hotkey,
                }
                for uid, p in sorted(self.players.items())
            },
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> CompetitionState:
        """Parse and validate; any deviation raises ``CompetitionStateError``."""
        try:
            doc = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise CompetitionStateError(f"competition state is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise CompetitionStateError("competition state must be a JSON object")
        if doc.get("version") != STATE_VERSION:
            raise CompetitionStateError(
                f"unsupported competition state version {doc.get('version')!r} (expected {STATE_VERSION})",
                remediation="delete the state file to start the competition afresh",
            )
        expected = {"version", "round", "leader", "leader_since", "players"}
        if set(doc) != expected:
            raise CompetitionStateError(f"competition state keys {sorted(doc)} != {sorted(expected)}")
        rnd = _int(doc["round"], "round", minimum=0)
        leader = _opt_int(doc["leader"], "leader")
        leader_since = _opt_int(doc["leader_since"], "leader_since")
        if not isinstance(doc["players"], dict):
            raise CompetitionStateError("players must be an object")
        players: dict[int, PlayerState] = {}
        for key, raw in doc["players"].items():
            try:
                uid = int(key)
            except ValueError as exc:
                raise CompetitionStateError(f"player key {key!r} is not an integer uid") from exc
            if str(uid) != key or uid < 0:
                raise CompetitionStateError(f"player key {key!r} is not a canonical uid")
            players[uid] = _player(raw, key)
        if leader is not None and leader not in players:
            raise CompetitionStateError(f"leader {leader} has no player entry")
        if (leader is None) != (leader_since is None):
            raise CompetitionStateError("leader and leader_since must both be set or both null")
        return cls(round=rnd, players=players, leader=leader, leader_since=leader_since)


def _int(value: Any, name: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CompetitionStateError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise CompetitionStateError(f"{name} must be >= {minimum}, got {value}")
    return value


def _opt_int(value: Any, name: str) -> int | None:
    return None if value is None else _int(value, name, minimum=0)


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CompetitionStateError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _player(raw: Any, key: str) -> PlayerState:
    fields = {"mu", "sigma", "rounds", "recent", "slashed_round", "hotkey"}
    if not isinstance(raw, dict) or set(raw) != fields:
        raise CompetitionStateError(f"player {key}: expected an object with keys {sorted(fields)}")
    sigma = _float(raw["sigma"], f"player {key} sigma")
    if sigma <= 0:
        raise CompetitionStateError(f"player {key}: sigma must be > 0")
    if not isinstance(raw["recent"], list):
        raise CompetitionStateError(f"player {key}: recent must be a list")
    recent = tuple(None if s is None else _float(s, f"player {key} recent") for s in raw["recent"])
    hotkey = raw["hotkey"]
    if hotkey is not None and not isinstance(hotkey, str):
        raise CompetitionStateError(f"player {key}: hotkey must be a string or null")
    return PlayerState(
        mu=_float(raw["mu"], f"player {key} mu"),
        sigma=sigma,
        rounds=_int(raw["rounds"], f"player {key} rounds", minimum=0),
        recent=recent,
        slashed_round=_opt_int(raw["slashed_round"], f"player {key} slashed_round"),
        hotkey=hotkey,
    )


# -- rounds ------------------------------------------------------------------------------------


def competition_ranks(scores: Mapping[int, float | None], uids: Sequence[int]) -> dict[int, int]:
    """Standard competition ranks (1 = best; ties share a rank, e.g. 1,2,2,4); None ranks last."""
    key = {u: (0, -float(scores[u])) if scores.get(u) is not None else (1, 0.0) for u in uids}
    order = sorted(uids, key=lambda u: key[u])
    ranks: dict[int, int] = {}
    for pos, uid in enumerate(order):
        if pos > 0 and key[uid] == key[order[pos - 1]]:
            ranks[uid] = ranks[order[pos - 1]]
        else:
            ranks[uid] = pos + 1
    return ranks


def play_round(
    state: CompetitionState,
    scores: Mapping[int, float | None],
    uids: Sequence[int],
    cfg: CompetitionConfig,
    *,
    slashed: Collection[int] = (),
    hotkeys: Mapping[int, str] | None = None,
    sitting_out: Collection[int] = (),
) -> CompetitionState:
    """Play one window as a round and return the new state.

    ``uids`` are the currently registered competitors (the owner uid is
    excluded automatically); uids in the state but not in ``uids`` are dropped
    (deregistered). A uid whose hotkey changed (``hotkeys``) restarts from
    default ratings. Scores: higher is better; ``None`` (no submission) and
    uids in ``slashed`` (charged with copying) are ranked last together. A
    non-finite score is treated as ``None``.

    ``sitting_out``: registered uids that passed the cheap checks but were not
    drawn for the full evaluation this window (validator/sampling.py). They
    keep their rating, round count and history untouched: a round a miner was
    not evaluated in neither rewards nor punishes it.
    """
    competitors = sorted({int(u) for u in uids if u != cfg.owner_uid})
    slashed_set = {int(u) for u in slashed}
    rnd = state.round
    model = cfg.model()

    players: dict[int, PlayerState] = {}
    recycled: set[int] = set()
    for uid in competitors:
        prev = state.players.get(uid)
        hotkey = hotkeys.get(uid) if hotkeys is not None else (prev.hotkey if prev else None)
        if prev is None or _recycled(prev, hotkey if hotkeys is not None else prev.hotkey):
            if prev is not None:
                logger.info("competition: uid {} has a new hotkey (recycled uid): a new player", uid)
                recycled.add(uid)
            prev = PlayerState(mu=cfg.mu, sigma=cfg.sigma, hotkey=hotkey)
        players[uid] = replace(prev, hotkey=hotkey)
    if state.leader in recycled:  # first place belonged to the old hotkey, not to the uid
        state = replace(state, leader=None, leader_since=None)

    resting = {int(u) for u in sitting_out}
    competitors = [u for u in competitors if u not in resting]  # rated below; the resting keep their state
    effective: dict[int, float | None] = {}
    for uid in competitors:
        s = scores.get(uid)
        if s is not None and not math.isfinite(s):
            s = None
        effective[uid] = None if uid in slashed_set else s

    if len(competitors) >= 2:
        ranks = competition_ranks(effective, competitors)
        teams = [[model.rating(mu=players[u].mu, sigma=players[u].sigma)] for u in competitors]
        rated = model.rate(teams, ranks=[float(ranks[u]) for u in competitors])
        for uid, team in zip(competitors, rated):
            players[uid] = replace(players[uid], mu=float(team[0].mu), sigma=float(team[0].sigma))

    for uid in competitors:
        p = players[uid]
        recent = (p.recent + (effective[uid],))[-cfg.recent_rounds :]
        players[uid] = replace(
            p,
            rounds=p.rounds + 1,
            recent=recent,
            slashed_round=rnd if uid in slashed_set else p.slashed_round,
        )

    new_round = rnd + 1
    leader, leader_since = _next_leader(state, players, new_round, cfg)
    return CompetitionState(round=new_round, players=players, leader=leader, leader_since=leader_since)


def credit_round(state: CompetitionState, uid: int, hotkey: str, round_no: int, score: float,
                 cfg: CompetitionConfig) -> CompetitionState:
    """``state`` with the entry of the player's round ``round_no`` in ``recent`` replaced by ``score``.

    Why: the deferred proof-of-work credit (validator/powevidence.py) pays a held window late, once the
    miner's account has reached the bar; only that round's entry moves (the power curve's strength and
    eligibility read ``recent``; the round's rating and the leader are left to the rounds). ``round_no``
    counts the player's rounds (1 = its first). Nothing changes when the uid is not this hotkey's player
    any more (recycled), or the round has left the last ``recent_rounds``.
    """
    p = state.players.get(uid)
    if p is None or p.hotkey != hotkey or not 1 <= round_no <= p.rounds:
        return state
    back = p.rounds - round_no  # 0 = the latest round
    window = min(len(p.recent), cfg.recent_rounds)
    if back >= window or not math.isfinite(score):
        return state
    i = len(p.recent) - 1 - back
    recent = p.recent[:i] + (float(score),) + p.recent[i + 1:]
    return replace(state, players={**state.players, uid: replace(p, recent=recent)})


def _recycled(prev: PlayerState, hotkey: str | None) -> bool:
    """Is the neuron now at this uid someone other than the one ``prev`` was recorded for?

    A player recorded without a hotkey (an old state file) adopts the first one it is seen with.
    """
    return prev.hotkey is not None and prev.hotkey != hotkey


def eligible(p: PlayerState, current_round: int, cfg: CompetitionConfig) -> bool:
    """May this player hold weight (and lead) after ``current_round`` rounds have been played?"""
    if p.rounds < cfg.min_rounds:
        return False
    if p.slashed_round is not None and current_round - p.slashed_round <= cfg.slash_rounds:
        return False
    return any(s is not None and s > 0 for s in p.recent[-cfg.recent_rounds :])


def _by_ordinal(players: Mapping[int, PlayerState], uids: Collection[int], z: float) -> list[int]:
    """Highest ordinal first; ties broken by lower uid (deterministic)."""
    return sorted(uids, key=lambda u: (-players[u].ordinal(z), u))


def _next_leader(
    prev: CompetitionState, players: Mapping[int, PlayerState], new_round: int, cfg: CompetitionConfig
) -> tuple[int | None, int | None]:
    candidates = [u for u, p in players.items() if eligible(p, new_round, cfg)]
    if not candidates:
        return None, None
    best = _by_ordinal(players, candidates, cfg.z)[0]
    incumbent = prev.leader
    if incumbent is None or incumbent not in candidates:
        if incumbent is not None:
            logger.info("competition: leader {} lost eligibility; {} leads", incumbent, best)
        return best, new_round
    if best == incumbent:
        return incumbent, prev.leader_since
    if players[best].ordinal(cfg.z) > players[incumbent].ordinal(cfg.z) + cfg.margin:
        logger.info("competition: uid {} overtakes leader {} by more than margin {}", best, incumbent, cfg.margin)
        return best, new_round
    return incumbent, prev.leader_since


# -- weights -----------------------------------------------------------------------------------


def leaderboard(state: CompetitionState, uids: Collection[int], cfg: CompetitionConfig,
                hotkeys: Mapping[int, str] | None = None) -> list[int]:
    """Eligible uids in payout order: the leader first, then by ordinal; at most ``top_k`` (rank curves).

    With ``hotkeys`` (uid -> hotkey now), a uid whose player was recorded under
    another hotkey (recycled since the last round) is left off.
    """
    present = {int(u) for u in uids} - ({cfg.owner_uid} if cfg.owner_uid is not None else set())
    pool = [u for u in present if u in state.players and eligible(state.players[u], state.round, cfg)
            and not (hotkeys is not None and _recycled(state.players[u], hotkeys.get(u)))]
    order = _by_ordinal(state.players, pool, cfg.z)
    if state.leader is not None and state.leader in order:
        order.remove(state.leader)
        order.insert(0, state.leader)
    return order if cfg.curve == "power" else order[: cfg.top_k]


def strength(p: PlayerState, cfg: CompetitionConfig) -> float:
    """Mean of the last ``recent_rounds`` scores, non-positive and missing rounds counting 0 (the power curve's
    base)."""
    recent = p.recent[-cfg.recent_rounds:]
    return sum(s for s in recent if s is not None and s > 0) / len(recent) if recent else 0.0


def split_gain(score: float, k: int, alpha: float, power: float, others: float) -> float:
    """Share of k hotkeys of 1/k compute each over the share of one hotkey, under the power curve.

    ``score``: one hotkey's strength; ``alpha``: score elasticity in compute;
    ``others``: sum of every other player's ``strength ** power``. <= 1 iff
    ``alpha * power >= 1`` (or nothing to gain anyway).
    """
    one = score ** power
    split = k * (score * k ** -alpha) ** power
    return (split / (split + others)) / (one / (one + others)) if one > 0 else 1.0


def curve_shares(n: int, cfg: CompetitionConfig) -> list[float]:
    """Unnormalised winner-take-most shares for ``n`` places (rank curves; "power" is by strength)."""
    if cfg.curve == "geometric":
        return [cfg.decay**i for i in range(n)]
    return [float(cfg.top_k - i) for i in range(n)]


def compute_weights(state: CompetitionState, uids: Sequence[int], cfg: CompetitionConfig,
                    hotkeys: Mapping[int, str] | None = None) -> dict[int, float]:
    """Weights for every uid in ``uids`` (plus the owner when burning), summing to 1.

    Uids off the leaderboard get exactly 0, among them recycled uids when
    ``hotkeys`` is given. If nobody is eligible the miners' share also goes to
    the owner; with no owner configured the result is all zeros (the caller
    should then skip setting weights).
    """
    weights = {int(u): 0.0 for u in uids}
    board = leaderboard(state, uids, cfg, hotkeys)
    burn = cfg.burn_share if cfg.owner_uid is not None else 0.0
    if board:
        if cfg.curve == "power":
            shares = [strength(state.players[u], cfg) ** cfg.power for u in board]
        else:
            shares = curve_shares(len(board), cfg)
        total = sum(shares)
        if total <= 0:  # unreachable for eligible players (a positive recent score); stay total-preserving
            shares, total = [1.0] * len(board), float(len(board))
        for uid, share in zip(board, shares):
            weights[uid] = (1.0 - burn) * share / total
    elif cfg.owner_uid is not None:
        burn = 1.0
    else:
        logger.warning("competition: no eligible uid and no owner uid; all weights are zero")
        return weights
    if cfg.owner_uid is not None and burn > 0:
        weights[cfg.owner_uid] = weights.get(cfg.owner_uid, 0.0) + burn
    return weights
