"""Who trains what: fragment and data pages per miner, held-out and control pages.

All functions are pure in (seed, uid, params) and use `_prng` (blake2b
counters), so a validator recomputes exactly what a miner was given.

Two ways to pick a miner's fragment:

* `assign_all(seed, uids, p)` — the protocol's choice. Ranks the participating
  uids in a seeded shuffle and gives rank `r` fragment `r mod F`, so every
  fragment gets a cohort of floor/ceil(n/F) miners each window, and the cohort
  changes every window. Both sides must use the same uid list: by convention
  all uids of the subnet's metagraph at the window's first block (in practice
  `range(metagraph.n)`).
* `assign(seed, uid, p)` — per-uid hashing, for when the uid list is unknown.
  Balanced only in expectation.

A miner's pages depend on (seed, uid) only, never on the uid list, so they
agree between the two functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from subnet.errors import ProtocolError
from subnet.protocol import _prng


@dataclass(frozen=True, kw_only=True)
class AssignmentParams:
    """Assignment hyperparameters (all counts).

    n_fragments: F, fragments the model is cut into (1 = full model).
    pages_per_miner: training pages each miner gets per window.
    n_train_pages: size of the training split (pages are indexed 0..n-1).
    n_heldout_pages: size of the held-out split (indexed 0..n-1 within it).
    heldout_per_window: held-out pages the validators evaluate on per window.
    """

    n_fragments: int
    pages_per_miner: int
    n_train_pages: int
    n_heldout_pages: int
    heldout_per_window: int

    def __post_init__(self) -> None:
        for name in ("n_fragments", "pages_per_miner", "n_train_pages", "n_heldout_pages", "heldout_per_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ProtocolError(f"AssignmentParams.{name} must be an int >= 1, got {value!r}")
        if self.pages_per_miner > self.n_train_pages:
            raise ProtocolError(
                f"pages_per_miner ({self.pages_per_miner}) exceeds n_train_pages ({self.n_train_pages})"
            )
        if self.heldout_per_window > self.n_heldout_pages:
            raise ProtocolError(
                f"heldout_per_window ({self.heldout_per_window}) exceeds n_heldout_pages ({self.n_heldout_pages})"
            )


@dataclass(frozen=True)
class Assignment:
    """One miner's work for one window: a fragment index and training page indices."""

    fragment: int
    pages: tuple[int, ...]


def _check_seed_uid(seed: int, uid: int | None = None) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ProtocolError(f"seed must be a non-negative int, got {seed!r}")
    if uid is not None and (isinstance(uid, bool) or not isinstance(uid, int) or uid < 0):
        raise ProtocolError(f"uid must be a non-negative int, got {uid!r}")


def train_pages(seed: int, uid: int, p: AssignmentParams) -> tuple[int, ...]:
    """The `pages_per_miner` training pages of `uid` in the window with `seed`."""
    _check_seed_uid(seed, uid)
    return _prng.sample(p.n_train_pages, p.pages_per_miner, "pages", seed, uid)


def assign(seed: int, uid: int, p: AssignmentParams) -> Assignment:
    """Fallback assignment from (seed, uid) alone; see the module docstring."""
    _check_seed_uid(seed, uid)
    fragment = _prng.uniform_int(p.n_fragments, "fragment", seed, uid)
    return Assignment(fragment, train_pages(seed, uid, p))


def cohort_order(seed: int, uids: Iterable[int]) -> list[int]:
    """The seeded shuffle of distinct uids whose rank mod F gives the fragment."""
    _check_seed_uid(seed)
    unique = sorted(set(uids))
    for uid in unique:
        _check_seed_uid(seed, uid)
    return _prng.shuffled(unique, "cohort", seed)


def assign_all(seed: int, uids: Iterable[int], p: AssignmentParams) -> dict[int, Assignment]:
    """Balanced assignment for every uid in `uids` (fragment cohorts differ by at most one)."""
    order = cohort_order(seed, uids)
    fragment = {uid: rank % p.n_fragments for rank, uid in enumerate(order)}
    return {uid: Assignment(fragment[uid], train_pages(seed, uid, p)) for uid in sorted(fragment)}


def heldout_pages(seed_next: int, p: AssignmentParams) -> tuple[int, ...]:
    """Held-out page indices (into the held-out split) for a window, from the NEXT window's seed."""
    _check_seed_uid(seed_next)
    return _prng.sample(p.n_heldout_pages, p.heldout_per_window, "heldout", seed_next)


def random_pages(
    seed: int, uid: int, p: AssignmentParams, k: int, exclude: Iterable[int] = ()
) -> tuple[int, ...]:
    """k training pages not assigned to `uid`: the control set for the proof-of-work check.

    `exclude` is added to the miner's own pages; the draw is deterministic so
    any validator can audit another's control set.
    """
    _check_seed_uid(seed, uid)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ProtocolError(f"k must be a non-negative int, got {k!r}")
    banned = set(train_pages(seed, uid, p)) | {int(e) for e in exclude}
    try:
        return _prng.sample(p.n_train_pages, k, "control", seed, uid, exclude=banned)
    except ValueError as exc:
        raise ProtocolError(f"random_pages: {exc}") from exc
