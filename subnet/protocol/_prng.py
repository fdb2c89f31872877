"""Deterministic, dependency-free randomness for the protocol.

Every draw is a blake2b hash of (domain label, seed, counter), so any node on
any platform and any Python/numpy version computes the same values. numpy's
`Generator` methods are not promised stable across releases (NEP 19), and a
validator and a miner running different numpy versions must still agree on
who trains which pages; hence hashing instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

_PERSON = b"tessera-v1"  # blake2b personalisation: 16 bytes max
_U64 = 1 << 64


def _encode(parts: Sequence[int | str]) -> bytes:
    """Unambiguous byte encoding of a label tuple (type tag + length prefix)."""
    out = bytearray()
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (int, str)):
            raise TypeError(f"prng label parts must be int or str, got {type(part).__name__}")
        if isinstance(part, int):
            raw = part.to_bytes((part.bit_length() + 8) // 8 or 1, "big", signed=True)
            out += b"i"
        else:
            raw = part.encode("utf-8")
            out += b"s"
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def hash64(*parts: int | str) -> int:
    """A uniform 64-bit integer determined by `parts`."""
    h = hashlib.blake2b(_encode(parts), digest_size=8, person=_PERSON)
    return int.from_bytes(h.digest(), "big")


def uniform_int(n: int, *parts: int | str) -> int:
    """Uniform integer in [0, n) without modulo bias (rejection on a counter)."""
    if n <= 0:
        raise ValueError(f"uniform_int needs n >= 1, got {n}")
    limit = _U64 - (_U64 % n)
    counter = 0
    while True:
        x = hash64(*parts, counter)
        if x < limit:
            return x % n
        counter += 1


def shuffled(items: Iterable[int], *parts: int | str) -> list[int]:
    """Seeded permutation: sort by a per-item hash (ties broken by the item)."""
    return sorted(items, key=lambda it: (hash64(*parts, "item", it), it))


def sample(n: int, k: int, *parts: int | str, exclude: Iterable[int] = ()) -> tuple[int, ...]:
    """k distinct integers from [0, n) minus `exclude`, in draw order.

    Sparse draws (k well below the pool) use a rejection stream, which costs
    O(k) hashes even for millions of pages; dense draws shuffle the pool.
    """
    excluded = {e for e in exclude if 0 <= e < n}
    pool = n - len(excluded)
    if k < 0 or k > pool:
        raise ValueError(f"cannot draw {k} distinct values from a pool of {pool}")
    if k == 0:
        return ()
    if 2 * (k + len(excluded)) > n:
        rest = (i for i in range(n) if i not in excluded)
        return tuple(shuffled(rest, *parts, "dense")[:k])
    chosen: list[int] = []
    seen = set(excluded)
    counter = 0
    while len(chosen) < k:
        v = uniform_int(n, *parts, "sparse", counter)
        counter += 1
        if v not in seen:
            seen.add(v)
            chosen.append(v)
    return tuple(chosen)
