"""Score one contribution by the loss improvement it produces (Gauntlet-style).

For a submission on fragment f the validator, on its copy of the base model:

1. applies the decoded pseudo-gradient at the outer learning rate
   (``theta <- theta - eval_lr * delta``; a pseudo-gradient is start - end),
2. measures causal-LM loss on the window's held-out batches, on a sample of
   the miner's assigned pages and on control ("random") pages it was not
   assigned,
3. restores the parameters bit for bit (saved originals are copied back;
   subtracting the update again would not round-trip in fp32).

Losses *before* the update on held-out and control batches depend only on
the base model and the batches, not on the submission, so they are computed
once per window (the brief says "per window and fragment"; with one base
model the fragment does not change them) as a ``Baseline`` shared by every
submission. For that the control pages must be one set per window (e.g.
``random_pages`` drawn for a fixed uid, excluding every miner's pages), not
one set per miner. The assigned-page "before" loss is per submission since
each miner has its own pages.

Score: held-out improvement, by default *relative* to the baseline
(``(L_before - L_after) / L_before``), which is what templar uses and keeps
scores comparable across windows as the loss falls.

Proof of work: the improvement on the miner's assigned pages must beat the
improvement on pages it could not have trained on. The control is the
batch-weighted mean of the random-page and held-out improvements (both are
unseen by the miner; pooling them doubles the control sample for free), and
"beat" means ``own > control + pow_ratio * |control| + pow_margin``. Measured
on the tiny model with one 8-page batch per set and the default codec, honest
miners showed own/control >= 1.98 and miners trained on other pages
<= 1.40 (8 of each), hence the default ``pow_ratio = 0.5``; a bare
``own > random`` passed about half of the lazy miners on sampling noise.
Failing scores ``min(0, held-out improvement)`` with reason
``"no proof of work"`` (never credit, still recorded as harmful when it
hurts). Empty updates score 0 without evaluation; non-finite updates or
losses score 0. Harmful updates that pass proof of work keep their negative
score so the competition can rank them below useless ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from loguru import logger
from torch import nn

from subnet.codec.apply import apply_sparse
from subnet.codec.errors import BadShape
from subnet.codec.sparseloco import EncodedUpdate, SparseTensor, decode_sparse
from subnet.data.pages import Split, TokenPages
from subnet.errors import ConfigError

Delta = Mapping[str, torch.Tensor] | Sequence[SparseTensor] | EncodedUpdate
"""A pseudo-gradient: dense tensors by name, decoded sparse entries, or the codec's encoded form."""

NO_PROOF_OF_WORK = "no proof of work"


