"""Runtime plumbing: dispatch errors, the call registry and the event sink.

Pallet modules register handlers with `@call(module, function)`; a handler
gets the runtime, the signed origin (ss58) and the decoded params, checks
everything first (raising `DispatchError` with subtensor's own error name)
and only then writes, like the Rust pallets' `ensure!`-then-mutate style.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bittensor._generated.errors import ERRORS

_DOCS = {info.name: info.docs for info in ERRORS.values()}
_PALLET = {}
for _info in ERRORS.values():
    _PALLET.setdefault(_info.name, _info.pallet)


class DispatchError(Exception):
    """A call failed on chain; `name` is the subtensor error name."""

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        self.pallet = _PALLET.get(name, "SubtensorModule")
        self.docs = _DOCS.get(name, "")
        self.detail = detail
        super().__init__(f"{self.pallet}.{name}: {detail or self.docs}")

    def to_wire(self) -> dict[str, Any]:
        text = self.docs or self.detail or self.name
        if self.detail:
            text = f"{text} ({self.detail})"
        return {"name": self.name, "pallet": self.pallet, "docs": [text]}


Handler = Callable[..., None]
CALLS: dict[tuple[str, str], Handler] = {}


def call(module: str, function: str) -> Callable[[Handler], Handler]:
    """Register a dispatchable as `module.function`."""

    def decorate(fn: Handler) -> Handler:
        if (module, function) in CALLS:
            raise ValueError(f"duplicate devnet call {module}.{function}")
        CALLS[(module, function)] = fn
        return fn

    return decorate


def event(module: str, name: str, attributes: Any, extrinsic_idx: int | None) -> dict:
    """One System.Events record in the shape the SDK's executor reads."""
    return {
        "phase": {"ApplyExtrinsic": extrinsic_idx} if extrinsic_idx is not None else "Initialization",
        "extrinsic_idx": extrinsic_idx,
        "event": {"module_id": module, "event_id": name, "attributes": attributes},
        "topics": [],
    }


def as_int(value: Any, name: str) -> int:
    try:
        if isinstance(value, bool):
            return int(value)
        return int(value)
    except (TypeError, ValueError):
        raise DispatchError("InvalidValue", f"{name} must be an integer, got {value!r}") from None


def as_account(value: Any, name: str) -> str:
    """An ss58 account from a param (str, or a MultiAddress {'Id': ss58})."""
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if not isinstance(value, str) or not value:
        raise DispatchError("InvalidValue", f"{name} must be an ss58 address")
    import bittensor_core

    try:
        bittensor_core.ss58_decode(value)
    except Exception:
        raise DispatchError("InvalidValue", f"{name} is not a valid ss58 address") from None
    return value
