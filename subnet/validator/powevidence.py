"""Proof of work as running evidence per miner: one window's test is too noisy to trust alone.

Why: a single window's proof of work compares the update's improvement on 8
of the miner's assigned pages with its improvement on pages it could not
have trained on. The page-to-page spread of that difference is wide, so a
fixed per-window threshold either passes free-riders on a lucky draw (the
ratio test passed wrong_pages / lazy / copied in 18/20/17 of 50 tries) or
fails honest work in the windows where generic learning swamps the
page-specific gain (a z = 3 t-test failed 6% of honest tries; the weak
honest windows are the first ones, while the model is still far from
converged). Honest work, though, shows its page-specific gain window after
window, and a free-rider's ``t`` hovers round zero window after window.

The rule (a one-sided CUSUM on the per-window t statistic,
``ContributionScore.pow_t``: the Welch t of the per-page improvements,
assigned minus control pages; scale-free, so the constants do not depend on
the model or the loss level)::

    e_w = clip(t_w, -clip, clip)          (NaN t, e.g. an empty update: 0)
    E_w = min(cap, max(0, E_{w-1} + e_w - drift))
    paid in window w  <=>  E_w >= bar

Defaults (ScoreConfig): drift 1.5, bar 3, cap 6, clip 8. Each window is
charged ``drift``; only a miner whose update fits its own pages by more than
``drift`` standard errors gains. From an empty account a miner is paid after
one window with ``t >= drift + bar`` (4.5) or two with ``t >= 3``. A
free-rider (t about 0) stays at 0; honest work (median t 8) reaches the cap
in one window and rides out a weak one.
Bounds (tested with hypothesis): a miner whose t never exceeds ``drift`` is
never paid; after banking the cap, at most ``floor((cap - bar) / drift)``
windows (2 with the defaults) with t <= 0 are paid before the account drops
below the bar, and it must then show strong windows again. So a miner that
alternates work and free-riding still has to do about half the work.
Measured (bench/validator.py --sections pow, 25 windows, replayed by
bench/validator_pow_replay.py, docs/BENCHMARKS.md): with NETWORK_SCORE's
8 assigned / 16 held-out / 8 control pages, free-riders were paid in 0 of 50
tries each (wrong_pages, lazy noise, copied; their t reached at most 3.6),
honest miners in 99 of 100 (the one miss is a first window), honest updates
scored one version stale in 89 of 96. The defaults were picked from a grid of
8 settings on that run; on a fresh seed they gave 0/0/0 of 50 again and 97 of
100 honest (all 3 misses in a miner's first two windows: the cold start is
where the 1% honest target is missed; 0 misses after). In the
fidelity population (honest miners with H = 2..10, lr 5e-4..2e-3, half with
an error-feedback residue from other pages) weak honest updates show t of
1-4 per window, and the rule (at drift 3) rejected 17 of 48 honest tries over
3 windows: a weak-work miner waits windows to be paid, or is not.

The account is keyed by hotkey (uids are recycled), lives in
``ValidatorState.pow_evidence`` and is written atomically with the rest of
the state. Windows in which a miner was not evaluated leave it unchanged.
This module refuses nothing and does no I/O: it is arithmetic on the
evaluated submissions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from subnet.validator.outcome import Outcome
from subnet.validator.scoring import NO_PROOF_OF_WORK, ScoreConfig
from subnet.validator.submission import Submission

_EVALUATED = (Outcome.SCORED, Outcome.NO_IMPROVEMENT, Outcome.NO_PROOF_OF_WORK, Outcome.EMPTY)


def update_evidence(prior: float, t: float, cfg: ScoreConfig) -> float:
    """The account after one window whose proof-of-work statistic is ``t`` (see the module docstring)."""
    prior = prior if math.isfinite(prior) else 0.0
    e = min(cfg.pow_clip, max(-cfg.pow_clip, t)) if math.isfinite(t) else 0.0
    return min(cfg.pow_cap, max(0.0, prior + e - cfg.pow_drift))


def pays(evidence: float, cfg: ScoreConfig) -> bool:
    """Whether a miner with this account clears the proof-of-work bar."""
    return evidence >= cfg.pow_bar


def apply_evidence(subs: Sequence[Submission], evidence: Mapping[str, float],
                   cfg: ScoreConfig) -> tuple[list[Submission], dict[str, float]]:
    """Update every evaluated submission's account; one below the bar scores ``min(0, score)``.

    Only meaningful with ``cfg.pow_sequential`` (the per-window test then
    does not gate the score); without it the submissions and the accounts
    pass through unchanged. A submission without a ``pow_t`` in its detail
    (an empty or non-finite update) is charged as ``t = 0``.
    """
    if not cfg.pow_sequential:
        return list(subs), dict(evidence)
    new = dict(evidence)
    out: list[Submission] = []
    for s in subs:
        if s.outcome not in _EVALUATED or s.score is None:
            out.append(s)
            continue
        t = float(s.detail.get("pow_t", math.nan))
        e = update_evidence(new.get(s.hotkey, 0.0), t, cfg)
        new[s.hotkey] = e
        if pays(e, cfg) or s.outcome is Outcome.EMPTY:
            out.append(s.with_detail(pow_evidence=e))
            continue
        out.append(s.judged(Outcome.NO_PROOF_OF_WORK,
                            f"{NO_PROOF_OF_WORK} (running evidence {e:.2f} < {cfg.pow_bar:g}, this window t={t:.2f})",
                            score=min(0.0, float(s.score)), pow_evidence=e))
    return out, new


def prune_evidence(evidence: Mapping[str, float], active: Sequence[str]) -> dict[str, float]:
    """Accounts of hotkeys still registered (a deregistered hotkey's account goes with it)."""
    keep = set(active)
    return {h: e for h, e in evidence.items() if h in keep}