@dataclass(frozen=True, kw_only=True)
class ScoreConfig:
    """How a contribution is evaluated.

    eval_lr: outer learning rate at which the update is applied for scoring
        (use the aggregation's outer lr so the score predicts the real step).
    n_*_batches: batches of ``batch_size`` token pages per set (cost is
        2*assigned + heldout + random forward passes per submission).
        Held-out batches hold ``batch_size`` pages; assigned and random
        batches hold ``pow_batch_size`` (proof of work needs only a coarse
        signal: honest own/control ratios are >= 2, so fewer pages suffice and
        the per-submission cost drops). ``n_random_batches=0`` drops the random-page control: the held-out
        improvement alone is the proof-of-work control (one forward cheaper).
    relative: improvements as a fraction of the "before" loss (dimensionless).
    pow_ratio: the assigned improvement must exceed the control improvement
        by this fraction of |control| (see the module docstring).
    pow_margin: and by this absolute amount (same units as the improvements).
    """

    eval_lr: float = 1.0
    n_assigned_batches: int = 1
    n_heldout_batches: int = 1
    n_random_batches: int = 1
    batch_size: int = 8
    pow_batch_size: int = 4
    relative: bool = True
    pow_ratio: float = 0.5
    pow_margin: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eval_lr) and self.eval_lr > 0):
            raise ConfigError(f"ScoreConfig.eval_lr must be finite and > 0, got {self.eval_lr}")
        for name in ("n_assigned_batches", "n_heldout_batches", "batch_size", "pow_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ScoreConfig.{name} must be >= 1")
        if self.n_random_batches < 0:
            raise ConfigError("ScoreConfig.n_random_batches must be >= 0")
        for name in ("pow_ratio", "pow_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"ScoreConfig.{name} must be finite and >= 0, got {value}")


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """Losses of the unmodified base model, shared by all submissions of a window."""

    heldout_loss: float
    random_loss: float


@dataclass(frozen=True, kw_only=True)
class ContributionScore:
    """Everything measured for one submission; ``score`` is what enters the competition."""

    heldout_before: float
    heldout_after: float
    heldout_improvement: float
    assigned_improvement: float
    random_improvement: float
    control_improvement: float
    """Batch-weighted mean of held-out and random improvements (the proof-of-work control)."""
    proof_of_work: bool
    score: float
    reason: str


def mean_loss(model: nn.Module, batches: Sequence[torch.Tensor]) -> float:
    """Mean next-token cross-entropy (nats/token) over token-page batches [B, L]: input[:-1] -> target[1:]."""
    if not batches:
        raise ConfigError("mean_loss needs at least one batch")
    was_training = model.training
    model.eval()
    total = 0.0
    count = 0
    try:
        with torch.no_grad():
            for batch in batches:
                if batch.dim() != 2 or batch.shape[1] < 2:
                    raise ConfigError(f"a batch must be [B, L>=2] token ids, got shape {tuple(batch.shape)}")
                logits = model(input_ids=batch[:, :-1]).logits
                loss = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1), reduction="sum"
                )
                total += float(loss)
                count += batch[:, 1:].numel()
    finally:
        model.train(was_training)
    return total / count


def page_batches(pages: TokenPages, indices: Sequence[int], split: Split, batch_size: int,
                 n_batches: int) -> list[torch.Tensor]:
    """The first ``n_batches * batch_size`` of ``indices`` as ``n_batches`` token batches (fewer if short)."""
    if batch_size < 1 or n_batches < 1:
        raise ConfigError("batch_size and n_batches must be >= 1")
    idx = list(indices)[: batch_size * n_batches]
    if not idx:
        raise ConfigError(f"no {split} pages to evaluate")
    return [pages.batch(idx[i : i + batch_size], split) for i in range(0, len(idx), batch_size)]


def _sparse(delta: Delta) -> list[SparseTensor] | None:
    if isinstance(delta, EncodedUpdate):
        return decode_sparse(delta)
    if isinstance(delta, Mapping):
        return None
    return list(delta)


@contextmanager
def applied(params: Mapping[str, torch.Tensor], delta: Delta, lr: float) -> Iterator[None]:
    """Within the block, ``params[name] -= lr * delta[name]``; afterwards the exact original bits.

    Dense deltas save a copy of each touched tensor; sparse ones save only the
    touched entries (codec.apply). Restoration happens on any exit, including
    exceptions. Unknown names or wrong shapes raise ``BadShape`` before any
    parameter changes.
    """
    sparse = _sparse(delta)
    if sparse is not None:
        undo = apply_sparse(params, sparse, scale=-lr)
        try:
            yield
        finally:
            undo.revert()
        return
    assert isinstance(delta, Mapping)
    for name, d in delta.items():
        p = params.get(name)
        if p is None or p.shape != d.shape:
            raise BadShape(f"cannot apply {name!r} {tuple(d.shape)}: parameter missing or shaped "
                           f"{None if p is None else tuple(p.shape)}")
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for name, d in delta.items():
                p = params[name]
                saved.append((p, p.detach().clone()))
                p.sub_(d.to(p.dtype), alpha=lr)
        yield
    finally:
        with torch.no_grad():
            for p, original in saved:
                p.copy_(original)


