"""Registration facts both neurons decide the same way: is this node still itself, and who takes part in a window.

Pure functions over what the metagraph says (no I/O). subtensor recycles uids:
a registration on a full subnet replaces the pruned neuron's uid in place with
the new hotkey and a new `BlockAtRegistration` (`subnets/uids.rs::replace_neuron`).
So a uid alone does not name a neuron; (uid, hotkey) does, and a neuron takes
part in window `w` only if it was registered before `w`'s first block, the
block whose hash seeds `w` (a fact fixed before the window starts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class Registration(str, Enum):
    """Where this node's hotkey stands against the uid it started with."""

    REGISTERED = "registered"
    """Same hotkey at the same uid."""
    DEREGISTERED = "deregistered"
    """The hotkey is no longer on the subnet (pruned); its uid may hold someone else."""
    MOVED = "moved"
    """The hotkey is registered again, under another uid (pruned, then re-registered)."""


@dataclass(frozen=True, kw_only=True)
class RegistrationCheck:
    """The outcome of one check, with what the node needs to say why it stops."""

    outcome: Registration
    uid: int
    """The uid the node started with."""
    now_uid: int | None = None
    """The hotkey's uid now (None when not registered)."""
    holder: str | None = None
    """The hotkey now at `uid` (None when the uid does not exist)."""

    @property
    def ok(self) -> bool:
        return self.outcome is Registration.REGISTERED


def check_registration(hotkey: str, uid: int, hotkeys: Mapping[int, str]) -> RegistrationCheck:
    """Compare the node's (uid, hotkey) with the metagraph's uid -> hotkey map."""
    holder = hotkeys.get(uid)
    if holder == hotkey:
        return RegistrationCheck(outcome=Registration.REGISTERED, uid=uid, now_uid=uid, holder=holder)
    now = next((u for u, hk in hotkeys.items() if hk == hotkey), None)
    outcome = Registration.DEREGISTERED if now is None else Registration.MOVED
    return RegistrationCheck(outcome=outcome, uid=uid, now_uid=now, holder=holder)


def takes_part(registered_at: int | None, window_first_block: int) -> bool:
    """A neuron takes part in a window only if it registered before the window's first block.

    Unknown registration blocks (None) count as old registrations, so a chain
    that does not report them behaves as before.
    """
    return registered_at is None or int(registered_at) < int(window_first_block)
