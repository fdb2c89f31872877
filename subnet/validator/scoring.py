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

Prefix cache (cost, not arithmetic): an update to fragment f > 0 cannot change
the hidden states entering its first decoder layer a, so the "before" passes
(the baseline's held-out and control batches, once per window; the assigned
batches, per submission) record them and every "after" pass runs only layers
[a, n), the final norm and the head (prefix_cache.py, bounded by
``PrefixCacheConfig.max_bytes``; fragment 0, non-Llama models and anything
over the bound take the full forward). The per-page losses are the full
forward's (tested to 1e-6; bit-equal on the pinned transformers 5.24), so
every score is unchanged. Measured on tiny, F = 2 (docs/BENCHMARKS.md): the
last fragment's score runs 1.15-1.5x faster; fragment 0's is unchanged. The
cache assumes the model is not changed between ``compute_baseline`` and the
window's scoring (as the baseline losses already do).

Score: held-out improvement, by default *relative* to the baseline
(``(L_before - L_after) / L_before``), which is what templar uses and keeps
scores comparable across windows as the loss falls.

Variance reduction (the window's reference set): a few held-out pages rank
contributions noisily, mostly through the first-order term ``g . delta`` whose
value depends on which pages were drawn. When the baseline carries gradients
(``compute_baseline(..., reference=...)``, once per window: one forward and
backward over the scored held-out and control batches and over a larger
held-out *reference* set), every measured improvement is corrected by a
control variate::

    estimate = measured(scored pages) - lin(scored pages) + lin(reference set)
    lin(S)   = eval_lr * <grad L_S, delta> / L_S       (relative mode)

i.e. the linear part of the improvement is taken from the large set (a sparse
dot product per submission, no extra forward pass) and only the curvature
part from the scored forward pass. The estimate is still an exact loss
measurement where it matters for abuse: scaling an update or sending noise
adds curvature (second-order) loss that the scored forward pass sees in full,
and the reference pages come from the next window's seed, unknown to miners.
Without reference gradients the score is the plain measured improvement.

Proof of work: the improvement on the miner's assigned pages must beat the
improvement on pages it could not have trained on. The control is the
batch-weighted mean of the random-page and held-out improvements (both are
unseen by the miner; pooling them doubles the control sample for free), and
"beat" means ``own > control + pow_ratio * |control| + pow_margin``. Measured
on the tiny model with one 8-page batch per set and the default codec, honest
miners showed own/control >= 1.98 and miners trained on other pages
<= 1.40 (8 of each), hence the default ``pow_ratio = 0.5``; a bare
``own > random`` passed about half of the lazy miners on sampling noise.
A ratio alone cannot tell a real gap from a lucky page draw when both
improvements are tiny (noise updates flip a coin), so the difference must
also clear ``pow_z`` standard errors, taken from the per-page spread of the
assigned and control improvements (Welch); with the reference control
variate the control mean is the corrected one. bench/validator.py measures
both rules side by side over 25+ windows (docs/BENCHMARKS.md).
Neither per-window rule met the target (0 false passes of 50 and <= 1% honest
fails): the ratio test passed about a third of the free-riders' tries, z = 3
failed 6% of honest ones. With ``pow_sequential`` the per-window test no
longer gates the score; ``pow_t`` (the Welch t of the per-page improvements,
assigned minus control) feeds a running account per miner
(subnet/validator/powevidence.py: a one-sided CUSUM charged ``pow_drift``
per window, capped at ``pow_cap``), and the pipeline pays a miner only while
its account is at least ``pow_bar`` (up to ``pow_credits`` held windows
can be paid late, once the account reaches the bar: the deferred credit).
It is the network's rule (``NETWORK_SCORE``, with ``n_random_batches=0``:
the held-out pages are then the whole control, the random-page terms NaN
and unused). Its rule, bounds and measured error
rates are in that module's docstring and docs/BENCHMARKS.md.
Failing scores ``min(0, held-out improvement)`` with reason
``"no proof of work"`` (never credit, still recorded as harmful when it
hurts). Empty updates score 0 without evaluation; non-finite updates or
losses score 0. Harmful updates that pass proof of work keep their negative
score so the competition can rank them below useless ones.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from loguru import logger
from torch import nn

