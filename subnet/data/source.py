"""`PageSource`: the one interface miners and validators read token pages through.

Two backends: `TokenPages` (pages.py), a local token array the node builds
itself (the embedded default, demos and tests), and `ShardPages` (shards.py),
pages fetched on demand from a pre-tokenized shard store pinned by its
manifest hash. Both give the same pages for the same data (split.py), so the
protocol's page indices mean the same thing on either.

`batch` raises a `DataError` (shard errors: data/errors.py) for a page set it
cannot serve exactly; it never returns other data. `prefetch` only starts
work and never raises: a failure surfaces at the `batch` that needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from subnet.data.pages import Split


@runtime_checkable
class PageSource(Protocol):
    """Fixed-size token pages with a train / held-out split."""

    page_len: int
    n_train: int
    n_heldout: int
    fingerprint: str
    meta: dict[str, Any]

    @property
    def vocab_size(self) -> int | None: ...

    def batch(self, indices: Sequence[int], split: Split = "train") -> torch.Tensor:
        """Pages stacked as LongTensor[len(indices), page_len]."""
        ...

    def prefetch(self, indices: Sequence[int], split: Split = "train") -> None:
        """Start loading these pages in the background (a hint; returns at once)."""
        ...
