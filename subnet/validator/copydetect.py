"""Near-duplicate (copied) submissions, detected from their sparse supports and values.

Why this works: a SparseLoCo payload keeps the top-k entries of each chunk of
the miner's error-feedback buffer. Honest miners trained on different pages
share some large coordinates (the common descent direction) but far from
all, while a copier that re-uploads another miner's payload, re-signs it with
its own hotkey, rescales it, or adds small noise before re-encoding keeps
almost the same index set *and* the same values on it.

Similarity of submissions a, b (templar checks index overlap >= 0.4):

* ``index``: |I_a ∩ I_b| / min(|I_a|, |I_b|) over global (tensor, position)
  indices; ``min`` so that dropping entries (sending a subset) does not hide
  a copy. With fixed k per chunk this is templar's mean per-chunk overlap.
* ``value``: cosine of the two value vectors on the shared indices (sign and
  relative magnitude agreement; invariant to rescaling).
* ``similarity = index * max(0, value)``: both must be high.

Partial copies (red-team finding 3): own work plus a fraction of a peer's
update keeps similarity under the threshold (0.5 x a peer: 0.45) yet carries
the peer's work. So each candidate pair also gets the least-squares fit of
the earlier update e in the later one l, computed from the sparse views (the
inner product lives on the shared indices): ``beta = <l, e> / <e, e>``, and
the *share* of the later's norm that fit explains, ``share = beta * |e| / |l|``
(the cosine of the two sparse vectors). A pair with index overlap >=
``PARTIAL_MIN_INDEX`` and ``share >= PARTIAL_SHARE`` matches like a similar
pair (same attribution rules: the later is charged, overlapping intervals
tie). Why the share and not beta itself: beta grows as the earlier shrinks,
so an early upload of one's own work x 0.1 would give every honest later
upload beta ~0.55 and have it charged (griefing); the share is invariant to
either side's scale. Measured (tiny preset, the real inner loop and codec,
validator_tests/test_validator_partial_copy.py and bench/league.py): honest
pairs of one fragment reach share <= 0.10 (66 pairs; a 16-step update on
256 pages, a would-be griefer's best guess of the common direction: 0.07),
so the 0.25 threshold leaves a 2.5x margin; own work + 0.15 x a peer's
update reaches 0.28, + 0.5 x 0.54. Known limit: inflating one's own part
dilutes the share (3 x own + 0.5 x a peer's: 0.30, caught; + 0.3 x: 0.23,
not), and aggregation's clipping to the median norm then shrinks the stolen
part with it.

``find_copies`` charges the *later* submission of a similar pair (by
``first_seen``, then ``commit_block``, then uid), pointing at the earliest
submission it matches. Only submissions of the same fragment are compared.

``judge_copies`` is what the validator runs: each upload is known only to lie
in an interval, after its store last said "absent" (``seen_after``) and before
the validator had its bytes in hand (``first_seen``, the validator's clock,
never the store's). A pair is ordered only when the intervals are disjoint
(a's bytes were in hand before b's store said it had none): then the later is
charged. Overlapping intervals are a *tie*, returned as such: the validator
evaluates both and keeps the one whose update fits its own assigned pages
(validator/loop.py `_resolve_ties`; the other scores zero, unslashed). Why
timing cannot frame an honest miner: a copier gets the victim's bytes only
after the victim uploaded, which is after the victim's store last said
"absent", so the copier's bytes can never be in hand before that.

Scale (sub-quadratic in exact comparisons): comparing every pair exactly costs
N^2/2 intersections of K-entry supports (about 30 s at 64 small-preset
uploads). Instead each support gets a *containment sketch*: the
``SKETCH_SIZE`` entries with the smallest keyed hash (bottom-s sampling, key
drawn per call, so a miner cannot choose which of its entries are sampled).
A pair can reach ``similarity >= threshold`` only if the index overlap of the
smaller support in the larger is ``>= threshold``; then at least a fraction
``threshold - eps`` of the smaller one's sample lies in the larger one except
with probability ``exp(-2 eps^2 s)`` (Hoeffding, which holds for sampling
without replacement). With s = 512 and the bound set to 1e-12, eps = 0.164.
Counting sample hits is one ``searchsorted`` per support against all samples
(linear in N, vectorised); only pairs over the bound get the exact check, in
the same order as before, so verdicts are those of the all-pairs scan unless
that 1e-12 event happens. MinHash of Jaccard similarity is not used because
the overlap is over the *smaller* set: a copier sending a subset has a low
Jaccard index but full containment. Supports of at most s entries are sampled
whole, which makes the filter exact for them.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from subnet.codec.sparseloco import EncodedUpdate, SparseTensor, decode_sparse
from subnet.errors import ConfigError

Update = EncodedUpdate | Sequence[SparseTensor] | Mapping[str, torch.Tensor]
"""What a Submission carries; a prepared `Support` is also accepted (decode once, reuse it here)."""

DEFAULT_THRESHOLD = 0.5
SKETCH_SIZE = 512
"""Entries sampled per support for candidate search (module docstring: the miss bound)."""
MISS_PROBABILITY = 1e-12
"""Allowed chance that a pair over the threshold is not even checked (per pair)."""
PARTIAL_SHARE = 0.25
"""Share of a later upload's norm explained by its least-squares fit on an earlier one that charges it."""
PARTIAL_MIN_INDEX = 0.2
"""Index overlap below which the partial-copy fit is not taken (every measured partial copy that reaches
``PARTIAL_SHARE`` shares >= 0.25 of the smaller support; honest pairs ~0.09)."""
PARTIAL_SKETCH_SIZE = 4096
"""Sketch size of the candidate search when the partial-copy rule is on (eps = 0.058 at the miss bound, so
honest pairs at ~0.09 overlap are filtered out of the exact checks at ``PARTIAL_MIN_INDEX``)."""


