"""Autocast regions for the inner loop and for scoring, and the one place that turns them off.

Why: mixed precision is a per-node speed choice (bf16 on CUDA), so it must be
confined to forward passes of device copies. `autocast` opens such a region;
`no_autocast` closes every one around consensus work (applying a manifest,
hashing the model), so a caller that applies inside a training or scoring
region still gets fp32 bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast on `device`'s type with `dtype`; a no-op context for dtype None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


@contextlib.contextmanager
def no_autocast() -> Iterator[None]:
    """Disable autocast on CPU (and CUDA where present) for the block."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast(device_type="cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast(device_type="cuda", enabled=False))
        yield


def dtype_name(dtype: torch.dtype | None) -> str:
    return "fp32" if dtype is None else {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))