from subnet.codec.apply import apply_sparse
from subnet.codec.errors import BadShape
from subnet.codec.sparseloco import EncodedUpdate, SparseTensor, decode_sparse
from subnet.data.pages import Split, TokenPages
from subnet.errors import ConfigError
from subnet.protocol.assignment import AssignmentParams, heldout_pages
from subnet.validator.prefix_cache import (
    LayerInput,
    PrefixCache,
    PrefixCacheConfig,
    WindowPrefix,
    affordable,
    llama_parts,
    recording,
    start_layer,
    tail_logits,
)

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
    """Token pages per held-out batch."""
    pow_batch_size: int = 4
    """Token pages per assigned or random (proof-of-work) batch."""
    relative: bool = True
    pow_ratio: float = 0.5
    pow_margin: float = 0.0
    pow_z: float = 0.0
    """And by this many standard errors of the difference (from the per-page spread of the assigned and control
    improvements; 3 lets sampling noise pass about 1 try in 700). 0 (the default) disables it: on the tiny model
    with 8 assigned pages honest t reached down to ~2 (docs/BENCHMARKS.md), so a z of 3 would fail honest work."""
    pow_sequential: bool = False
    """Proof of work as running evidence per miner (subnet/validator/powevidence.py): the per-window test above
    no longer gates the score; the pipeline pays a miner only while its account of ``pow_t`` clears ``pow_bar``
    (up to ``pow_credits`` held windows late: the deferred credit). Off here, on in ``NETWORK_SCORE``."""
    pow_drift: float = 1.5
    """Sequential proof of work: standard errors charged per window (a free-rider's t is about 0)."""
    pow_clip: float = 8.0
    """Sequential proof of work: one window's t counts at most this much either way."""
    pow_bar: float = 3.0
    """Sequential proof of work: the account a miner needs to be paid."""
    pow_cap: float = 4.5
    """Sequential proof of work: the most a miner can bank (bounds free windows after honest work). Why
    ``pow_bar + pow_drift``: banked evidence then covers exactly one weak window (t >= 0) after work, and the
    deferred credit (``pow_credits``) rather than the bank rides out the cold start; replayed on 3 runs
    (A8 H8 R0) it paid honest 297/300 and newcomers' first windows 250/252 against 295 and 243 at the
    previous cap 6 with one credit, free-riders 0/450 both (powevidence's module docstring)."""
    pow_credits: int = 2
    """Sequential proof of work: held windows a hotkey may still be paid for; 0 = no deferred credit. The
    newest ``pow_credits`` held windows are paid late when a later window's account reaches the bar (3 let
    strong-free-free-free-free alternation be paid in 94% of windows, so not that)."""
    n_reference_batches: int = 0
    """Held-out batches (of ``batch_size`` pages, drawn from the next window's seed) whose gradient gives
    the first-order term of every score (the control variate; once per window); 0 (the default) = plain
    measurement: with 8 batches it did not raise fidelity on the tiny model (docs/BENCHMARKS.md)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eval_lr) and self.eval_lr > 0):
            raise ConfigError(f"ScoreConfig.eval_lr must be finite and > 0, got {self.eval_lr}")
        for name in ("n_assigned_batches", "n_heldout_batches", "batch_size", "pow_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ScoreConfig.{name} must be >= 1")
        if self.n_random_batches < 0 or self.n_reference_batches < 0:
            raise ConfigError("ScoreConfig.n_random_batches and n_reference_batches must be >= 0")
        if isinstance(self.pow_credits, bool) or not isinstance(self.pow_credits, int) or self.pow_credits < 0:
            raise ConfigError(f"ScoreConfig.pow_credits must be an integer >= 0, got {self.pow_credits!r}")
        if not self.pow_bar <= self.pow_cap:
            raise ConfigError(f"ScoreConfig.pow_bar ({self.pow_bar}) must be <= pow_cap ({self.pow_cap})")
        for name in ("pow_ratio", "pow_margin", "pow_z", "pow_drift", "pow_clip", "pow_bar", "pow_cap"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"ScoreConfig.{name} must be finite and >= 0, got {value}")


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """Losses of the unmodified base model, shared by all submissions of a window."""

    heldout_loss: float
    random_loss: float
    heldout_page_losses: tuple[float, ...] = ()
    """Per-page before-losses of the held-out batches (the proof-of-work test's spread)."""
    random_page_losses: tuple[float, ...] = ()
    """Per-page before-losses of the random (control) batches."""
    reference_loss: float = float("nan")
    """Mean loss over the reference held-out set (NaN: no reference, plain measurement)."""
    heldout_grad: Mapping[str, torch.Tensor] | None = None
    """d(mean loss on the scored held-out batches)/d(param), by parameter name."""
    random_grad: Mapping[str, torch.Tensor] | None = None
    """The same on the random (control) batches (None without random batches)."""
    reference_grad: Mapping[str, torch.Tensor] | None = None
    """The same on the reference set: the low-variance first-order term."""
    prefix: WindowPrefix | None = None
    """Hidden states entering the fragments' first layers on the held-out and control batches, recorded in the
    before pass (prefix_cache.py); None: every after pass is a full forward."""

    @property
    def has_reference(self) -> bool:
        return self.reference_grad is not None and self.heldout_grad is not None


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
    estimated_improvement: float = float("nan")
    """Held-out improvement after the control variate (what ``score`` is); the measurement when no reference."""
    heldout_linear: float = float("nan")
    """First-order prediction of the held-out improvement on the scored batches."""
    reference_linear: float = float("nan")
    """First-order prediction on the reference set (NaN: no reference)."""
    pow_t: float = float("nan")
    """Welch t of the per-page improvements: mean over assigned pages minus mean over the control (held-out and
    random) pages, in standard errors of that difference (NaN: fewer than 2 pages on a side)."""
    assigned_pages: tuple[float, ...] = ()
    """Per-page improvement on each scored assigned page (same units as the means; the proof-of-work evidence)."""
    heldout_pages: tuple[float, ...] = ()
    """Per-page improvement on each scored held-out page."""
    random_pages: tuple[float, ...] = ()
    """Per-page improvement on each control (random train) page."""


def check_batch(batch: torch.Tensor) -> None:
    """A batch of token pages is [B, L >= 2] (input[:-1] -> target[1:]); anything else is a ConfigError."""
    if batch.dim() != 2 or batch.shape[1] < 2:
        raise ConfigError(f"a batch must be [B, L>=2] token ids, got shape {tuple(batch.shape)}")


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
                check_batch(batch)
                logits = model(input_ids=batch[:, :-1]).logits
                loss = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1), reduction="sum"
                )
                total += float(loss)
                count += batch[:, 1:].numel()
    finally:
        model.train(was_training)
    return total / count