@dataclass(frozen=True, kw_only=True)
class Support:
    """A submission's sorted global indices and the values at them (fp32)."""

    index: np.ndarray  # int64, sorted ascending, unique
    values: np.ndarray  # float32, aligned with index


@dataclass(frozen=True, kw_only=True)
class Overlap:
    index: float
    value: float
    similarity: float
    beta: float = 0.0
    """Least-squares coefficient of the first update in the second, ``<b, a> / <a, a>`` (sparse views)."""
    share: float = 0.0
    """Share of the second's norm that fit explains, ``beta * |a| / |b|`` (cosine of the sparse vectors)."""

    def matches(self, threshold: float, partial_share: float | None) -> bool:
        """A near-duplicate (similarity) or a partial copy (share on enough shared indices)."""
        if self.similarity >= threshold:
            return True
        return partial_share is not None and self.index >= PARTIAL_MIN_INDEX and self.share >= partial_share


@dataclass(frozen=True, kw_only=True)
class Submission:
    """What copy detection needs to know about one upload."""

    uid: int
    hotkey: str
    fragment: int
    first_seen: float
    """When the validator first saw the artifact (store timestamp, seconds)."""
    commit_block: int
    """Block of the miner's commitment (tie-breaker)."""
    update: Update
    seen_after: float | None = None
    """When the miner's store last said it had nothing (the interval's start); None: exactly `first_seen`."""

    @property
    def earliest(self) -> float:
        return self.first_seen if self.seen_after is None else self.seen_after

    def order_key(self) -> tuple[float, int, int]:
        return (self.first_seen, self.commit_block, self.uid)


def _offsets(names_shapes: Sequence[tuple[str, Sequence[int]]]) -> dict[str, int]:
    """Global index offset per tensor, in sorted-name order (independent of payload order)."""
    offsets, base = {}, 0
    for name, shape in sorted(names_shapes):
        offsets[name] = base
        base += math.prod(int(d) for d in shape)
    return offsets


def support_of(update: Update) -> Support:
    """Canonical (index, value) form of an encoded, sparse or dense update (dense: its non-zeros)."""
    if isinstance(update, Support):
        return update
    if isinstance(update, EncodedUpdate):
        update = decode_sparse(update)
    if isinstance(update, Mapping):
        offsets = _offsets([(n, tuple(t.shape)) for n, t in update.items()])
        parts = []
        for name, t in update.items():
            flat = t.detach().reshape(-1).to(torch.float32)
            nz = torch.nonzero(flat, as_tuple=True)[0]
            parts.append((nz + offsets[name], flat[nz]))
    else:
        offsets = _offsets([(s.name, s.shape) for s in update])
        parts = [(s.index + offsets[s.name], s.values.to(torch.float32)) for s in update]
    if not parts:
        return Support(index=np.zeros(0, np.int64), values=np.zeros(0, np.float32))
    index = torch.cat([p[0] for p in parts]).numpy().astype(np.int64)
    values = torch.cat([p[1] for p in parts]).numpy().astype(np.float32)
    order = np.argsort(index, kind="stable")
    return Support(index=index[order], values=values[order])


