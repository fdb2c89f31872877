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

import dataclasses
import signal
import time
from dataclasses import dataclass
from typing import Any

from loguru import logger

from subnet.codec.sparseloco import Encoder
from subnet.codec.wire import ArtifactHeader, write_artifact
from subnet.device.consensus import DeviceReplica, host_apply
from subnet.device.health import judge, log_health, read_health
from subnet.device.memory import describe, memory_report, reset_peak
from subnet.device.select import DeviceChoice, select_device
from subnet.errors import ChainError, SubnetError
from subnet.miner.distributed import DistributedTrainer, shard_batches
from subnet.miner.rebase import Newer, train_rebasing
from subnet.miner.rebase_config import RebaseConfig
from subnet.miner.state import MinerState
from subnet.miner.train import StopRequested, prepare_training, stop_between_steps
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
from subnet.storage.s3 import S3Options
from subnet.sync.retention import RetentionPolicy, prune_store
from subnet.telemetry.events import EventLog
from subnet.telemetry.gpu import gpu_figures


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
        self.store = open_store(rt.cfg.store.location, S3Options.from_store_config(rt.cfg.store))
        self._retention = RetentionPolicy.from_store_config(rt.cfg.store)
        self.peer_stores = PeerStores.from_config(rt.cfg.store, allow_local=rt.allow_local_stores)
        self.state = MinerState.load(rt.state_dir, identity=rt.identity)
        restore(rt.gm, rt.state_dir)
        if self.state.version != rt.gm.version:
            # the model file and the state file are saved one after the other; trust the model file
            self.state.version = rt.gm.version
        self.events = EventLog(rt.events_path("miner"), **rt.cfg.telemetry.rotation) if rt.events_dir else None
        self._stop = False
        self._encoders: dict[int, Encoder] = {}
        # the device: training runs on a replica of the host fp32 global model (the model itself on CPU)
        self.device: DeviceChoice = rt.device if rt.device is not None else select_device("cpu")
        self.replica = DeviceReplica(rt.gm.model, self.device.device)
        self.train_runtime = prepare_training(self.replica.model, self.device.device, self.device.autocast_dtype,
                                              getattr(rt.cfg, "compute", None))
        self.dist: DistributedTrainer | None = None
        self._lead: tuple[Any, Any] | None = None
        """(lead peer, its store) of the window being trained: where a mid-window manifest is looked for."""
        """Set under torchrun (subnet.miner.distributed): rank 0 trains each window with the worker ranks."""
        logger.info("miner on {}: {}", self.device.label, describe(memory_report(self.device.device)))

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        logger.info("stop requested; stopping after the current inner step")
        self._stop = True

    def run(self, max_windows: int | None = None) -> None:
        try:
            self._run(max_windows)
        finally:
            if self.dist is not None:
                self.dist.stop()  # the worker ranks exit with rank 0

    def _run(self, max_windows: int | None) -> None:
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
            except StopRequested:
                logger.info("stopped during window training; nothing uploaded for it")
                break
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
        self._lead = (lead, lead_store) if lead_store is not None else None
        if lead_store is not None:
            with host_apply(rt.gm.model):  # manifests land on the host fp32 copy, whatever the device
                outcome = follow_lead(rt.gm, lead_store, rt.netuid, w - 1, self.cfg.store.max_artifact_bytes,
                                      lead_hotkey=lead.hotkey, codec=rt.codec, policy=manifest_policy(self.cfg, rt))
            if outcome.changed:
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
        self._prune_own_store(w)
        self._emit("uploaded", window=w, fragment=mine.fragment, bytes=len(data), base_version=rt.gm.version,
                   behaviour=self.behaviour, **{k: v for k, v in info.items() if k != "reason"})
        return WindowResult(w, mine.fragment, len(data), True)

    def _prune_own_store(self, w: int) -> None:
        """Retention (sync/retention.py): our artifacts older than the horizon go; a store error waits a window."""
        if self._retention.windows == 0:
            return
        try:
            prune_store(self.store, netuid=self.rt.netuid, now_window=w, policy=self._retention)
        except SubnetError as exc:
            logger.warning("retention: window {}: {}", w, exc)

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
        pg, stats = self._train(fragment, mine.pages, w)
        header = dataclasses.replace(header, base_version=self.rt.gm.version)  # moved on if training rebased
        enc = self._encoder(fragment)
        t0 = time.perf_counter()
        encoded = enc.encode(pg)
        data = write_artifact(encoded, header, self.rt.wallet.hotkey)
        self.state.update_encoder_state(enc.state_dict())
        logger.debug("encoded fragment {} in {:.3f}s -> {} bytes", fragment.index, time.perf_counter() - t0, len(data))
        losses = stats.losses
        return data, {"loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
                      "tokens": stats.tokens, "train_seconds": stats.seconds, **self._device_figures()}

    def _device_figures(self) -> dict[str, Any]:
        """Device, memory peaks and (CUDA) GPU health of the window just trained, for the `uploaded` event."""
        dev = self.device.device
        mem = memory_report(dev)
        out: dict[str, Any] = {"device": str(dev), "host_peak_rss_bytes": mem.get("host_peak_rss_bytes")}
        if dev.type == "cuda":
            out["device_peak_bytes"] = mem.get("max_memory_allocated_bytes")
            out["gpu"] = gpu_figures()
            health = read_health(dev.index or 0)
            check = judge(health, self.rt.cfg.compute, at_start=False)
            log_health(health, check)
            if hasattr(health, "as_event"):
                out["gpu_health"] = health.as_event()
            reset_peak(dev)
        logger.debug("window memory: {}", describe(mem))
        return {k: v for k, v in out.items() if v is not None}

    def _train(self, fragment: Fragment, pages: tuple[int, ...], window: int = -1):
        rt = self.rt
        rt.pages.prefetch(pages, "train")  # shard store: downloads overlap the first inner steps
        model = self.replica.refresh()  # the device copy starts from the host model's bytes
        if self.dist is not None:
            res = self.dist.train(model, fragment, rt.pages, pages, self.cfg.train, self.state.adam, window=window,
                                  start_step=self.state.step)
        else:
            batches = stop_between_steps(
                shard_batches(rt.pages, pages, self.cfg.train.batch_size, self.cfg.train.inner_steps),
                lambda: self._stop)
            rebase: RebaseConfig = getattr(self.cfg, "rebase", RebaseConfig())
            res = train_rebasing(model, fragment, batches, self.cfg.train, self.state.adam, start_step=self.state.step,
                                 check_every=rebase.check_every, newer=self._rebase_hook(window, rebase),
                                 runtime=self.train_runtime).result
        self.state.adam = res.optimizer_state
        self.state.step = res.stats.end_step
        return res.pseudo_grad, res.stats

    def _rebase_hook(self, w: int, rebase: RebaseConfig) -> Newer | None:
        """Applies the lead's manifest w-1 if it has landed (subnet/miner/rebase.py); None: nothing to wait for.

        Called between inner-step segments, when the training copy holds the global version exactly.
        Off under torchrun (every rank would have to rebase at the same step) and once w-1 is applied.
        """
        if not rebase.enabled or self.dist is not None or self._lead is None or w < 1:
            return None
        if self.rt.gm.last_manifest_window >= w - 1:
            return None
        lead, lead_store = self._lead
        rt = self.rt

        def newer() -> bool:
            with host_apply(rt.gm.model):
                outcome = follow_lead(rt.gm, lead_store, rt.netuid, w - 1, self.cfg.store.max_artifact_bytes,
                                      lead_hotkey=lead.hotkey, codec=rt.codec, policy=manifest_policy(self.cfg, rt))
            if not outcome.changed:
                return False
            persist(rt.gm, rt.state_dir)
            self.replica.refresh()
            self._emit("synced", version=rt.gm.version, model_hash=rt.gm.model_hash, rebased=True)
            return True

        return newer

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
