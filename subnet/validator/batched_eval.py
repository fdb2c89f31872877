"""Score several contributions per forward pass (``torch.vmap`` over stacked fragment weights).

Why: ``scoring.score_contribution`` runs ``2*assigned + heldout + random``
forward passes per submission, one submission at a time. The held-out and
control batches are the same for every submission of a window and only the
fragment's weights differ, so k submissions on one fragment can share one
batched pass: each gets its own perturbed copy of the fragment's tensors
(``theta - eval_lr * delta``, built on clones with ``codec.apply_sparse``, so
the arithmetic is the one ``scoring.applied`` does), stacked along a new
leading dimension and fed to ``torch.func.functional_call`` under
``torch.vmap``. Layers before the fragment see unbatched weights and inputs,
so vmap runs them once for all k (a real saving for later fragments); the
rest is batched matmuls. The assigned pages' "before" losses use the base
model for everyone, so all k submissions' assigned batches are concatenated
into one ordinary forward.

The live model is never modified (the perturbed weights are copies), so a
failure mid-batch cannot leave it changed. Scores equal the one-at-a-time
ones up to float reassociation (stated tolerance: |delta loss| < 1e-5 in
fp32, same ranking; validator_tests/test_validator_batched_eval.py).
Submissions that are empty, non-finite or malformed are handed to
``score_contribution`` itself (it decides those without a forward pass or
with its own error handling), so their verdicts are its verdicts.

Prefix cache: the vmapped path stays on the full forward (vmap already runs
the layers before the fragment once for all k); items it hands to
``score_contribution`` use the baseline's prefix cache there (same losses).

Cost: memory grows k-fold in the fragment's weights and in activations
(logits are ``k * batch * seq * vocab`` floats), so k is a flag, not "all".
Measured speed-up on this CPU and the choice of default: docs/BENCHMARKS.md
(`bench/validator_scale.py --sections batched`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from subnet.codec.apply import apply_sparse
from subnet.codec.errors import BadShape
from subnet.codec.sparseloco import EncodedUpdate, SparseTensor, decode_sparse
from subnet.errors import ConfigError
from subnet.validator.scoring import (
    Baseline,
    ContributionScore,
    Delta,
    ScoreConfig,
    _delta_stats,
    check_batch,
    score_contribution,
    score_from_losses,
)


@dataclass(frozen=True, kw_only=True)
class BatchedEvalConfig:
    """How many contributions share one evaluation pass."""

    batch_contributions: int = 1
    """Contributions of one fragment evaluated per batched forward (torch.vmap over stacked fragment weights);
    1 (the default) = one at a time with scoring.score_contribution. On 2 CPU cores it did not pay (CPU per
    contribution 0.93-1.14x at tiny, 0.78-1.00x at small, k=4-16; docs/BENCHMARKS.md); on a GPU, where one
    small model's forward leaves the device mostly idle, it should (not measured): try 8-16."""

    def __post_init__(self) -> None:
        if isinstance(self.batch_contributions, bool) or self.batch_contributions < 1:
            raise ConfigError(f"BatchedEvalConfig.batch_contributions must be >= 1, got {self.batch_contributions}")


@dataclass(frozen=True, kw_only=True)
class Item:
    """One contribution to score: the fragment's live parameters, its update and its assigned batches."""

    params: Mapping[str, torch.Tensor]
    delta: Delta
    assigned: Sequence[torch.Tensor]


def _row_losses(logits: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """[..., B] mean next-token loss per page (float32 logits), as scoring._row_losses computes it."""
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[..., 1:].reshape(-1), reduction="none")
    return loss.view(*batch.shape[:-1], -1).mean(dim=-1)