def overlap_stats(a: Support, b: Support) -> Overlap:
    """Index overlap, value cosine on the shared indices, and their combined similarity."""
    if len(a.index) == 0 or len(b.index) == 0:
        return Overlap(index=0.0, value=0.0, similarity=0.0)
    _, ia, ib = np.intersect1d(a.index, b.index, assume_unique=True, return_indices=True)
    idx = len(ia) / min(len(a.index), len(b.index))
    if len(ia) == 0:
        return Overlap(index=0.0, value=0.0, similarity=0.0)
    va = a.values[ia].astype(np.float64)
    vb = b.values[ib].astype(np.float64)
    dot = float(va @ vb)
    denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
    cos = dot / denom if denom > 0 and math.isfinite(denom) else 0.0
    na = float(np.linalg.norm(a.values.astype(np.float64)))
    nb = float(np.linalg.norm(b.values.astype(np.float64)))
    ok = na > 0 and nb > 0 and math.isfinite(na * nb) and math.isfinite(dot)
    beta = dot / (na * na) if ok else 0.0
    share = dot / (na * nb) if ok else 0.0
    return Overlap(index=idx, value=cos, similarity=idx * max(0.0, cos), beta=beta, share=share)


def overlap(a: Update | Support, b: Update | Support) -> float:
    """Combined similarity in [0, 1] of two updates of the same fragment (1 = identical up to scale)."""
    sa = a if isinstance(a, Support) else support_of(a)
    sb = b if isinstance(b, Support) else support_of(b)
    return overlap_stats(sa, sb).similarity


def support_overlap(dense_a: Mapping[str, torch.Tensor], dense_b: Mapping[str, torch.Tensor]) -> float:
    """``overlap`` on decoded dense tensors, using their non-zero supports."""
    return overlap(support_of(dense_a), support_of(dense_b))


def _prepare(subs: Sequence[Submission], threshold: float,
             partial_share: float | None = None) -> tuple[list[Submission], dict[int, Support]]:
    """Checked inputs: submissions in order and their supports (a uid twice is a caller bug: ConfigError)."""
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"copy threshold must be in (0, 1], got {threshold}")
    if partial_share is not None and not 0.0 < partial_share <= 1.0:
        raise ConfigError(f"partial-copy share must be in (0, 1] or None, got {partial_share}")
    uids = [s.uid for s in subs]
    if len(set(uids)) != len(uids):
        raise ConfigError("copy detection: duplicate uid among submissions")
    ordered = sorted(subs, key=Submission.order_key)
    return ordered, {s.uid: support_of(s.update) for s in ordered}


