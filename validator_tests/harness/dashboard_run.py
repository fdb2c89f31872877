"""A small recorded run for the dashboard tests: event logs written by the real writers from real decisions.

Why not a fixture file: the fields must stay what the neurons write. So the
validator's side comes from the real competition (`play_round`,
`compute_weights`, `normalise_cohorts`), the fragments from the real
assignment (`subnet.protocol.assignment.assign`), the outcome reasons from the
prefixes intake/scoring write, and every line is written by `EventLog` (one
file per process, as the neurons do). What is made up is only the training:
scores and losses are seeded numbers instead of a model's.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from bittensor.sp_core import Keypair

from subnet.protocol.assignment import AssignmentParams, assign
from subnet.protocol.windows import seed_from_hash
from subnet.telemetry.events import EventLog, log_path
from subnet.validator.cohorts import normalise_cohorts
from subnet.validator.competition import CompetitionConfig, CompetitionState, compute_weights, play_round

BEHAVIOURS = {1: "honest", 2: "honest", 3: "honest", 4: "noise", 5: "copier", 6: "late"}
VALIDATOR_UID = 0
PARAMS = AssignmentParams(n_fragments=2, pages_per_miner=4, n_train_pages=256, n_heldout_pages=32,
                          heldout_per_window=4)


@dataclass
class RecordedRun:
    """What the run's events say, for the assertions."""

    events_dir: Path
    first_window: int
    last_window: int
    hotkeys: dict[int, str]
    validator_hotkey: str
    leader: int | None = None
    weights: dict[int, float] = field(default_factory=dict)
    fragments: dict[int, dict[int, int]] = field(default_factory=dict)  # window -> uid -> fragment
    heldout: list[tuple[int, float]] = field(default_factory=list)
    version: int = 0
    model_hash: str = ""
    ordinals: dict[int, float] = field(default_factory=dict)


def _hotkey(name: str) -> str:
    return Keypair.create_from_uri(f"//tessera-dashboard-{name}").ss58_address


