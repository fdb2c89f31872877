"""How far a version may be from the window count: one manifest per window at most.

Version 0 is the seeded init and a manifest for window w moves the model by
exactly one version, so no honest state after window w is past version w + 1.
A claim beyond that (a checkpoint saying version 10**12) is a lie whoever
signed it, and is refused before it can be adopted or persisted. Nothing from
a window later than the follower's own current window is accepted either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from subnet.protocol.manifest import Manifest
from subnet.sync.errors import FutureWindow, PolicyViolation, VersionOutOfBounds


def max_version(window: int) -> int:
    """The highest version any state may hold after applying window `window` (-1: none yet -> 0)."""
    return window + 1


def check_manifest_bounds(manifest: Manifest, *, current_window: int | None = None) -> None:
    """new_version == base_version + 1 <= window + 1, and window <= current_window when given."""
    what = f"manifest for window {manifest.window}"
    if manifest.new_version != manifest.base_version + 1:
        raise VersionOutOfBounds(f"{what} moves version {manifest.base_version} -> {manifest.new_version}, "
                                 "not by exactly one")
    if manifest.new_version > max_version(manifest.window):
        raise VersionOutOfBounds(f"{what} claims version {manifest.new_version}, "
                                 f"at most {max_version(manifest.window)} exist by then")
    if current_window is not None and manifest.window > current_window:
        raise FutureWindow(f"{what} is from the future (current window {current_window})")


def check_state_bounds(version: int, last_manifest_window: int, *, current_window: int, what: str) -> None:
    """A (version, last window) pair a checkpoint or a local copy claims must be reachable by now."""
    if last_manifest_window < -1 or version < 0:
        raise VersionOutOfBounds(f"{what}: version {version} / window {last_manifest_window} are negative")
    if version > max_version(last_manifest_window):
        raise VersionOutOfBounds(f"{what} claims version {version} after window {last_manifest_window}, "
                                 f"at most {max_version(last_manifest_window)} exist by then")
    if last_manifest_window > current_window:
        raise FutureWindow(f"{what}: last manifest window {last_manifest_window} is later than the "
                           f"current window {current_window}")


@dataclass(frozen=True, kw_only=True)
class ManifestPolicy:
    """What an honest lead's manifest looks like under this node's consensus settings (SyncConfig).

    A validly signed manifest is still the lead's word: a lead (or whoever holds
    its key) must not be able to blow the model up with an outer learning rate
    of 1e30, aggregation weights of 1e38, or tens of thousands of entries that
    exhaust a follower's memory. Every honest manifest has the subnet's outer
    learning rate, at most `top_g` entries per fragment, weights in [0, 1]
    summing to at most 1 per fragment (median-norm clipping then mean:
    sync.aggregate), and the model hash it produces.
    """

    outer_lr: float
    top_g: int


def check_manifest_policy(manifest: Manifest, policy: ManifestPolicy) -> None:
    what = f"manifest for window {manifest.window}"
    if not math.isclose(manifest.outer_lr, policy.outer_lr, rel_tol=1e-9, abs_tol=0.0):
        raise PolicyViolation(f"{what} uses outer_lr {manifest.outer_lr!r}; this subnet's is {policy.outer_lr!r}")
    if manifest.model_hash is None:
        raise PolicyViolation(f"{what} does not pin the model hash it produces")
    for fragment, entries in manifest.by_fragment().items():
        if len(entries) > policy.top_g:
            raise PolicyViolation(f"{what} lists {len(entries)} entries for fragment {fragment}, "
                                  f"more than top_g {policy.top_g}")
        weights = [e.weight for e in entries]
        if any(not 0.0 <= w <= 1.0 for w in weights) or sum(weights) > 1.0 + 1e-6:
            raise PolicyViolation(f"{what}: fragment {fragment} weights {weights[:4]} are outside [0, 1] or "
                                  "sum past 1")
