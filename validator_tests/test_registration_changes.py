"""Registrations and deregistrations while the network runs.

subtensor's rules these follow (`pallets/subtensor/src/subnets/uids.rs`):
`append_neuron` gives a new hotkey uid `SubnetworkN`; on a full subnet
`replace_neuron` gives the pruned uid to the new hotkey in place, with a new
`BlockAtRegistration`. So a uid can change hands between two windows, and the
neuron that lost it must notice; a registrant takes part only from the first
window that starts after its registration block; nobody else's assignment moves.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from subnet.node.chain import Peer
from subnet.node.runtime import Deregistered, NodeRuntime, NotRegistered
from subnet.protocol.assignment import AssignmentParams, assign
from subnet.protocol.registration import Registration, check_registration, takes_part
from subnet.protocol.windows import WindowParams, seed_from_hash, window_start

WP = WindowParams(window_blocks=10)
AP = AssignmentParams(n_fragments=3, pages_per_miner=4, n_train_pages=500, n_heldout_pages=50, heldout_per_window=4)


def _peer(uid: int, hotkey: str | None = None, registered_at: int = 0, permit: bool = False) -> Peer:
    return Peer(uid=uid, hotkey=hotkey or f"hk{uid}", stake=0.0, validator_permit=permit, last_update=0,
                location=None, commit_block=None, registered_at=registered_at)


# -- the pure decisions ------------------------------------------------------------------------------


def test_check_registration_outcomes() -> None:
    hotkeys = {0: "owner", 1: "me", 2: "other"}
    assert check_registration("me", 1, hotkeys).outcome is Registration.REGISTERED
    recycled = check_registration("me", 1, {0: "owner", 1: "newcomer", 2: "other"})
    assert (recycled.outcome, recycled.holder, recycled.now_uid) == (Registration.DEREGISTERED, "newcomer", None)
    moved = check_registration("me", 1, {0: "owner", 1: "newcomer", 2: "other", 3: "me"})
    assert (moved.outcome, moved.now_uid, moved.ok) == (Registration.MOVED, 3, False)
    assert check_registration("me", 7, hotkeys).outcome is Registration.MOVED  # uid gone (trimmed), hotkey elsewhere


def test_takes_part_only_from_the_first_window_after_registration() -> None:
    first = window_start(4, WP)
    assert takes_part(first - 1, first)
    assert not takes_part(first, first)  # registered in the block whose hash seeds the window
    assert not takes_part(first + 3, first)
    assert takes_part(None, first)  # a chain that does not report it: as before


# -- the node's per-window check -----------------------------------------------------------------------


def _runtime(uid: int = 2, hotkey: str = "hk2", chain: object | None = None) -> NodeRuntime:
    return NodeRuntime(cfg=SimpleNamespace(netuid=1), role="miner", wallet=None, sub=None, chain=chain, uid=uid,
                       hotkey=hotkey, gm=SimpleNamespace(version=0, last_manifest_window=-1), pages=None,
                       window_params=WP, assignment_params=AP, codec=None, state_dir=Path("/nonexistent"),
                       events_dir=None)


def test_require_registered_raises_a_typed_error_naming_the_new_holder() -> None:
    rt = _runtime()
    assert rt.require_registered([_peer(0), _peer(1), _peer(2)]).ok
    with pytest.raises(Deregistered) as err:
        rt.require_registered([_peer(0), _peer(1), _peer(2, "newcomer", registered_at=55)])
    assert isinstance(err.value, NotRegistered) and err.value.exit_status == 3
    text = str(err.value)
    assert "lost uid 2" in text and "newcomer" in text and "btcli subnets register" in text
    with pytest.raises(Deregistered, match="registered again as uid 5"):
        rt.require_registered([_peer(0), _peer(2, "newcomer"), _peer(5, "hk2")])


class _Chain:
    def __init__(self, peers: list[Peer], head: int) -> None:
        self._peers, self.head = peers, head

    def peers(self, mg: object | None = None) -> list[Peer]:
        return list(self._peers)

    def block(self) -> int:
        return self.head

    def window_seed(self, w: int) -> int:
        return seed_from_hash(f"0x{w:064x}")


def _miner(rt: NodeRuntime):
    from subnet.miner.loop import Miner

    m = Miner.__new__(Miner)
    m.rt, m.cfg, m._stop, m.behaviour, m.events = rt, SimpleNamespace(), False, "honest", None
    m.peer_stores = SimpleNamespace(get=lambda loc: None)
    m.state = SimpleNamespace(save=lambda d: None, last_window_uploaded=-1)
    return m


def test_a_miner_whose_uid_was_recycled_stops_instead_of_training() -> None:
    chain = _Chain([_peer(0), _peer(1), _peer(2, "newcomer", registered_at=41)], head=45)
    with pytest.raises(Deregistered, match="lost uid 2"):
        _miner(_runtime(chain=chain)).run_window(4)


def test_a_miner_registered_during_a_window_sits_it_out() -> None:
    chain = _Chain([_peer(0), _peer(1), _peer(2, registered_at=42)], head=45)
    m = _miner(_runtime(chain=chain))
    res = m.run_window(4)
    assert not res.uploaded and "first window is 5" in res.reason and m.state.last_window_uploaded == 4


def test_the_neuron_exits_with_status_3_when_deregistered(monkeypatch: pytest.MonkeyPatch) -> None:
    import subnet.miner.loop as miner_loop
    from subnet.node.config import MinerNeuronConfig
    from subnet.node.entry import run_neuron

    class Loop:
        def __init__(self, rt: object) -> None:
            pass

        def run(self) -> None:
            raise Deregistered("hotkey lost uid 2")

    monkeypatch.setattr(miner_loop, "Miner", Loop)
    monkeypatch.setattr(NodeRuntime, "build", classmethod(lambda cls, cfg, role: None))
    monkeypatch.setattr("subnet.node.entry.setup_logging", lambda cfg, role: None)  # keep the suite's handlers
    assert run_neuron(MinerNeuronConfig, "miner", ["--netuid", "1"]) == 3


# -- the validator ------------------------------------------------------------------------------------


def _validator(peers: list[Peer], uid: int = 0, hotkey: str = "hk0"):
    from subnet.validator.loop import Validator

    v = Validator.__new__(Validator)
    chain = _Chain(peers, head=45)
    v.rt = _runtime(uid=uid, hotkey=hotkey, chain=chain)
    v.rt.role = "validator"
    v._assign_cache, v._peers_window, v._peers = {}, -1, []
    return v, chain


def test_validator_assignments_survive_registrations_and_skip_newcomers() -> None:
    w = 4
    at_start = [_peer(u, registered_at=3 * u) for u in range(8)]
    v, chain = _validator(at_start)
    before = v._assignments(w, at_start)
    seed = chain.window_seed(w)
    assert before == {u: assign(seed, u, AP) for u in range(8)}
    # during the window: uid 8 appended, uid 5 pruned and recycled, uid 6 deregistered without replacement
    later = [p for p in at_start if p.uid not in (5, 6)] + [_peer(5, "newcomer", registered_at=43),
                                                            _peer(8, registered_at=44)]
    after = v._assignments(w, later)
    assert set(after) == {0, 1, 2, 3, 4, 7}  # the newcomers sit window 4 out
    assert all(after[u] == before[u] for u in after)
    fresh, _ = _validator(later)
    assert fresh._assignments(w, later) == after  # a validator that starts late computes the same


def test_validator_stops_when_its_own_uid_is_recycled() -> None:
    peers = [_peer(0, "newcomer", registered_at=40), _peer(1), _peer(2)]
    v, chain = _validator(peers)
    chain.metagraph = lambda: SimpleNamespace(owner_hotkey=None)
    v.rt.chain = chain
    with pytest.raises(Deregistered, match="the validator stops"):
        v._refresh_peers(4)


def test_validator_run_loop_does_not_swallow_deregistration(monkeypatch: pytest.MonkeyPatch) -> None:
    v, chain = _validator([_peer(0, "newcomer", registered_at=40), _peer(1)])
    chain.metagraph = lambda: SimpleNamespace(owner_hotkey=None)
    v.rt.chain = chain
    v.rt.ensure_commitment = lambda location: None
    v.store = SimpleNamespace(location="file:///x")
    v.cfg = SimpleNamespace(validator=SimpleNamespace(poll_interval=0.01))
    v._stop = False
    v._watch_thread = SimpleNamespace(start=lambda: None, stop=lambda: None)
    v.watcher = SimpleNamespace(close=lambda: None)
    v.state = SimpleNamespace(last_scored_window=10)
    monkeypatch.setattr("subnet.validator.loop.signal.signal", lambda *a: None)
    with pytest.raises(Deregistered):
        v.run(max_windows=1)