def page_losses(model: nn.Module, batches: Sequence[torch.Tensor]) -> list[float]:
    """Mean next-token loss of every page (row) of every batch, in order (one forward per batch)."""
    return _page_losses(model, batches)[0]


def _page_losses(model: nn.Module, batches: Sequence[torch.Tensor], *, record: Sequence[int] = (),
                 max_bytes: int | None = None, cached: Sequence[LayerInput] | None = None,
                 layer: int = 0) -> tuple[list[float], dict[int, list[LayerInput]]]:
    """`page_losses`, optionally recording the inputs entering ``record`` layers (full forward), or, with
    ``cached`` (one recorded input per batch at ``layer``), running only the tail from there."""
    if not batches:
        raise ConfigError("page_losses needs at least one batch")
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        with torch.no_grad(), recording(model, record, max_bytes) as rec:
            for i, batch in enumerate(batches):
                rows = _row_losses(model, batch) if cached is None else _tail_row_losses(model, cached[i], layer, batch)
                out += rows.tolist()
    finally:
        model.train(was_training)
    return out, rec


def _row_losses(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """[B] mean next-token loss per page (float32 logits)."""
    check_batch(batch)
    return _logit_row_losses(model(input_ids=batch[:, :-1]).logits, batch)


def _logit_row_losses(logits: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1), reduction="none")
    return loss.view(batch.shape[0], -1).mean(dim=1)


