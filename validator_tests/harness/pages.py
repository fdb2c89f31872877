"""A learnable synthetic token stream for training tests: next token = (token + step) mod `modulus`.

Why: the miner, rebase, DDP, device and sync tests each need pages a tiny model
can learn in a few steps without the corpus; they differ only in seed, step and
sizes, so one builder keeps every one of them byte-for-byte what it was.
"""

from __future__ import annotations

import numpy as np

from subnet.data.pages import TokenPages


def stride_pages(*, seed: int, docs: int, step: int, modulus: int, start_high: int | None = None,
                 doc_len: int = 40, page_len: int = 33, heldout_fraction: float = 0.1) -> TokenPages:
    """`docs` runs of `doc_len` tokens, each from a random start in [0, start_high) (default: `modulus`)."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, modulus if start_high is None else start_high, size=docs)
    tokens = np.concatenate([(s + step * np.arange(doc_len)) % modulus for s in starts]).astype(np.uint16)
    return TokenPages(tokens, page_len=page_len, heldout_fraction=heldout_fraction)
