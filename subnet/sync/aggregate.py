"""Robust combination of one window's contributions (pure torch math, lead side).

Per fragment: drop non-finite contributions, clip each remaining one to the
median norm (scale_i = min(1, median / ||d_i||)), then take the mean. The
result is expressed as one coefficient per contribution, coef_i = scale_i / n,
so that every node applies the same thing with elementwise ops only:

    delta = sum_i coef_i * d_i        (manifest order, fp32, one op at a time)
    p     = p - outer_lr * delta

Rule `median_norm_clip_support_mean` (SUPPORT_RULE) then divides each entry by
the share of contributions that carry it: delta[j] *= n / count_j, where
count_j = #{i : d_i[j] != 0}. Sparse top-k updates of one cohort rarely share
all their indices, and a plain mean shrinks an entry only one of n miners sent
to 1/n of what that miner (and the validator's score of it) asked for; the
support mean averages each entry over the miners that sent it. count_j is an
exact small integer and n / count_j one correctly rounded division, so the
rule stays elementwise and bit-identical on every node.

Norms and the median are reductions whose bits depend on thread count and
SIMD width; only the lead computes them (in float64) and ships the resulting
coefficients in `ManifestEntry.weight`. Followers never reduce.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch
from loguru import logger

from subnet.protocol.manifest import Manifest, ManifestEntry

RULE = "median_norm_clip_mean"
SUPPORT_RULE = "median_norm_clip_support_mean"
RULES = (RULE, SUPPORT_RULE)
"""Aggregation rules a manifest may name (`Manifest.aggregation["rule"]`)."""
DEFAULT_RULE = RULE  # = SyncConfig().rule (test_sync_support_mean checks they agree)

Delta = Mapping[str, torch.Tensor]


class Scored(Protocol):
    score: float
    uid: int
    hotkey: str


S = TypeVar("S", bound=Scored)


@dataclass(frozen=True, kw_only=True)
class Contribution:
    """One scored, decoded artifact of one fragment (what the lead aggregates)."""

    fragment: int
    uid: int
    hotkey: str
    key: str
    """Artifact key in the miner's store."""
    sha256: str
    """Hex sha256 of the artifact bytes as fetched (what followers re-check)."""
    score: float
    delta: Delta
    """Dense decoded pseudo-gradient, name -> fp32 tensor."""


@dataclass(frozen=True, kw_only=True)
class Combination:
    """Coefficients for one fragment. `coefs[i]` is None where contribution i was dropped."""

    coefs: tuple[float | None, ...]
    norms: tuple[float, ...]
    median_norm: float

    @property
    def kept(self) -> int:
        return sum(c is not None for c in self.coefs)


def delta_norm(delta: Delta) -> float:
    """L2 norm over all tensors of a contribution, in float64 (nan/inf if any entry is)."""
    total = 0.0
    for name in sorted(delta):
        total += float(torch.sum(delta[name].detach().to(torch.float64) ** 2))
    return math.sqrt(total) if math.isfinite(total) else math.nan


def robust_coefficients(deltas: Sequence[Delta], paid: Sequence[bool] | None = None) -> Combination:
    """Median-norm clipping then mean, as per-contribution coefficients.

    A contribution with a non-finite entry (or norm) is dropped and does not
    count in n or the median. With ``paid`` (one flag per delta) the median is
    taken over the paid contributions when there is one: an unpaid update
    (pipeline.unpaid_aggregation) carries no score evidence, so it must not
    raise the norm every update is clipped to.
    """
    norms = tuple(delta_norm(d) for d in deltas)
    finite = [n for n in norms if math.isfinite(n)]
    if not finite:
        return Combination(coefs=tuple(None for _ in deltas), norms=norms, median_norm=0.0)
    flags = list(paid) if paid is not None else [True] * len(norms)
    if len(flags) != len(norms):
        raise ValueError(f"{len(norms)} deltas but {len(flags)} paid flags")
    yardstick = [n for n, f in zip(norms, flags) if f and math.isfinite(n)] or finite
    median = float(statistics.median(yardstick))
    n = len(finite)
    coefs: list[float | None] = []
    for norm in norms:
        if not math.isfinite(norm):
            coefs.append(None)
            continue
        scale = 1.0 if norm <= median or norm == 0.0 else median / norm
        coefs.append(scale / n)
    return Combination(coefs=tuple(coefs), norms=norms, median_norm=median)


