"""How far a version may be from the window count: one manifest per window at most.

Version 0 is the seeded init and a manifest for window w moves the model by
exactly one version, so no honest state after window w is past version w + 1.
A claim beyond that (a checkpoint saying version 10**12) is a lie whoever
signed it, and is refused before it can be adopted or persisted. Nothing from
a window later than the follower's own current window is accepted either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from subnet.consensus import ConsensusValue, FieldDiff, consensus_diff, consensus_values, fingerprint
from subnet.protocol.manifest import Manifest
from subnet.sync.errors import FutureWindow, PolicyViolation, VersionOutOfBounds


class ConsensusMismatch(PolicyViolation):
    """The lead built the manifest under consensus settings other than this node's (`fields` names them)."""

    def __init__(self, message: str, *, fields: tuple[FieldDiff, ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.fields = fields


class NewerSpecManifest(PolicyViolation):
    """The manifest comes from a lead on a newer spec version and this node runs --version.check refuse."""


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
    sync.aggregate), and the model hash it produces. It is aggregated with this
    node's rule and, when the lead publishes them, under this node's consensus
    settings (subnet/consensus.py) and from a spec version no newer than ours
    (refused under --version.check refuse; otherwise reported to the guard).
    """

    outer_lr: float
    top_g: int
    rule: str | None = None
    """This node's aggregation rule; a manifest naming another one (``aggregation.rule``) is refused."""
    consensus: Mapping[str, ConsensusValue] | None = None
    """This node's consensus settings (`subnet.consensus.consensus_values`); None: not compared."""
    spec_version: int | None = None
    """This node's SPEC_VERSION; a manifest from a newer one is reported to `on_spec_version` (None: not checked)."""
    refuse_newer_spec: bool = False
    """--version.check refuse: a manifest from a newer spec version is refused, not only reported."""
    on_spec_version: Callable[[int], None] | None = field(default=None, compare=False)
    """Told the spec version of every manifest that carries one (the node's VersionGuard)."""

    @classmethod
    def from_config(cls, cfg: Any, *, on_spec_version: Callable[[int], None] | None = None) -> ManifestPolicy:
        """The policy of a neuron config (its ``sync`` group, consensus values and ``version.check``).

        A bare SyncConfig gives the outer-step checks only (no consensus or version comparison).
        """
        import subnet

        sync = getattr(cfg, "sync", cfg)
        version = getattr(cfg, "version", None)
        check = getattr(version, "check", "off")
        full = sync is not cfg
        return cls(outer_lr=float(sync.outer_lr), top_g=int(sync.top_g), rule=getattr(sync, "rule", None),
                   consensus=consensus_values(cfg) if full else None,
                   spec_version=subnet.SPEC_VERSION if full and check != "off" else None,
                   refuse_newer_spec=check == "refuse", on_spec_version=on_spec_version)


_warned_unknown: set[str] = set()


def check_manifest_consensus(manifest: Manifest, policy: ManifestPolicy) -> None:
    """Refuse a manifest built under other consensus settings or from a newer spec (per policy).

    A manifest without the fields (an older lead) is accepted with one warning
    per signer: its settings are unknown, not wrong.
    """
    what = f"manifest for window {manifest.window}"
    rule = manifest.aggregation.get("rule")
    if policy.rule is not None and rule is not None and rule != policy.rule:
        raise ConsensusMismatch(f"{what} was aggregated with rule {rule!r}; this node's --sync.rule is "
                                f"{policy.rule!r}", fields=(FieldDiff(name="sync.rule", lead=rule, ours=policy.rule),),
                                remediation="every node must use the subnet's --sync.rule")
    if policy.consensus is not None:
        if manifest.consensus is None:
            signer = manifest.signer or "?"
            if signer not in _warned_unknown:
                _warned_unknown.add(signer)
                logger.warning("{} (lead {}) carries no consensus settings (an older lead): they cannot be "
                               "compared with this node's", what, signer)
        else:
            diffs = consensus_diff(manifest.consensus, policy.consensus)
            if diffs:
                names = ", ".join(d.name for d in diffs)
                more = f" (+{len(diffs) - 8} more)" if len(diffs) > 8 else ""
                raise ConsensusMismatch(
                    f"{what} was built under other consensus settings than this node's: "
                    + "; ".join(d.describe() for d in diffs[:8]) + more,
                    fields=diffs,
                    remediation=f"set {names} to the subnet's values (lead fingerprint "
                                f"{fingerprint(manifest.consensus)[:16]}, ours {fingerprint(policy.consensus)[:16]})")
    if policy.spec_version is not None and manifest.spec_version is not None:
        if policy.on_spec_version is not None:
            policy.on_spec_version(manifest.spec_version)
        if manifest.spec_version > policy.spec_version and policy.refuse_newer_spec:
            raise NewerSpecManifest(f"{what} comes from spec version {manifest.spec_version}; this node runs "
                                    f"{policy.spec_version} (--version.check refuse)",
                                    remediation="update the checkout (git pull && pip install -e .)")


def check_manifest_policy(manifest: Manifest, policy: ManifestPolicy) -> None:
    """Refuse a validly signed manifest no honest lead under this node's settings would publish."""
    what = f"manifest for window {manifest.window}"
    check_manifest_consensus(manifest, policy)
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
