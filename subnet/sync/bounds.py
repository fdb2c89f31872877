"""How far a version may be from the window count: one manifest per window at most.

Version 0 is the seeded init and a manifest for window w moves the model by
exactly one version, so no honest state after window w is past version w + 1.
A claim beyond that (a checkpoint saying version 10**12) is a lie whoever
signed it, and is refused before it can be adopted or persisted. Nothing from
a window later than the follower's own current window is accepted either.
"""

from __future__ import annotations

from subnet.protocol.manifest import Manifest
from subnet.sync.errors import FutureWindow, VersionOutOfBounds


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
