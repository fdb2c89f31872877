"""The miner loop: one window at a time, train the assigned fragment, upload a signed artifact.

Per window `w` (see DESIGN.md, Protocol):
0. check the hotkey still holds its uid (else `Deregistered`: the miner exits with status 3);
1. bring the local global model to the lead's newest version (manifests up to `w-1`);
2. compute the assignment from the window seed (hash of the window's first block, once finalised)
   and the uid: a pure function of both, so nobody else's registration moves it; a miner
   registered during `w` sits `w` out (validators do not expect it before `w+1`);
3. run H inner AdamW steps on the fragment's pages, pseudo-gradient = start - end;
4. compress with error feedback, sign with the hotkey, upload before the window ends.

State (EF buffers, AdamW moments, counters, the local model copy) is saved
atomically after every upload, so a restart resumes without uploading twice.
This is the honest miner only: the adversaries of tests, benches and the demo
(subnet.adversary, neurons/adversary_miner.py) subclass it and override `_produce`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from loguru import logger

from subnet.codec.sparseloco import Encoder
from subnet.codec.wire import ArtifactHeader, write_artifact
from subnet.data.pages import TokenPages
from subnet.errors import ChainError
from subnet.miner.state import MinerState
from subnet.miner.train import inner_train
from subnet.model.fragments import Fragment, fragment_shapes
from subnet.node.chain import lead_validator
from subnet.node.globalmodel import follow_lead, manifest_policy, persist, restore
from subnet.node.peerstores import PeerStores
from subnet.node.runtime import Deregistered, NodeRuntime
from subnet.protocol.assignment import Assignment, assign_all
from subnet.protocol.keys import artifact_key
from subnet.protocol.registration import takes_part
from subnet.protocol.windows import window_end, window_start
from subnet.storage.base import open_store
from subnet.telemetry.events import EventLog


@dataclass
class WindowResult:
    window: int
    fragment: int
    nbytes: int
    uploaded: bool
    reason: str = ""


class Miner:
    """A Tessera miner bound to one hotkey on one netuid."""

    behaviour: str = "honest"
    """Tag of the `uploaded` event (telemetry); subnet.adversary's miner sets its attack's name."""

    def __init__(self, rt: NodeRuntime) -> None:
        self.rt = rt
        self.cfg = rt.cfg
        self.store = open_store(rt.cfg.store.location)
        self.peer_stores = PeerStores.from_config(rt.cfg.store, allow_local=rt.allow_local_stores)
        self.state = MinerState.load(rt.state_dir, identity=rt.identity)
        restore(rt.gm, rt.state_dir)
        if self.state.version != rt.gm.version:
            # the model file and the state file are saved one after the other; trust the model file
            self.state.version = rt.gm.version
        self.events = EventLog(rt.events_path("miner")) if rt.events_dir else None
        self._stop = False
        self._encoders: dict[int, Encoder] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        logger.info("stop requested; finishing the current step")
        self._stop = True

    def run(self, max_windows: int | None = None) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        self.rt.ensure_commitment(self.store.location)
        done = 0
        while not self._stop and (max_windows is None or done < max_windows):
            try:
                w = self.rt.wait_for_new_window(self.state.last_window_uploaded, lambda: self._stop)
                if w is None:
                    break
                res = self.run_window(w)
                done += 1
                logger.info("window {}: fragment {} {} ({} bytes){}", res.window, res.fragment,
                            "uploaded" if res.uploaded else "not uploaded", res.nbytes,
                            f" - {res.reason}" if res.reason else "")
            except ChainError as exc:
                logger.error("chain unavailable: {}; retrying in 5s", exc)
                self._emit("chain_error", kind=type(exc).__name__, error=str(exc)[:300])
                time.sleep(5)
            except Deregistered:
                raise  # the operator's call: entry.py exits 3 with the message
            except Exception:  # a store outage or our own bug must not end a miner that runs for weeks
                logger.exception("window failed; retrying in 5s")
                time.sleep(5)

    # -- one window ----------------------------------------------------------------------------
    def run_window(self, w: int) -> WindowResult:
        rt = self.rt
        peers = rt.chain.peers()
        me = rt.require_registered(peers)  # raises Deregistered: never train under a recycled uid
        lead = lead_validator(peers)
        lead_store = self.peer_stores.get(lead.location) if lead is not None else None
        if lead_store is not None:
            if follow_lead(rt.gm, lead_store, rt.netuid, w - 1, self.cfg.store.max_artifact_bytes,
                           lead_hotkey=lead.hotkey, codec=rt.codec, policy=manifest_policy(self.cfg.sync)).changed:
                persist(rt.gm, rt.state_dir)
                self._emit("synced", version=rt.gm.version, model_hash=rt.gm.model_hash)
        first = window_start(w, rt.window_params)
        if not takes_part(next((p.registered_at for p in peers if p.uid == me.uid), None), first):
            self._mark_done(w)
            return WindowResult(w, -1, 0, False, f"registered during window {w}; the first window is {w + 1}")
        seed = rt.wait_for_seed(w, lambda: self._stop)
        if seed is None:
            if self._stop:
                return WindowResult(w, -1, 0, False, "stopped while waiting for the seed")
            self._mark_done(w)
            return WindowResult(w, -1, 0, False, f"window {w}'s first block was not finalised before the window ended")
        assignments = assign_all(seed, [p.uid for p in peers if takes_part(p.registered_at, first)],
                                 rt.assignment_params)
        mine = assignments[rt.uid]
        fragment = rt.gm.fragment(mine.fragment)
        header = ArtifactHeader(netuid=rt.netuid, window=w, uid=rt.uid, hotkey=rt.hotkey,
                                fragment=mine.fragment, base_version=rt.gm.version)
        data, info = self._produce(w, mine, fragment, header, peers, assignments)
        if data is None:
            self._mark_done(w)
            return WindowResult(w, mine.fragment, 0, False, info.get("reason", "nothing to upload"))
        if self._too_late(w):
            self._mark_done(w)
            self._emit("late", window=w, fragment=mine.fragment)
            return WindowResult(w, mine.fragment, len(data), False, "missed the window deadline")
        key = artifact_key(rt.netuid, w, rt.hotkey, mine.fragment)
        self.store.put(key, data)
        self._mark_done(w)
        self._emit("uploaded", window=w, fragment=mine.fragment, bytes=len(data), base_version=rt.gm.version,
                   behaviour=self.behaviour, **{k: v for k, v in info.items() if k != "reason"})
        return WindowResult(w, mine.fragment, len(data), True)

    def _too_late(self, w: int) -> bool:
        """Past window `w`'s deadline: a late upload would only be recorded as late, so skip it."""
        return self.rt.chain.block() >= window_end(w, self.rt.window_params)

    def _produce(self, w: int, mine: Assignment, fragment: Fragment, header: ArtifactHeader,
                 peers: list, assignments: dict[int, Assignment]) -> tuple[bytes | None, dict]:
        """The artifact bytes this miner uploads for window `w`, or (None, {"reason": ...}).

        The one hook subclasses override (subnet.adversary); `peers` and `assignments` are
        unused by the honest miner but passed so an override sees the whole window.
        """
        return self._honest(w, mine, fragment, header)

    def _honest(self, w: int, mine: Assignment, fragment: Fragment, header: ArtifactHeader) -> tuple[bytes, dict]:
        pg, stats = self._train(fragment, mine.pages)
        enc = self._encoder(fragment)
        t0 = time.perf_counter()
        encoded = enc.encode(pg)
        data = write_artifact(encoded, header, self.rt.wallet.hotkey)
        self.state.update_encoder_state(enc.state_dict())
        logger.debug("encoded fragment {} in {:.3f}s -> {} bytes", fragment.index, time.perf_counter() - t0, len(data))
        losses = stats.losses
        return data, {"loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
                      "tokens": stats.tokens, "train_seconds": stats.seconds}

    def _train(self, fragment: Fragment, pages: tuple[int, ...]):
        rt = self.rt
        rt.pages.prefetch(pages, "train")  # shard store: downloads overlap the first inner steps
        batches = _cycle_batches(rt.pages, pages, self.cfg.train.batch_size, self.cfg.train.inner_steps)
        res = inner_train(rt.gm.model, fragment, batches, self.cfg.train, self.state.adam, start_step=self.state.step)
        self.state.adam = res.optimizer_state
        self.state.step = res.stats.end_step
        return res.pseudo_grad, res.stats

    def _encoder(self, fragment: Fragment) -> Encoder:
        enc = self._encoders.get(fragment.index)
        if enc is None:
            enc = Encoder(fragment_shapes(self.rt.gm.model, fragment), self.rt.codec)
            saved = self.state.encoder_state(fragment)
            if saved is not None:
                enc.load_state_dict(saved)
            self._encoders[fragment.index] = enc
        return enc

    def _mark_done(self, w: int) -> None:
        self.state.last_window_uploaded = w
        self.state.version = self.rt.gm.version
        self.state.last_manifest_window = self.rt.gm.last_manifest_window
        self.state.save(self.rt.state_dir)

    def _emit(self, event: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(event, component="miner", uid=self.rt.uid, hotkey=self.rt.hotkey, **fields)


def _cycle_batches(pages: TokenPages, indices: tuple[int, ...], batch_size: int, steps: int) -> Iterator[torch.Tensor]:
    """`steps` batches of `batch_size` pages drawn round-robin from the assigned pages."""
    idx = list(indices)
    for s in range(steps):
        sel = [idx[(s * batch_size + j) % len(idx)] for j in range(batch_size)]
        yield pages.batch(sel, "train")