def write_run(events_dir: Path, *, windows: int = 10, first_window: int = 20, seed: int = 7) -> RecordedRun:
    """Write `windows` windows of validator and miner events into `events_dir`."""
    rng = random.Random(seed)
    events_dir.mkdir(parents=True, exist_ok=True)
    hotkeys = {uid: _hotkey(f"miner{uid}") for uid in BEHAVIOURS}
    vhk = _hotkey("validator")
    run = RecordedRun(events_dir=events_dir, first_window=first_window, last_window=first_window + windows - 1,
                      hotkeys=hotkeys, validator_hotkey=vhk)
    vlog = EventLog(log_path(events_dir, "validator", VALIDATOR_UID), component="validator", uid=VALIDATOR_UID,
                    hotkey=vhk)
    mlogs = {uid: EventLog(log_path(events_dir, "miner", uid), component="miner", uid=uid, hotkey=hk)
             for uid, hk in hotkeys.items()}
    cfg = CompetitionConfig()
    comp = CompetitionState()
    t0 = time.time() - 40.0 * windows
    loss = 7.6
    version = 3
    for uid, beh in BEHAVIOURS.items():
        mlogs[uid].emit("started", behaviour=beh, ts=t0 - 5)
    vlog.emit("started", ts=t0 - 5)
    for k in range(windows):
        w = first_window + k
        ts = t0 + 40.0 * k
        block_hash = hashlib.sha256(f"block-{w}".encode()).digest()
        wseed = seed_from_hash(block_hash)
        frag = {uid: assign(wseed, uid, PARAMS).fragment for uid in BEHAVIOURS}
        run.fragments[w] = frag
        raw: dict[int, float | None] = {}
        reasons: dict[int, str] = {}
        for uid, beh in BEHAVIOURS.items():
            if beh == "late":
                if k % 3 == 2:
                    mlogs[uid].emit("late", window=w, fragment=frag[uid], ts=ts + 20)
                    raw[uid], reasons[uid] = None, f"late (first seen at block {w * 10 + 12}, deadline {w * 10 + 10})"
                    continue
                raw[uid], reasons[uid] = None, "absent (store failing: TimeoutError: read timed out; 3 attempts)"
                continue
            first = loss + rng.uniform(0.05, 0.2)
            mlogs[uid].emit("uploaded", window=w, fragment=frag[uid], bytes=96_000 + rng.randrange(4000),
                            base_version=version, loss_first=first, loss_last=first - rng.uniform(0.1, 0.4),
                            behaviour=beh, tokens=4096, train_seconds=2.0, tokens_per_s=2048.0, ts=ts + 15)
            if beh == "honest":
                raw[uid], reasons[uid] = (0.004 + 0.002 * uid + rng.uniform(0, 0.002)), "scored"
            elif beh == "noise":
                raw[uid], reasons[uid] = 0.0, "no proof of work (assigned 1.0e-04 <= control 2.0e-04 x 1.5)"
            else:
                raw[uid], reasons[uid] = 0.0, "copy of uid 1"
        norm = normalise_cohorts(raw, frag, "median")
        comp = play_round(comp, norm, list(BEHAVIOURS), cfg, slashed={5}, hotkeys=hotkeys)
        weights = compute_weights(comp, list(BEHAVIOURS), cfg, hotkeys=hotkeys)
        ratings = {str(u): {"mu": p.mu, "sigma": p.sigma, "ordinal": p.ordinal(cfg.z)} for u, p in comp.players.items()}
        scores = {str(u): {"score": raw[u], "norm_score": norm.get(u), "reason": reasons[u], "fragment": frag[u]}
                  for u in BEHAVIOURS}
        vlog.emit("window_scored", window=w, version=version, heldout_loss=loss, scores=scores, ratings=ratings,
                  leader=comp.leader, round=comp.round, weights={str(u): v for u, v in weights.items()},
                  seconds=12.0 + rng.uniform(0, 3), block=w * 10 + 19, ts=ts + 30)
        run.heldout.append((w, loss))
        selected = sorted((u for u in BEHAVIOURS if (raw[u] or 0) > 0), key=lambda u: -(raw[u] or 0))
        new_hash = hashlib.sha256(f"model-{version + 1}".encode()).hexdigest()
        loss_after = loss - 0.12 - rng.uniform(0, 0.03)
        vlog.emit("manifest_published", window=w, new_version=version + 1, model_hash=new_hash,
                  heldout_loss_after=loss_after,
                  selected=[{"uid": u, "fragment": frag[u], "coef": 1.0 / len(selected)} for u in selected],
                  ts=ts + 31)
        version += 1
        loss = loss_after + rng.uniform(0.0, 0.02)
        if k % 3 == 0:
            vlog.emit("weights_set", block=w * 10 + 20, weights={str(u): v for u, v in weights.items()}, success=True,
                      error=None, outcome="set", detail="weights set", pending=None, ts=ts + 32)
        elif k == 4:
            vlog.emit("weights_set", block=w * 10 + 20, weights={str(u): v for u, v in weights.items()},
                      success=False, error="SettingWeightsTooFast", outcome="refused", detail="rate limit",
                      pending=None, ts=ts + 32)
        if k == 5:
            vlog.emit("chain_error", kind="TimeoutError", error="read block number failed after 5 attempts", ts=ts + 33)
        run.leader = comp.leader
        run.weights = dict(weights)
        run.ordinals = {u: p.ordinal(cfg.z) for u, p in comp.players.items()}
    run.version = version
    run.model_hash = new_hash
    mlogs[1].emit("store_error", store="own", kind="ClientError", error="put failed: 503 Slow Down",
                  ts=t0 + 40.0 * windows)
    for log in (vlog, *mlogs.values()):
        log.close()
    return run