def compute_baseline(model: nn.Module, heldout_batches: Sequence[torch.Tensor],
                     random_batches: Sequence[torch.Tensor]) -> Baseline:
    """Before-losses shared by every submission scored on this base model in this window.

    With no random batches ``random_loss`` is NaN and scoring uses the held-out control only.
    """
    random_loss = mean_loss(model, random_batches) if random_batches else float("nan")
    return Baseline(heldout_loss=mean_loss(model, heldout_batches), random_loss=random_loss)


def _delta_stats(delta: Delta) -> tuple[bool, bool]:
    """(all finite, all zero) without densifying sparse input."""
    sparse = _sparse(delta)
    tensors = [s.values for s in sparse] if sparse is not None else list(delta.values())  # type: ignore[union-attr]
    finite = all(bool(torch.isfinite(t).all()) for t in tensors)
    zero = all(not bool(t.any()) for t in tensors)
    return finite, zero


def _improvement(before: float, after: float, relative: bool) -> float:
    diff = before - after
    return diff / before if relative else diff


def score_contribution(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    delta: Delta,
    cfg: ScoreConfig,
    assigned_batches: Sequence[torch.Tensor],
    heldout_batches: Sequence[torch.Tensor],
    random_batches: Sequence[torch.Tensor],
    baseline: Baseline,
) -> ContributionScore:
    """Apply, evaluate, restore; return the measured score (never raises for bad miner work)."""
    nan = float("nan")

    def zero(reason: str, **measured: float) -> ContributionScore:
        fields = dict(heldout_before=baseline.heldout_loss, heldout_after=nan, heldout_improvement=nan,
                      assigned_improvement=nan, random_improvement=nan, control_improvement=nan)
        fields.update(measured)
        return ContributionScore(**fields, proof_of_work=False, score=0.0, reason=reason)  # type: ignore[arg-type]

    if isinstance(delta, EncodedUpdate):
        delta = decode_sparse(delta)  # decode once, not per use
    finite, empty = _delta_stats(delta)
    if not finite:
        return zero("non-finite update")
    if empty:
        return zero("empty update", heldout_after=baseline.heldout_loss, heldout_improvement=0.0,
                    assigned_improvement=0.0, random_improvement=0.0, control_improvement=0.0)

    assigned_before = mean_loss(model, assigned_batches)
    try:
        with applied(params, delta, cfg.eval_lr):
            heldout_after = mean_loss(model, heldout_batches)
            random_after = mean_loss(model, random_batches) if random_batches else float("nan")
            assigned_after = mean_loss(model, assigned_batches)
    except BadShape as exc:
        return zero(f"malformed update: {exc}")

    held = _improvement(baseline.heldout_loss, heldout_after, cfg.relative)
    own = _improvement(assigned_before, assigned_after, cfg.relative)
    rand = _improvement(baseline.random_loss, random_after, cfg.relative) if random_batches else float("nan")
    n_h, n_r = len(heldout_batches), len(random_batches)
    control = (held * n_h + rand * n_r) / (n_h + n_r) if n_r else held
    measured = dict(heldout_after=heldout_after, heldout_improvement=held, assigned_improvement=own,
                    random_improvement=rand, control_improvement=control)
    if not all(math.isfinite(x) for x in (held, own, control, assigned_before)):
        return zero("non-finite loss", **measured)
    pow_ok = own > control + cfg.pow_ratio * abs(control) + cfg.pow_margin
    if not pow_ok:
        logger.debug("no proof of work: assigned {:.4g} vs control {:.4g}", own, control)
        return ContributionScore(heldout_before=baseline.heldout_loss, **measured, proof_of_work=False,
                                 score=min(0.0, held), reason=NO_PROOF_OF_WORK)
    return ContributionScore(heldout_before=baseline.heldout_loss, **measured, proof_of_work=True,
                             score=held, reason="ok" if held > 0 else "no held-out improvement")
