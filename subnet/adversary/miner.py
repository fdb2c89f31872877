"""`AdversaryMiner`: the production miner with its `_produce` hook replaced by an attack.

Every behaviour goes through the production miner's window loop and upload
path, so the validator is tested against real files; only what gets uploaded
(and, for `late`, when) differs. `honest` falls back to the production code.
"""

from __future__ import annotations

from subnet.adversary import behaviours
from subnet.codec.sparseloco import EncodedUpdate
from subnet.codec.wire import ArtifactHeader, write_artifact
from subnet.miner.loop import Miner
from subnet.model.fragments import Fragment
from subnet.node.runtime import NodeRuntime
from subnet.protocol.assignment import Assignment
from subnet.protocol.windows import window_end


class AdversaryMiner(Miner):
    """A miner running `--adversary.behaviour` (tests, benches and the demo only)."""

    def __init__(self, rt: NodeRuntime) -> None:
        super().__init__(rt)
        self.behaviour = rt.cfg.adversary.behaviour

    def _too_late(self, w: int) -> bool:
        """`late` uploads after the deadline on purpose: the validator must record it as late."""
        return self.behaviour != "late" and super()._too_late(w)

    def _produce(self, w: int, mine: Assignment, fragment: Fragment, header: ArtifactHeader,
                 peers: list, assignments: dict[int, Assignment]) -> tuple[bytes | None, dict]:
        """The attack's bytes for window `w`; `honest` is the production miner's own update."""
        b = self.behaviour
        if b == "honest":
            return super()._produce(w, mine, fragment, header, peers, assignments)
        if b == "copier":
            return behaviours.copy_peer(self.rt, w, mine, peers, assignments, header, lambda: self._stop)
        if b == "copier_noisy":
            return behaviours.copy_peer_noisy(self.rt, w, mine, peers, assignments, header, lambda: self._stop)
        if b == "sybil":
            return behaviours.sybil_update(self.rt, w, mine, fragment, header, peers, assignments)
        if b == "replay":
            return behaviours.replay(self.rt, w, mine, header, peers)
        if b == "steal_key":
            return None, behaviours.steal_key(self.rt, self.store, w, fragment, header, peers, assignments)
        if b in behaviours.BROKEN:
            def train_encoded() -> EncodedUpdate:
                return self._encoder(fragment).encode(self._train(fragment, mine.pages)[0])

            return behaviours.broken_artifact(b, self.rt, w, fragment, header, train_encoded, peers), {}
        if b == "late":
            # an honest artifact, uploaded only after the window closed
            data, info = super()._produce(w, mine, fragment, header, peers, assignments)
            self.rt.wait_until_block(window_end(w, self.rt.window_params) + 1, lambda: self._stop)
            return data, info
        pg = behaviours.fake_pseudo_grad(b, self.rt, fragment, mine, w,
                                         lambda pages: self._train(fragment, pages)[0])
        encoded = self._encoder(fragment).encode(pg)
        return write_artifact(encoded, header, self.rt.wallet.hotkey), {"loss_first": None, "loss_last": None}
