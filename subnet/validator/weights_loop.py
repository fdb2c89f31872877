"""The validator's weights cadence: read the rules, send, and confirm on chain that they took effect.

``WeightSetter.step`` runs once per weights cadence. It re-reads the subnet's
weight hyperparameters every time (owners change them while validators run),
plans the vector with ``weights.plan_weights`` and sends it with the SDK's
``SetWeights`` intent, which itself picks a plaintext ``set_mechanism_weights``
or, with CommitRevealWeightsEnabled, a drand-timelocked
``commit_timelocked_mechanism_weights``.

A commit is not a result: the chain reveals it an epoch (RevealPeriodEpochs)
later, and the reveal can fail silently (no drand pulse in the reveal epoch,
a permit lost meanwhile, a check that fails at reveal). So a commit is
recorded as *pending* in the validator state (saved before anything else)
and later calls verify it: while the chain still lists it in
``TimelockedWeightCommits`` it is pending; once gone, it REVEALED if the
validator's LastUpdate moved past the commit block and its weights row is
the committed vector, else REVEAL_FAILED (logged and reported; the next
cadence commits afresh). While a commit is pending no second one is sent.
A restart keeps the pending commit and the last weights block; a commit
that landed but was never saved (kill -9 between the two) is re-adopted from
the chain's commit list, and the chain's LastUpdate guards the rate limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Protocol

from loguru import logger

from subnet.validator.state import ValidatorState
from subnet.validator.weights import U16_MAX, WeightPlan, WeightRules, WeightsImpossible, plan_weights

# A commit still listed this many epochs after its reveal epoch is given up on.
DEADLINE_SLACK_EPOCHS = 2


class WeightOutcome(str, Enum):
    SET = "set"  # plaintext weights landed
    COMMITTED_PENDING = "committed_pending"  # a timelocked commit landed; reveal pending
    PENDING = "pending"  # an earlier commit is still waiting for its reveal
    REVEALED = "revealed"  # the chain revealed the commit and the row matches it
    REVEAL_FAILED = "reveal_failed"  # the commit is gone but the weights did not take effect
    RATE_LIMITED = "rate_limited"
    IMPOSSIBLE = "impossible"  # the subnet's hyperparameters admit no valid vector
    REFUSED = "refused"  # the SDK's preflight or the chain refused the call
    NOTHING = "nothing"  # nobody holds weight yet


SENT_OK = frozenset({WeightOutcome.SET, WeightOutcome.COMMITTED_PENDING})


@dataclass(frozen=True, kw_only=True)
class PendingCommit:
    """A timelocked commit waiting for its reveal (persisted in the validator state)."""

    commit_block: int
    reveal_round: int | None
    uids: tuple[int, ...] = ()
    values: tuple[int, ...] = ()
    deadline_block: int = 0
    adopted: bool = False  # recovered from the chain's commit list, values unknown

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["uids"], d["values"] = list(self.uids), list(self.values)
        return d

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PendingCommit:
        rr = raw.get("reveal_round")
        return cls(commit_block=int(raw["commit_block"]), reveal_round=None if rr is None else int(rr),
                   uids=tuple(int(u) for u in raw.get("uids") or ()),
                   values=tuple(int(v) for v in raw.get("values") or ()),
                   deadline_block=int(raw.get("deadline_block") or 0), adopted=bool(raw.get("adopted")))


@dataclass(frozen=True, kw_only=True)
class WeightsReport:
    """One outcome of a cadence: what happened, at which block, with what vector."""

    outcome: WeightOutcome
    block: int
    detail: str = ""
    weights: dict[int, float] = field(default_factory=dict)
    """The vector sent (or revealed) as shares of the row, summing to 1."""
    pending: PendingCommit | None = None
    error: str | None = None

    @property
    def success(self) -> bool:
        return self.outcome in SENT_OK or self.outcome is WeightOutcome.REVEALED


class WeightsChain(Protocol):
    """What the setter needs from the chain (``subnet.node.chain.ChainView`` provides it)."""

    def weight_rules(self, hotkey: str) -> WeightRules: ...

    def set_weights(self, wallet: Any, weights: dict[int, float], version_key: int) -> Any: ...

    def weights_row(self, uid: int) -> dict[int, float]: ...

    def timelocked_commits(self) -> list[dict[str, Any]]: ...


def deadline_for(commit_block: int, rules: WeightRules) -> int:
    """The block after which a still-listed commit is given up on."""
    return commit_block + (rules.reveal_period + DEADLINE_SLACK_EPOCHS) * rules.epoch_blocks()


def row_matches(row: Mapping[int, float], uids: tuple[int, ...], values: tuple[int, ...]) -> bool:
    """Whether a chain weights row (fractions) is the committed u16 vector, to one u16 step."""
    if not row or set(row) != set(uids):
        return False
    top = max(row.values())
    if top <= 0:
        return False
    return all(abs(round(row[u] / top * U16_MAX) - v) <= 1 for u, v in zip(uids, values))


def _shares(uids: tuple[int, ...], values: tuple[int, ...]) -> dict[int, float]:
    total = sum(values)
    return {u: v / total for u, v in zip(uids, values)} if total else {}


def _inclusion_block(result: Any, fallback: int) -> int:
    ext_id = getattr(result, "extrinsic_id", None)
    if isinstance(ext_id, str) and "-" in ext_id:
        head = ext_id.split("-", 1)[0]
        if head.isdigit():
            return int(head)
    return fallback


def _error_text(result: Any) -> tuple[str, str | None]:
    err = getattr(result, "error", None)
    name = getattr(err, "name", None)
    text = str(getattr(result, "message", "") or err or "refused")
    return text, name


class WeightSetter:
    """Stateful weights cadence over a ``WeightsChain``; persists through ``state`` and ``save``."""

    def __init__(self, chain: WeightsChain, wallet: Any, hotkey: str, state: ValidatorState,
                 save: Callable[[], None], version_key: int) -> None:
        self.chain = chain
        self.wallet = wallet
        self.hotkey = hotkey
        self.state = state
        self.save = save
        self.version_key = version_key
        self._last_impossible: str | None = None

    @property
    def pending(self) -> PendingCommit | None:
        raw = self.state.pending_commit
        return PendingCommit.from_dict(raw) if raw else None

    def _set_pending(self, pending: PendingCommit | None) -> None:
        self.state.pending_commit = pending.to_dict() if pending else None

    # -- the cadence ---------------------------------------------------------------------------
    def step(self, weights: Mapping[int, float]) -> list[WeightsReport]:
        """Verify a pending commit, then (unless one is still pending) send ``weights``."""
        rules = self.chain.weight_rules(self.hotkey)
        reports: list[WeightsReport] = []
        verified = self.verify(rules)
        if verified is not None:
            reports.append(verified)
            if verified.outcome is WeightOutcome.PENDING:
                return reports
        reports.append(self.send(weights, rules))
        return reports

    def verify(self, rules: WeightRules) -> WeightsReport | None:
        """The state of the pending commit (adopting one the chain lists but the state lost)."""
        pending = self.pending
        mine = [c for c in self.chain.timelocked_commits() if c.get("hotkey") == self.hotkey]
        if pending is None and mine:
            c = max(mine, key=lambda c: int(c["commit_block"]))
            pending = PendingCommit(commit_block=int(c["commit_block"]), reveal_round=c.get("reveal_round"),
                                    deadline_block=deadline_for(int(c["commit_block"]), rules), adopted=True)
            logger.warning("weights: adopting a commit at block {} the state did not record", pending.commit_block)
            self._set_pending(pending)
            self.state.last_weights_block = max(self.state.last_weights_block, pending.commit_block)
            self.save()
        if pending is None:
            return None
        listed = any(int(c["commit_block"]) == pending.commit_block for c in mine)
        if listed and rules.block <= pending.deadline_block:
            return WeightsReport(outcome=WeightOutcome.PENDING, block=rules.block, pending=pending,
                                 detail=f"commit at block {pending.commit_block} waits for drand round "
                                        f"{pending.reveal_round}")
        if not listed and rules.last_update <= pending.commit_block:
            # `rules` was read before the commit list: a reveal landing in between leaves it stale. Read again,
            # now that the commit is known to be gone, before calling the reveal failed.
            rules = self.chain.weight_rules(self.hotkey)
        revealed = not listed and rules.last_update > pending.commit_block
        if revealed and not pending.adopted and rules.self_uid is not None:
            revealed = row_matches(self.chain.weights_row(rules.self_uid), pending.uids, pending.values)
        self._set_pending(None)
        self.save()
        if revealed:
            logger.info("weights: commit at block {} revealed at block {}", pending.commit_block, rules.last_update)
            return WeightsReport(outcome=WeightOutcome.REVEALED, block=rules.last_update, pending=pending,
                                 weights=_shares(pending.uids, pending.values),
                                 detail=f"revealed at block {rules.last_update}")
        why = (f"still unrevealed at block {rules.block}, past its deadline {pending.deadline_block}" if listed
               else f"no longer pending, but LastUpdate is {rules.last_update} and the weights row is not the commit")
        logger.error("weights: commit at block {} (drand round {}) did not take effect: {}; committing afresh",
                     pending.commit_block, pending.reveal_round, why)
        return WeightsReport(outcome=WeightOutcome.REVEAL_FAILED, block=rules.block, pending=pending,
                             detail=why, error=why)

    def send(self, weights: Mapping[int, float], rules: WeightRules) -> WeightsReport:
        """Plan and send one vector under ``rules``; record a pending commit when it was timelocked."""
        block = rules.block
        last = max(self.state.last_weights_block, rules.last_update)
        if last > 0 and block - last < rules.rate_limit:
            return WeightsReport(outcome=WeightOutcome.RATE_LIMITED, block=block,
                                 detail=f"{block - last} blocks since block {last}; rate limit {rules.rate_limit}")
        try:
            plan = plan_weights(weights, rules, self.version_key)
        except WeightsImpossible as exc:
            if str(exc) != self._last_impossible:  # one clear error per distinct cause, not one per cadence
                logger.error("weights: {}", exc)
                self._last_impossible = str(exc)
            return WeightsReport(outcome=WeightOutcome.IMPOSSIBLE, block=block, detail=str(exc), error=exc.fix)
        self._last_impossible = None
        if plan is None:
            return WeightsReport(outcome=WeightOutcome.NOTHING, block=block, detail="nobody eligible yet")
        return self._submit(plan, rules)

    def _submit(self, plan: WeightPlan, rules: WeightRules) -> WeightsReport:
        sent = _shares(plan.uids, plan.values)
        try:
            result = self.chain.set_weights(self.wallet, plan.as_weights(), self.version_key)
        except Exception as exc:  # the SDK's preflight raises typed ChainErrors (rate limit, registration, count)
            code = getattr(getattr(exc, "code", None), "value", None)
            outcome = WeightOutcome.RATE_LIMITED if code == "rate_limited" else WeightOutcome.REFUSED
            return WeightsReport(outcome=outcome, block=rules.block, weights=sent, detail=str(exc), error=str(exc))
        if not getattr(result, "success", False):
            text, name = _error_text(result)
            return WeightsReport(outcome=WeightOutcome.REFUSED, block=rules.block, weights=sent,
                                 detail=text, error=name or text)
        block = _inclusion_block(result, rules.block)
        data = getattr(result, "data", None) or {}
        self.state.last_weights_block = block
        if "reveal_round" in data:  # the SDK took the timelocked commit path
            pending = PendingCommit(commit_block=block, reveal_round=int(data["reveal_round"]), uids=plan.uids,
                                    values=plan.values, deadline_block=deadline_for(block, rules))
            self._set_pending(pending)
            self.save()
            return WeightsReport(outcome=WeightOutcome.COMMITTED_PENDING, block=block, weights=sent, pending=pending,
                                 detail=f"reveal at drand round {pending.reveal_round}, "
                                        f"{rules.reveal_period} epoch(s) on")
        self.save()
        return WeightsReport(outcome=WeightOutcome.SET, block=block, weights=sent,
                             detail=f"{len(plan.uids)} uids ({len(plan.floor)} at the floor)")
