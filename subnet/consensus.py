"""Consensus settings: the flags every validator (and every node following the lead) must set alike.

Why: a validator with another codec top-k, score recipe, competition curve or
aggregation rule than the lead computes other scores, weights or model bytes,
and nothing on chain says so. This module is the one registry of those flags
(by dotted flag name, so it imports no package and the flag engine can group
them in ``--help``); their defaults stay where each package defines them (the
dataclass defaults, `subnet.node.config.NETWORK_SCORE` for ``score``).

The lead publishes `consensus_values(cfg)` in every manifest (its
``consensus`` field); a follower compares them with its own
(`consensus_diff`) over the groups it holds (a miner has no ``score``) and
refuses a manifest built under other values, naming the fields
(`subnet.sync.bounds.ConsensusMismatch`). `fingerprint` is their canonical
sha256, for logs and status.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ConsensusValue = str | int | float | bool | None | list[str | int | float | bool | None]
MAX_KEYS = 512
"""Most consensus entries a manifest may carry (peer input is bounded)."""
MAX_TEXT = 512
"""Longest key or string value a manifest's consensus entry may carry."""
MAX_LIST = 64
"""Longest list value (a tuple field) a manifest's consensus entry may carry."""
HELP_TITLE = "consensus settings: every validator must use the same values"
HELP_DESCRIPTION = ("The lead validator publishes these in each manifest; a validator or miner whose own values "
                    "differ refuses the manifest and names the fields. Change them only with the whole subnet.")


@dataclass(frozen=True, kw_only=True)
class ConsensusGroup:
    """One sub-config of the neuron configs whose fields are consensus settings."""

    path: str
    """Dotted path of the sub-config in the neuron config (``codec``, ``validator``)."""
    only: tuple[str, ...] | None = None
    """Only these fields are consensus (the rest of the group is per-node tuning); None: every field."""
    exclude: tuple[str, ...] = ()
    """Fields of the group that are per-node (e.g. how often the lead checkpoints)."""

    def holds(self, dotted: str) -> bool:
        head, _, name = dotted.rpartition(".")
        if head != self.path:
            return False
        return (self.only is None or name in self.only) and name not in self.exclude


CONSENSUS_GROUPS: tuple[ConsensusGroup, ...] = (
    ConsensusGroup(path="model"),
    ConsensusGroup(path="protocol"),
    ConsensusGroup(path="codec"),
    ConsensusGroup(path="sync", exclude=("checkpoint_every",)),
    ConsensusGroup(path="score"),
    ConsensusGroup(path="competition"),
    ConsensusGroup(path="validator",
                   only=("copy_threshold", "cohort_method", "max_staleness", "norm_outlier", "min_score",
                         "aggregate_z")),
)


def is_consensus(dotted: str) -> bool:
    """True for a flag (dotted name, no dashes) every validator must set alike."""
    return any(group.holds(dotted) for group in CONSENSUS_GROUPS)


def _group_of(dotted: str) -> str | None:
    return next((g.path for g in CONSENSUS_GROUPS if g.holds(dotted)), None)


def normalize(value: Any) -> ConsensusValue:
    """A config value as the JSON the manifest carries (tuples as lists, paths as text)."""
    if isinstance(value, tuple | list):
        return [normalize(v) for v in value]  # type: ignore[misc]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"consensus value {value!r} is not a JSON scalar")


def _leaves(obj: Any, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        dotted = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(_leaves(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def consensus_values(cfg: Any) -> dict[str, ConsensusValue]:
    """{dotted flag: value} of the consensus settings a (neuron) config holds, sorted by name."""
    return {k: normalize(v) for k, v in sorted(_leaves(cfg, "").items()) if is_consensus(k)}


def consensus_groups(values: Mapping[str, Any]) -> set[str]:
    """The consensus groups present in `values`."""
    return {g for g in map(_group_of, values) if g is not None}


def fingerprint(values: Mapping[str, Any]) -> str:
    """Canonical sha256 (sorted keys, no whitespace) of consensus values."""
    text = json.dumps({k: values[k] for k in sorted(values)}, sort_keys=True, separators=(",", ":"),
                      allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class FieldDiff:
    """One consensus setting on which the lead and this node differ (`None` side: not set there)."""

    name: str
    lead: ConsensusValue
    ours: ConsensusValue
    lead_has: bool = True
    ours_has: bool = True

    def describe(self) -> str:
        lead = repr(self.lead) if self.lead_has else "<absent>"
        ours = repr(self.ours) if self.ours_has else "<absent>"
        return f"{self.name}: lead {lead}, this node {ours}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):  # 1 and 1.0 agree; a bool never equals a number
        numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
        return numbers and math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def consensus_diff(lead: Mapping[str, Any], ours: Mapping[str, Any]) -> tuple[FieldDiff, ...]:
    """Fields that differ, over the groups this node holds (a setting only one side has differs too)."""
    groups = consensus_groups(ours)
    names = sorted({k for k in (*lead, *ours) if _group_of(k) in groups})
    diffs = []
    for name in names:
        if name in lead and name in ours and _same(lead[name], ours[name]):
            continue
        diffs.append(FieldDiff(name=name, lead=lead.get(name), ours=ours.get(name),
                               lead_has=name in lead, ours_has=name in ours))
    return tuple(diffs)


def check_wire_values(values: Any) -> dict[str, ConsensusValue]:
    """Validate consensus values read from a manifest (peer input); ValueError names what is wrong."""
    if not isinstance(values, Mapping):
        raise ValueError("consensus must be an object of flag names to values")
    if len(values) > MAX_KEYS:
        raise ValueError(f"consensus has {len(values)} entries, at most {MAX_KEYS}")

    def scalar(key: str, v: Any) -> Any:
        if v is None or isinstance(v, bool | int):
            return v
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError(f"consensus {key!r} is not finite")
            return v
        if isinstance(v, str):
            if len(v) > MAX_TEXT:
                raise ValueError(f"consensus {key!r} value is longer than {MAX_TEXT} characters")
            return v
        raise ValueError(f"consensus {key!r} must be a scalar or a list of scalars, got {type(v).__name__}")

    out: dict[str, ConsensusValue] = {}
    for key, v in values.items():
        if not isinstance(key, str) or not key or len(key) > MAX_TEXT:
            raise ValueError(f"consensus key {key!r} must be a non-empty string of at most {MAX_TEXT} characters")
        if isinstance(v, list | tuple):
            if len(v) > MAX_LIST:
                raise ValueError(f"consensus {key!r} list is longer than {MAX_LIST}")
            out[key] = [scalar(key, x) for x in v]
        else:
            out[key] = scalar(key, v)
    return dict(sorted(out.items()))