def _tail_row_losses(model: nn.Module, inp: LayerInput, layer: int, batch: torch.Tensor) -> torch.Tensor:
    """`_row_losses` from the recorded input entering ``layer`` (the same modules on the same inputs)."""
    check_batch(batch)
    return _logit_row_losses(tail_logits(model, inp, layer), batch)


def _after_losses(model: nn.Module, batches: Sequence[torch.Tensor], cache: PrefixCache | None,
                  layer: int | None) -> list[float]:
    """Per-page losses of the (updated) model: the tail from ``cache`` at ``layer`` when it holds these batches."""
    cached = cache.lookup(batches, layer) if cache is not None and layer is not None else None
    if cached is None:
        return page_losses(model, batches)
    return _page_losses(model, batches, cached=cached, layer=layer)[0]


def page_batches(pages: TokenPages, indices: Sequence[int], split: Split, batch_size: int,
                 n_batches: int) -> list[torch.Tensor]:
    """The first ``n_batches * batch_size`` of ``indices`` as ``n_batches`` token batches (fewer if short).

    ``n_batches=0`` is no batches (``n_random_batches=0``: no random control pages, NETWORK_SCORE)."""
    if batch_size < 1 or n_batches < 0:
        raise ConfigError("batch_size must be >= 1 and n_batches >= 0")
    if n_batches == 0:
        return []
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


