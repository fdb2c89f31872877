"""Who trains what: fragment and data pages per miner, held-out and control pages.

All functions are pure in (seed, uid, params) and use `_prng` (blake2b
counters), so a validator recomputes exactly what a miner was given.

Why the fragment rule looks like this. An assignment for window `w` must be a
function of facts fixed before `w` starts, computed identically by every
miner and validator whatever registers or deregisters later: an earlier rule
ranked the uid list read at the head, so one registration between windows
moved about half the miners to another fragment and their uploads were looked
up under the wrong key. Here the inputs are only the window seed (hash of the
window's finalised first block) and the miner's uid, which subtensor keeps
fixed for the lifetime of a registration:

* the uid space is cut into blocks of F consecutive uids
  (`[0, F)`, `[F, 2F)`, ...);
* within block `k`, the seed draws a permutation of the F fragments
  (`_prng.shuffled(range(F), "cohort", seed, k)`), and uid `kF + j` gets the
  permutation's `j`-th entry.

No other neuron's registration changes a miner's (seed, uid), so nobody moves.
Cohorts are balanced because subtensor's uids are always a prefix `0..n-1`
(`append_neuron` gives uid `n`; a registration on a full subnet replaces a
pruned uid in place, `subnets/uids.rs`): every full block holds each fragment
exactly once and the last, partial block holds each at most once, so over the
registered uids the fragment cohorts differ by at most one. Leaving out `k`
uids (validators, the owner, new registrants sitting out a window) widens the
gap to at most `k + 1`. For an arbitrary uid set the gap is at most the
number of blocks it touches partially. The permutations are independent per
block and per window, so a miner's cohort-mates change every window.

A recycled uid (a new hotkey in a pruned slot) inherits only the slot's draw
for the windows it takes part in; nodes decide participation from the
registration block (`subnet.node.registration`). An owner's
`trim_to_max_allowed_uids` renumbers uids: the window in progress is lost for
the renumbered miners (their header's uid no longer matches), later windows
are consistent again.

A miner's pages depend on (seed, uid) only, as before.
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


def fragment_of(seed: int, uid: int, n_fragments: int) -> int:
    """The fragment of `uid` in the window with `seed`: its slot in its block's seeded permutation."""
    _check_seed_uid(seed, uid)
    if isinstance(n_fragments, bool) or not isinstance(n_fragments, int) or n_fragments < 1:
        raise ProtocolError(f"n_fragments must be an int >= 1, got {n_fragments!r}")
    block, slot = divmod(uid, n_fragments)
    return _prng.shuffled(range(n_fragments), "cohort", seed, block)[slot]


def assign(seed: int, uid: int, p: AssignmentParams) -> Assignment:
    """The work of `uid` in the window with `seed` (see the module docstring)."""
    return Assignment(fragment_of(seed, uid, p.n_fragments), train_pages(seed, uid, p))


def assign_all(seed: int, uids: Iterable[int], p: AssignmentParams) -> dict[int, Assignment]:
    """`assign` for each distinct uid in `uids`; the list changes who is included, never anyone's result."""
    _check_seed_uid(seed)
    return {uid: assign(seed, uid, p) for uid in sorted(set(uids))}


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


def proof_pages(seed_next: int, uid: int, assigned: tuple[int, ...], k: int) -> tuple[int, ...]:
    """The `k` of `uid`'s assigned pages its proof of work is measured on, drawn by the NEXT window's seed.

    Why the next seed: a miner that knew which of its pages are checked could
    train (or pad a stolen update) on those alone; unknown until the window
    ends, any shortcut must cover the whole assignment, which is the work.
    Deterministic, so any validator can audit another's choice.
    """
    _check_seed_uid(seed_next, uid)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ProtocolError(f"k must be a non-negative int, got {k!r}")
    k = min(k, len(assigned))
    return tuple(assigned[i] for i in _prng.sample(len(assigned), k, "proof", seed_next, uid))