def combine(deltas: Sequence[Delta], coefs: Sequence[float], names: Iterable[str] | None = None, *,
            rule: str = RULE) -> dict[str, torch.Tensor]:
    """delta[name] = sum_i coef_i * d_i[name] with elementwise fp32 ops in the given order.

    Each step is one correctly rounded multiply then one add (no fused or
    reduced ops), so any machine produces the same bits. With no
    contributions every delta is zero. Under SUPPORT_RULE each entry is then
    multiplied by n / count (module docstring), again elementwise.
    """
    if len(deltas) != len(coefs):
        raise ValueError(f"{len(deltas)} deltas but {len(coefs)} coefficients")
    if rule not in RULES:
        raise ValueError(f"unknown aggregation rule {rule!r} (known: {', '.join(RULES)})")
    if names is None:
        names = list(deltas[0]) if deltas else []
    out: dict[str, torch.Tensor] = {}
    for name in names:
        acc: torch.Tensor | None = None
        for d, c in zip(deltas, coefs):
            term = torch.mul(d[name].to(torch.float32), float(c))
            acc = term if acc is None else torch.add(acc, term)
        if acc is not None and rule == SUPPORT_RULE:
            acc = torch.mul(acc, _support_factor([d[name] for d in deltas]))
        if acc is not None:
            out[name] = acc
    return out


def _support_factor(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """n / #{i : t_i != 0} elementwise (1 where no one sent the entry: it is zero anyway); exact counts."""
    count: torch.Tensor | None = None
    for t in tensors:
        nz = torch.ne(t, 0).to(torch.float32)
        count = nz if count is None else torch.add(count, nz)
    assert count is not None
    n = torch.full_like(count, float(len(tensors)))
    return torch.div(n, torch.clamp(count, min=1.0))


def select_top(scored: Iterable[S], top_g: int, *, score: Callable[[S], float] | None = None) -> list[S]:
    """The `top_g` best by score (highest first); ties by uid then hotkey; non-finite scores never kept."""
    if top_g < 0:
        raise ValueError(f"top_g must be >= 0, got {top_g}")
    get = score or (lambda s: s.score)
    ok = [s for s in scored if isinstance(get(s), (int, float)) and math.isfinite(get(s))]
    ok.sort(key=lambda s: (-get(s), s.uid, s.hotkey))
    return ok[:top_g]


def build_manifest(
    *,
    netuid: int,
    window: int,
    base_version: int,
    contributions: Sequence[Contribution],
    outer_lr: float,
    top_g: int | None = None,
    model_hash: str | None = None,
    rule: str = DEFAULT_RULE,
) -> Manifest:
    """The manifest for `contributions` (already selected, any fragments).

    Entries are sorted the way `Manifest` sorts them (fragment, uid, hotkey),
    and coefficients are computed in that order, so `weight` of each entry is
    exactly what followers multiply by. Dropped (non-finite) contributions are
    left out; a window with nothing left still advances the version, so every
    node's version keeps pace with the windows.
    """
    if rule not in RULES:
        raise ValueError(f"unknown aggregation rule {rule!r} (known: {', '.join(RULES)})")
    ordered = sorted(contributions, key=lambda c: (c.fragment, c.uid, c.hotkey))
    by_fragment: dict[int, list[Contribution]] = {}
    for c in ordered:
        by_fragment.setdefault(c.fragment, []).append(c)
    entries: list[ManifestEntry] = []
    params: dict[str, str | int | float | bool] = {"rule": rule}
    if top_g is not None:
        params["top_g"] = int(top_g)
    for fragment, group in sorted(by_fragment.items()):
        comb = robust_coefficients([c.delta for c in group], paid=[c.score > 0 for c in group])
        params[f"median_norm.{fragment}"] = comb.median_norm
        params[f"kept.{fragment}"] = comb.kept
        for c, coef, norm in zip(group, comb.coefs, comb.norms):
            if coef is None:
                logger.warning("dropping non-finite contribution uid={} fragment={} window={}", c.uid, fragment, window)
                continue
            logger.debug("fragment {} uid {}: norm {:.4g} coef {:.4g}", fragment, c.uid, norm, coef)
            entries.append(
                ManifestEntry(fragment=c.fragment, uid=c.uid, hotkey=c.hotkey, key=c.key, sha256=c.sha256, weight=coef)
            )
    return Manifest(
        netuid=netuid,
        window=window,
        base_version=base_version,
        new_version=base_version + 1,
        entries=tuple(entries),
        outer_lr=outer_lr,
        aggregation=params,
        model_hash=model_hash,
    )