def loss_and_grad(model: nn.Module, batches: Sequence[torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
    """Mean next-token loss over ``batches`` and its gradient for every parameter (by name).

    Leaves the model as it was: requires_grad flags, existing ``.grad`` and
    train/eval mode are restored, parameters are not touched.
    """
    rows, grads = _page_losses_and_grad(model, batches)
    return sum(rows) / len(rows), grads


def _page_losses_and_grad(model: nn.Module,
                          batches: Sequence[torch.Tensor]) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Per-page losses and the gradient of their mean (all pages have one length, so it is the token mean)."""
    if not batches:
        raise ConfigError("loss_and_grad needs at least one batch")
    named = dict(model.named_parameters())
    flags = {n: p.requires_grad for n, p in named.items()}
    saved = {n: p.grad for n, p in named.items()}
    was_training = model.training
    n_rows = sum(int(b.shape[0]) for b in batches)
    rows: list[float] = []
    try:
        model.eval()
        for p in named.values():
            p.requires_grad_(True)
            p.grad = None
        with torch.enable_grad():
            for batch in batches:
                row = _row_losses(model, batch)
                (row.sum() / n_rows).backward()
                rows += row.detach().tolist()
        grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)) for n, p in named.items()}
    finally:
        for n, p in named.items():
            p.grad = saved[n]
            p.requires_grad_(flags[n])
        model.train(was_training)
    return rows, grads


def compute_baseline(model: nn.Module, heldout_batches: Sequence[torch.Tensor],
                     random_batches: Sequence[torch.Tensor],
                     reference: Sequence[torch.Tensor] = (), *,
                     prefix: PrefixCacheConfig | None = None,
                     prefix_layers: Sequence[int] | None = None) -> Baseline:
    """Before-losses (and with ``reference``, gradients) shared by every submission of this window.

    With no random batches ``random_loss`` is NaN and scoring uses the held-out
    control only. With ``reference`` batches (``ScoreConfig.n_reference_batches``
    held-out batches from the next window's seed) the baseline also carries the
    gradients of the held-out, random and reference losses, and every score gets
    the control variate of the module docstring; cost: one forward+backward over
    the three sets, once per window.

    Prefix cache (``prefix``, default ``PrefixCacheConfig()``: on): the same
    passes record the hidden states entering each of ``prefix_layers`` (default:
    every boundary 1..n; the pipeline passes its fragments' first layers) while
    they fit ``prefix.max_bytes``, so scoring an update to a later fragment runs
    only the layers it changed (prefix_cache.py; the losses are the full
    forward's). Off, or a model that is not Llama-shaped: ``Baseline.prefix`` is None.
    """
    mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
    prefix = PrefixCacheConfig() if prefix is None else prefix
    parts = llama_parts(model) if prefix.enabled else None
    layers: list[int] = []
    if parts is not None:
        wanted = range(1, parts.n_layers + 1) if prefix_layers is None else set(prefix_layers)
        # deepest first: when not every boundary fits, keep the ones that skip the most layers
        layers = affordable(model, [*heldout_batches, *random_batches],
                            sorted((a for a in wanted if 0 < a <= parts.n_layers), reverse=True), prefix.max_bytes)
    extra: dict[str, object] = {}
    with recording(model, layers, prefix.max_bytes) as rec:
        if not reference:
            held = page_losses(model, heldout_batches)
            rand = page_losses(model, random_batches) if random_batches else []
        else:
            held, held_grad = _page_losses_and_grad(model, heldout_batches)
            rand, rand_grad = _page_losses_and_grad(model, random_batches) if random_batches else ([], None)
    if reference:
        ref_loss, ref_grad = loss_and_grad(model, reference)
        extra = dict(reference_loss=ref_loss, heldout_grad=held_grad, random_grad=rand_grad, reference_grad=ref_grad)
    if parts is not None:
        n_h = len(heldout_batches)
        rec = {a: xs for a, xs in rec.items() if _aligned(xs, [*heldout_batches, *random_batches])}
        extra["prefix"] = WindowPrefix(
            heldout=PrefixCache(list(heldout_batches), {a: xs[:n_h] for a, xs in rec.items()}),
            random=PrefixCache(list(random_batches), {a: xs[n_h:] for a, xs in rec.items()}), cfg=prefix)
    return Baseline(heldout_loss=mean(held), random_loss=mean(rand), heldout_page_losses=tuple(held),
                    random_page_losses=tuple(rand), **extra)  # type: ignore[arg-type]


def _aligned(recorded: Sequence[LayerInput], batches: Sequence[torch.Tensor]) -> bool:
    """One recorded input per batch, each shaped [B, L-1, d] like its batch (else the record is not used)."""
    return len(recorded) == len(batches) and all(
        tuple(x.hidden.shape[:2]) == (b.shape[0], b.shape[1] - 1) for x, b in zip(recorded, batches))


def reference_pages(seed_next: int, params: AssignmentParams, n_pages: int) -> tuple[int, ...]:
    """The window's reference held-out pages: a larger draw from the same seed as the scored ones.

    Deterministic (any validator can audit it) and unknown to miners while
    they train, like the scored held-out pages; it may overlap them.
    """
    if n_pages < 1:
        raise ConfigError("reference_pages needs n_pages >= 1")
    n = min(n_pages, params.n_heldout_pages)
    return heldout_pages(seed_next, dataclasses.replace(params, heldout_per_window=n))


def _linear(grad: Mapping[str, torch.Tensor], delta: Mapping[str, torch.Tensor] | Sequence[SparseTensor],
            lr: float, before: float, relative: bool) -> float:
    """First-order improvement ``lr * <grad, delta>`` (relative: divided by the before-loss); sparse-aware."""
    dot = 0.0
    if isinstance(delta, Mapping):
        for name, d in delta.items():
            g = grad.get(name)
            if g is None or g.shape != d.shape:
                raise BadShape(f"no gradient shaped {tuple(d.shape)} for {name!r}")
            dot += float((g.double() * d.double()).sum())
    else:
        for t in delta:
            g = grad.get(t.name)
            if g is None or tuple(g.shape) != tuple(t.shape):
                raise BadShape(f"no gradient shaped {tuple(t.shape)} for {t.name!r}")
            dot += float((g.reshape(-1)[t.index].double() * t.values.double()).sum())
    gain = lr * dot
    return gain / before if relative else gain


def _delta_stats(delta: Delta) -> tuple[bool, bool]:
    """(all finite, all zero) without densifying sparse input."""
    sparse = _sparse(delta)
    tensors = [s.values for s in sparse] if sparse is not None else list(delta.values())  # type: ignore[union-attr]
    finite = all(bool(torch.isfinite(t).all()) for t in tensors)
    zero = all(not bool(t.any()) for t in tensors)
    return finite, zero


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _t_stat(diff: float, own: Sequence[float], control: Sequence[float]) -> float:
    """``diff`` over the standard error of (mean own - mean control) from the per-page spreads (Welch)."""
    if len(own) < 2 or len(control) < 2 or not math.isfinite(diff):
        return float("nan")
    var = lambda v: sum((x - _mean(v)) ** 2 for x in v) / (len(v) - 1)  # noqa: E731
    se = math.sqrt(var(own) / len(own) + var(control) / len(control))
    if not math.isfinite(se):
        return float("nan")
    return diff / se if se > 0 else (math.inf if diff > 0 else -math.inf if diff < 0 else 0.0)


def _improvement(before: float, after: float, relative: bool) -> float:
    diff = before - after
    return diff / before if relative else diff


def _zeroed(baseline: Baseline, reason: str, **measured: float) -> ContributionScore:
    """A zero score with what was measured before the reason to stop (the rest NaN)."""
    nan = float("nan")
    fields = dict(heldout_before=baseline.heldout_loss, heldout_after=nan, heldout_improvement=nan,
                  assigned_improvement=nan, random_improvement=nan, control_improvement=nan)
    fields.update(measured)
    return ContributionScore(**fields, proof_of_work=False, score=0.0, reason=reason)  # type: ignore[arg-type]


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
    zero = partial(_zeroed, baseline)

    if isinstance(delta, EncodedUpdate):
        delta = decode_sparse(delta)  # decode once, not per use
    finite, empty = _delta_stats(delta)
    if not finite:
        return zero("non-finite update")
    if empty:
        return zero("empty update", heldout_after=baseline.heldout_loss, heldout_improvement=0.0,
                    assigned_improvement=0.0, random_improvement=0.0, control_improvement=0.0,
                    estimated_improvement=0.0)

    window = baseline.prefix
    a = start_layer(model, params) if window is not None and window.cfg.enabled else None
    record = affordable(model, assigned_batches, [a], window.cfg.max_bytes) if window and a is not None else []
    own_before, rec = _page_losses(model, assigned_batches, record=record,
                                   max_bytes=window.cfg.max_bytes if window else None)
    own_cache = PrefixCache(list(assigned_batches), rec) if record and _aligned(rec[a], assigned_batches) else None
    try:
        with applied(params, delta, cfg.eval_lr):
            held_after_p = _after_losses(model, heldout_batches, window.heldout if window else None, a)
            rand_after_p = (_after_losses(model, random_batches, window.random if window else None, a)
                            if random_batches else [])
            own_after = _after_losses(model, assigned_batches, own_cache, a)
    except BadShape as exc:
        return zero(f"malformed update: {exc}")
    return score_from_losses(delta, cfg, baseline, own_before=own_before, own_after=own_after,
                             held_after=held_after_p, rand_after=rand_after_p, n_heldout=len(heldout_batches),
                             n_random=len(random_batches))


def score_from_losses(delta: Sequence[SparseTensor] | Mapping[str, torch.Tensor], cfg: ScoreConfig,
                      baseline: Baseline, *, own_before: Sequence[float], own_after: Sequence[float],
                      held_after: Sequence[float], rand_after: Sequence[float], n_heldout: int,
                      n_random: int) -> ContributionScore:
    """The score from measured per-page losses: pure, shared by `score_contribution` and batched_eval.py.

    One definition of the arithmetic (improvements, the control variate, the
    proof-of-work test and its Welch t), so a batched evaluation can only
    differ from one-at-a-time scoring by the losses it measured.
    """
    nan = float("nan")
    held_after_p, rand_after_p, n_h, n_r = list(held_after), list(rand_after), n_heldout, n_random
    zero = partial(_zeroed, baseline)

    assigned_before, assigned_after = _mean(own_before), _mean(own_after)
    heldout_after, random_after = _mean(held_after_p), _mean(rand_after_p)

    held = _improvement(baseline.heldout_loss, heldout_after, cfg.relative)
    own = _improvement(assigned_before, assigned_after, cfg.relative)
    rand = _improvement(baseline.random_loss, random_after, cfg.relative) if n_r else nan
    est, rand_est, lin_h, lin_ref = held, rand, nan, nan
    if baseline.has_reference:  # control variate: first-order term from the reference set
        try:
            lin_ref = _linear(baseline.reference_grad, delta, cfg.eval_lr, baseline.reference_loss, cfg.relative)  # type: ignore[arg-type]
            lin_h = _linear(baseline.heldout_grad, delta, cfg.eval_lr, baseline.heldout_loss, cfg.relative)  # type: ignore[arg-type]
            est = held - lin_h + lin_ref
            if n_r and baseline.random_grad is not None:
                rand_est = rand - _linear(baseline.random_grad, delta, cfg.eval_lr, baseline.random_loss,
                                          cfg.relative) + lin_ref
        except BadShape as exc:
            return zero(f"malformed update: {exc}")
    control = (est * n_h + rand_est * n_r) / (n_h + n_r) if n_r else est
    own_pages = [_improvement(b, a, cfg.relative) for b, a in zip(own_before, own_after)]
    held_pages = [_improvement(b, a, cfg.relative) for b, a in zip(baseline.heldout_page_losses, held_after_p)]
    rand_pages = [_improvement(b, a, cfg.relative) for b, a in zip(baseline.random_page_losses, rand_after_p)]
    ctrl_pages = held_pages + rand_pages
    t = _t_stat(_mean(own_pages) - _mean(ctrl_pages), own_pages, ctrl_pages)
    measured = dict(heldout_after=heldout_after, heldout_improvement=held, assigned_improvement=own,
                    random_improvement=rand, control_improvement=control, estimated_improvement=est,
                    heldout_linear=lin_h, reference_linear=lin_ref, pow_t=t, assigned_pages=tuple(own_pages),
                    heldout_pages=tuple(held_pages), random_pages=tuple(rand_pages))
    if not all(math.isfinite(x) for x in (held, est, own, control, assigned_before)):
        return zero("non-finite loss", **measured)
    pow_ok = own > control + cfg.pow_ratio * abs(control) + cfg.pow_margin
    if cfg.pow_z > 0 and math.isfinite(t):
        pow_ok = pow_ok and t > cfg.pow_z
    if not pow_ok and not cfg.pow_sequential:  # sequential: powevidence.apply_evidence decides from the account
        logger.debug("no proof of work: assigned {:.4g} vs control {:.4g}", own, control)
        return ContributionScore(heldout_before=baseline.heldout_loss, **measured, proof_of_work=False,
                                 score=min(0.0, est), reason=NO_PROOF_OF_WORK)
    return ContributionScore(heldout_before=baseline.heldout_loss, **measured, proof_of_work=pow_ok,
                             score=est, reason="ok" if est > 0 else "no held-out improvement")