def _vmapped_rows(model: nn.Module, stacked: Mapping[str, torch.Tensor], batch: torch.Tensor,
                  per_item: bool) -> torch.Tensor:
    """[k, B] row losses of k weight sets on one shared batch [B, L] or on k batches [k, B, L]."""
    def rows(weights: Mapping[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, dict(weights), (), {"input_ids": ids[:, :-1]}).logits
        return _row_losses(logits, ids)

    with warnings.catch_warnings():  # sdpa on CPU has no batching rule yet: vmap loops it (correct, noted once)
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        return torch.vmap(rows, in_dims=(0, 0 if per_item else None))(dict(stacked), batch)


def _perturbed(params: Mapping[str, torch.Tensor], sparse: Sequence[SparseTensor],
               lr: float) -> dict[str, torch.Tensor]:
    """Copies of the fragment's tensors with the update applied (raises BadShape like scoring.applied)."""
    copies = {n: p.detach().clone() for n, p in params.items()}
    apply_sparse(copies, sparse, scale=-lr)
    return copies


def score_batch(model: nn.Module, items: Sequence[Item], cfg: ScoreConfig, heldout_batches: Sequence[torch.Tensor],
                random_batches: Sequence[torch.Tensor], baseline: Baseline) -> list[ContributionScore]:
    """`score_contribution` for every item, the well-formed ones of one fragment in one vmapped pass.

    Items must share a fragment (the same parameter names and shapes); the
    evaluate stage groups them so. Never raises for bad miner work.
    """
    out: list[ContributionScore | None] = [None] * len(items)
    ready: list[tuple[int, list[SparseTensor], dict[str, torch.Tensor]]] = []
    for i, it in enumerate(items):
        sparse = decode_sparse(it.delta) if isinstance(it.delta, EncodedUpdate) else it.delta
        finite, empty = _delta_stats(sparse)
        weights = None
        if finite and not empty and not isinstance(sparse, Mapping):
            try:
                weights = _perturbed(it.params, list(sparse), cfg.eval_lr)
            except BadShape:
                weights = None
        if weights is None:  # empty, non-finite, dense or malformed: the one-at-a-time scorer's verdict
            out[i] = score_contribution(model, it.params, sparse, cfg, it.assigned, heldout_batches, random_batches,
                                        baseline)
        else:
            ready.append((i, list(sparse), weights))
    if ready:
        names = list(ready[0][2])
        if any(list(w) != names for _, _, w in ready):
            raise ConfigError("score_batch: items of one batch must share a fragment")
        for (i, _sp, _), cs in zip(ready, _score_ready(model, ready, items, cfg, heldout_batches, random_batches,
                                                           baseline, names)):
            out[i] = cs
    assert all(cs is not None for cs in out)
    return out  # type: ignore[return-value]


def _score_ready(model: nn.Module, ready: Sequence[tuple[int, list[SparseTensor], dict[str, torch.Tensor]]],
                 items: Sequence[Item], cfg: ScoreConfig, heldout: Sequence[torch.Tensor],
                 random: Sequence[torch.Tensor], baseline: Baseline, names: Sequence[str]) -> list[ContributionScore]:
    k = len(ready)
    for b in [*heldout, *random, *(b for i, _, _ in ready for b in items[i].assigned)]:
        check_batch(b)
    stacked = {n: torch.stack([w[n] for _, _, w in ready]) for n in names}
    assigned = [list(items[i].assigned) for i, _, _ in ready]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            held_after = _rows_per_item(model, stacked, heldout, k)
            rand_after = _rows_per_item(model, stacked, random, k) if random else [[] for _ in range(k)]
            own_before = _base_rows(model, assigned)
            own_after = _assigned_after(model, stacked, assigned)
    finally:
        model.train(was_training)
    return [_finish(sparse, cfg, baseline, own_before[j], held_after[j], rand_after[j], own_after[j],
                    len(heldout), len(random)) for j, (_, sparse, _) in enumerate(ready)]


def _rows_per_item(model: nn.Module, stacked: Mapping[str, torch.Tensor], batches: Sequence[torch.Tensor],
                   k: int) -> list[list[float]]:
    """Per item, the row losses over shared `batches` (one vmapped forward per batch)."""
    per = [_vmapped_rows(model, stacked, b, per_item=False) for b in batches]
    return [sum((r[j].tolist() for r in per), []) for j in range(k)]


def _base_rows(model: nn.Module, assigned: Sequence[Sequence[torch.Tensor]]) -> list[list[float]]:
    """Per item, the base model's row losses on its assigned batches: one forward over all of them when they
    concatenate (one page length), else one per batch."""
    flat = [b for bs in assigned for b in bs]
    if len({b.shape[1] for b in flat}) == 1:
        big = torch.cat(flat)
        rows = _row_losses(model(input_ids=big[:, :-1]).logits, big).tolist()
    else:
        rows = sum((_row_losses(model(input_ids=b[:, :-1]).logits, b).tolist() for b in flat), [])
    out, at = [], 0
    for bs in assigned:
        n = sum(int(b.shape[0]) for b in bs)
        out.append(rows[at:at + n])
        at += n
    return out


def _assigned_after(model: nn.Module, stacked: Mapping[str, torch.Tensor],
                    assigned: Sequence[Sequence[torch.Tensor]]) -> list[list[float]]:
    """Per item, its perturbed model's row losses on its own assigned batches (vmapped when shapes agree)."""
    shapes = {tuple(tuple(b.shape) for b in bs) for bs in assigned}
    k = len(assigned)
    if len(shapes) == 1:
        per = [_vmapped_rows(model, stacked, torch.stack([bs[t] for bs in assigned]), per_item=True)
               for t in range(len(assigned[0]))]
        return [sum((r[j].tolist() for r in per), []) for j in range(k)]
    out = []
    for j, bs in enumerate(assigned):  # ragged: each item alone, still on its copy of the weights
        weights = {n: v[j] for n, v in stacked.items()}
        out.append(sum((_row_losses(functional_call(model, weights, (), {"input_ids": b[:, :-1]}).logits,
                                    b).tolist() for b in bs), []))
    return out


def _finish(delta: Sequence[SparseTensor], cfg: ScoreConfig, baseline: Baseline, own_before: list[float],
            held_after_p: list[float], rand_after_p: list[float], own_after: list[float], n_h: int,
            n_r: int) -> ContributionScore:
    """The score from the losses measured in the batched pass: scoring.score_from_losses, the one definition."""
    return score_from_losses(delta, cfg, baseline, own_before=own_before, own_after=own_after,
                             held_after=held_after_p, rand_after=rand_after_p, n_heldout=n_h, n_random=n_r)