def _keyed_hash(index: np.ndarray, key: int) -> np.ndarray:
    """splitmix64 of (index xor key): a keyed, well-mixed 64-bit hash per global index."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) ^ np.uint64(key)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def sketch(support: Support, key: int, size: int = SKETCH_SIZE) -> np.ndarray:
    """The (at most ``size``) indices of ``support`` with the smallest keyed hash: a uniform sample for this key."""
    idx = support.index
    if len(idx) <= size:
        return idx
    h = _keyed_hash(idx, key)
    return np.sort(idx[np.argpartition(h, size - 1)[:size]])


def min_hits(sample_size: int, threshold: float, miss: float = MISS_PROBABILITY) -> int:
    """Fewest sample hits a pair at index overlap ``threshold`` shows, except with probability ``miss``."""
    if sample_size <= 0:
        return 0
    eps = math.sqrt(math.log(1.0 / miss) / (2.0 * sample_size))
    return max(0, math.floor((threshold - eps) * sample_size))


def candidate_pairs(supports: Mapping[int, Support], groups: Mapping[int, Sequence[int]], threshold: float, *,
                    key: int, size: int = SKETCH_SIZE) -> set[frozenset[int]]:
    """Pairs (within each group) whose overlap may reach ``threshold``; every other pair is below it (w.h.p.).

    For each support A its sketch is looked up in every other support B of the
    group; the pair is kept when the smaller one's sample hits the larger at
    least ``min_hits`` times (both directions when the sizes are equal).
    Supports sampled whole use the exact bound ``ceil(threshold * |A|)``.
    """
    out: set[frozenset[int]] = set()
    for members in groups.values():
        uids = [u for u in members if len(supports[u].index)]
        if len(uids) < 2:
            continue
        sketches = [sketch(supports[u], key, size) for u in uids]
        owner = np.concatenate([np.full(len(sk), i, np.int64) for i, sk in enumerate(sketches)])
        elems = np.concatenate(sketches)
        order = np.argsort(elems, kind="stable")
        elems, owner = elems[order], owner[order]
        need = np.array([math.ceil(threshold * len(sk) - 1e-9) if len(sk) == len(supports[u].index)
                         else min_hits(len(sk), threshold) for u, sk in zip(uids, sketches)], np.int64)
        sizes = np.array([len(supports[u].index) for u in uids], np.int64)
        for j, u in enumerate(uids):  # B = u: which sampled entries of every A does B hold?
            b = supports[u].index
            lo = np.searchsorted(elems, b, side="left")
            hi = np.searchsorted(elems, b, side="right")
            n = hi - lo
            if not n.any():
                continue
            starts = np.repeat(lo, n)
            offs = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
            hits = np.bincount(owner[starts + offs], minlength=len(uids))
            for i in np.nonzero((hits >= need) & (sizes <= sizes[j]))[0]:
                if int(i) != j:
                    out.add(frozenset((uids[int(i)], u)))
    return out


def _earlier_candidates(ordered: Sequence[Submission], supports: Mapping[int, Support], threshold: float,
                        key: int | None, partial_share: float | None = None) -> list[list[Submission]]:
    """Per position j in ``ordered``: the earlier submissions that may match it (``Overlap.matches``), in order."""
    groups: dict[int, list[int]] = {}
    for s in ordered:
        groups.setdefault(s.fragment, []).append(s.uid)
    # a match needs index overlap >= threshold (similarity) or >= PARTIAL_MIN_INDEX (partial copy)
    bound, size = ((min(threshold, PARTIAL_MIN_INDEX), PARTIAL_SKETCH_SIZE) if partial_share is not None
                   else (threshold, SKETCH_SIZE))
    pairs = candidate_pairs(supports, groups, bound, key=secrets.randbits(64) if key is None else key, size=size)
    pos = {s.uid: i for i, s in enumerate(ordered)}
    out: list[list[int]] = [[] for _ in ordered]
    for pair in pairs:
        a, b = sorted(pair, key=pos.__getitem__)
        out[pos[b]].append(pos[a])
    return [[ordered[i] for i in sorted(c)] for c in out]


def find_copies(subs: Sequence[Submission], threshold: float = DEFAULT_THRESHOLD, *,
                key: int | None = None, partial_share: float | None = PARTIAL_SHARE) -> dict[int, int]:
    """Map each charged uid to the uid it copied (the earliest matching earlier submission).

    Pairs are compared only within a fragment, exactly only when the sketches
    say they may match (module docstring). ``key`` fixes the sketch hash
    (tests, benches); None draws one. ``partial_share`` None turns the
    partial-copy rule off. A uid appearing twice raises ``ConfigError``.
    """
    ordered, supports = _prepare(subs, threshold, partial_share)
    cands = _earlier_candidates(ordered, supports, threshold, key, partial_share)
    charged: dict[int, int] = {}
    for j, later in enumerate(ordered):
        for earlier in cands[j]:
            if overlap_stats(supports[earlier.uid], supports[later.uid]).matches(threshold, partial_share):
                charged[later.uid] = earlier.uid
                break
    return charged


@dataclass(frozen=True, kw_only=True)
class CopyVerdict:
    """charged: later uid -> the uid it copied (slashable); tied: uid -> its twin when the order is unknown."""

    charged: dict[int, int]
    tied: dict[int, int]


def judge_copies(subs: Sequence[Submission], threshold: float = DEFAULT_THRESHOLD, *,
                 key: int | None = None, partial_share: float | None = PARTIAL_SHARE) -> CopyVerdict:
    """Copies charged by disjoint sighting intervals; overlapping near-duplicates tied (module docstring).

    ``partial_share``: the partial-copy rule's share threshold (None: off, similarity only).
    """
    ordered, supports = _prepare(subs, threshold, partial_share)
    cands = _earlier_candidates(ordered, supports, threshold, key, partial_share)
    return _judge(ordered, supports, threshold, cands, partial_share)


def judge_copies_all_pairs(subs: Sequence[Submission], threshold: float = DEFAULT_THRESHOLD, *,
                           partial_share: float | None = PARTIAL_SHARE) -> CopyVerdict:
    """The exhaustive all-pairs scan ``judge_copies`` replaces: the reference for tests and bench/validator_scale.py."""
    ordered, supports = _prepare(subs, threshold, partial_share)
    cands = [[e for e in ordered[:j] if e.fragment == s.fragment] for j, s in enumerate(ordered)]
    return _judge(ordered, supports, threshold, cands, partial_share)


def _judge(ordered: Sequence[Submission], supports: Mapping[int, Support], threshold: float,
           cands: Sequence[Sequence[Submission]], partial_share: float | None) -> CopyVerdict:
    """The attribution rules over each submission's candidate earlier ones (in order)."""
    charged: dict[int, int] = {}
    tied: dict[int, int] = {}
    for j, later in enumerate(ordered):
        for earlier in cands[j]:
            if earlier.uid in charged:
                continue
            if not overlap_stats(supports[earlier.uid], supports[later.uid]).matches(threshold, partial_share):
                continue
            if earlier.first_seen < later.earliest:  # disjoint: earlier's bytes in hand before later's store had any
                charged[later.uid] = earlier.uid
            else:
                tied.setdefault(later.uid, earlier.uid)
                tied.setdefault(earlier.uid, later.uid)
            break
    for uid in charged:
        tied.pop(uid, None)
    return CopyVerdict(charged=charged, tied=tied)
