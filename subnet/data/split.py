"""The train / held-out split: one rule for every backend, and why the held-out split is big enough.

Pages are numbered 0..n_pages-1 in stream order; the last
`ceil(heldout_fraction * n_pages)` (at least one) are held out, the rest are
the training split. The local array (pages.TokenPages) and the shard store
(shards.ShardPages, sizes fixed in the manifest at build time) both use
`split_sizes`, so the same data gives the same pages on either path.

Held-out bound. Validators score a window on `heldout_per_window` pages drawn
uniformly from the `n_heldout` held-out pages by the NEXT window's seed,
unknown while miners train. A miner that spends its window on held-out pages
instead of its assignment visits at most V = inner_steps x batch_size pages,
so the expected share of the scored pages it has seen is at most
V / n_heldout. On unseen pages, a held-out page is worth no more than any
training page of the same source, and the diverted steps cost it the
proof-of-work margin (assigned pages must improve more than control pages).
Each window's update starts from the global model, which every miner's
baseline already contains, so what earlier windows leaked confers no
advantage of its own. The subnet therefore requires

    n_heldout >= 100 x inner_steps x batch_size     (exposure V / n_heldout <= 1%)

e.g. >= 8,000 pages (about 1.0M tokens at page_len 129) for H=10, B=8, and
192,000 pages (24.8M tokens) for a GPU miner at H=30, B=64; a 10^9-token
dataset at 5% holds 387,000. The embedded demo corpus (about 580 held-out
pages) does not meet it: it is a demo, and `tessera data build` says so.
"""

from __future__ import annotations

import math

from subnet.errors import DataError

MAX_HELDOUT_EXPOSURE = 0.01


def split_sizes(n_pages: int, heldout_fraction: float) -> tuple[int, int]:
    """(n_train, n_heldout) for `n_pages` pages: the last ceil(fraction) pages (>= 1) are held out."""
    n_heldout = max(1, int(math.ceil(n_pages * heldout_fraction)))
    n_train = n_pages - n_heldout
    if n_train < 1:
        raise DataError(f"only {n_pages} pages: too little data for a train and a held-out split")
    return n_train, n_heldout


def heldout_exposure(n_heldout: int, inner_steps: int, batch_size: int) -> float:
    """Upper bound on the share of a window's scored held-out pages a miner can have trained on."""
    if n_heldout < 1:
        raise DataError("n_heldout must be >= 1")
    return min(1.0, inner_steps * batch_size / n_heldout)


def min_heldout_pages(inner_steps: int, batch_size: int, max_exposure: float = MAX_HELDOUT_EXPOSURE) -> int:
    """The smallest held-out split that keeps `heldout_exposure` at or below `max_exposure`."""
    return int(math.ceil(inner_steps * batch_size / max_exposure))
