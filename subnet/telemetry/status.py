"""What a production node is doing, from its state directory, its event log and (optionally) the chain.

Why: an operator with a miner or validator running for weeks asks "is it
working?" without attaching to its logs. Everything here is read-only and
comes from what the node itself persists: `validator_state.json` or
`miner_state.safetensors`, `global_model.safetensors` (its safetensors header
for the version; the tensors, streamed, for the hash), `evidence/index.json`,
the JSONL event log, and the node's own artifact store. The chain part is
optional and bounded in time: an unreachable chain is reported as such and
the local part is still shown. `subnet.telemetry.status_cli` renders it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from subnet.telemetry.events import read_events, uid_map
from subnet.telemetry.outcomes import peer_outcome

VALIDATOR_STATE = "validator_state.json"  # subnet.validator.state.STATE_FILE
MINER_STATE = "miner_state.safetensors"  # subnet.miner.state.STATE_FILE
MODEL_FILE = "global_model.safetensors"  # subnet.node.globalmodel.LOCAL_FILE


@dataclass(frozen=True, kw_only=True)
class ModelStatus:
    """The node's persisted copy of the global model."""

    path: str
    present: bool
    version: int | None = None
    last_manifest_window: int | None = None
    model_hash: str | None = None  # subnet.model.state.model_hash of the file's tensors
    bytes: int | None = None
    modified: float | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class WeightsStatus:
    """The validator's last weights: state file (block, pending commit) and last events (outcome)."""

    last_block: int | None = None
    windows_since: int | None = None
    pending_commit: dict[str, Any] | None = None
    last_call: dict[str, Any] | None = None  # last `weights_set` event: outcome, block, success, error, ts
    last_reveal: dict[str, Any] | None = None  # last `weights_revealed` event


@dataclass(frozen=True, kw_only=True)
class PeerStatus:
    """One uid as this validator saw it in its `window_scored` events."""

    uid: int
    windows: int
    outcomes: dict[str, int]
    last_window: int | None = None
    last_score: float | None = None
    last_reason: str | None = None
    ordinal: float | None = None
    weight: float | None = None


@dataclass(frozen=True, kw_only=True)
class StoreUsage:
    """Disk the node uses: its state directory, pinned evidence, event log, and its own artifact store."""

    state_dir_bytes: int = 0
    evidence_windows: int = 0
    evidence_pins: int = 0
    evidence_bytes: int = 0
    events_bytes: int = 0
    store_location: str | None = None
    store_objects: int | None = None
    store_bytes: int | None = None  # None where the store does not tell sizes (S3 listing)
    store_error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ChainStatus:
    """This node on chain, and the lead validator, read through the SDK client."""

    network: str
    netuid: int | None
    reachable: bool
    error: str | None = None
    block: int | None = None
    neurons: int | None = None
    uid: int | None = None
    registered: bool | None = None
    stake: float | None = None
    validator_permit: bool | None = None
    incentive: float | None = None
    dividends: float | None = None
    last_update: int | None = None
    committed_location: str | None = None
    lead: dict[str, Any] | None = None  # {uid, hotkey, stake, location, is_self}
    pending_commits_on_chain: int | None = None


@dataclass(frozen=True, kw_only=True)
class NodeStatus:
    """Everything `tessera status` shows (`to_dict` is the --json form)."""

    role: str  # validator | miner | unknown
    state_dir: str
    events_dir: str | None
    identity: dict[str, Any] = field(default_factory=dict)
    uid: int | None = None
    hotkey: str | None = None
    last_window: int | None = None  # validator: last scored; miner: last uploaded (or tried)
    last_window_kind: str | None = None  # "scored" | "trained"
    events: int = 0
    last_event: dict[str, Any] | None = None  # {event, ts}
    model: ModelStatus | None = None
    competition: dict[str, Any] | None = None  # validator: round, leader, players
    weights: WeightsStatus | None = None
    peers: list[PeerStatus] = field(default_factory=list)
    miner: dict[str, Any] | None = None  # miner: step, uploads, late, last upload
    lead: dict[str, Any] | None = None  # from the chain, else what the events say
    store: StoreUsage = field(default_factory=StoreUsage)
    chain: ChainStatus | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the pieces -------------------------------------------------------------------------------------------


def file_model_hash(path: str | os.PathLike[str]) -> str:
    """`subnet.model.state.model_hash` of a safetensors file, one tensor in memory at a time."""
    from safetensors import safe_open

    from subnet.model.state import tensor_bytes

    h = hashlib.sha256()
    with safe_open(str(path), framework="pt") as fh:
        for name in sorted(fh.keys()):
            t = fh.get_tensor(name)
            h.update(f"{name}\0{str(t.dtype)}\0{tuple(t.shape)}\0".encode())
            h.update(tensor_bytes(t))
    return h.hexdigest()


def model_status(state_dir: Path, *, with_hash: bool = True) -> ModelStatus:
    path = state_dir / MODEL_FILE
    if not path.is_file():
        return ModelStatus(path=str(path), present=False)
    from subnet.model.state import read_checkpoint_meta

    st = path.stat()
    try:
        with path.open("rb") as fh:  # the header only: a length prefix and JSON
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else 0
            meta = read_checkpoint_meta(head + fh.read(min(n, 64 << 20)))
        digest = file_model_hash(path) if with_hash else None
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file is a finding, not a crash
        return ModelStatus(path=str(path), present=True, bytes=st.st_size, modified=st.st_mtime,
                           error=f"{type(exc).__name__}: {exc}")
    return ModelStatus(path=str(path), present=True, version=_int(meta.get("version")),
                       last_manifest_window=_int(meta.get("last_manifest_window")), model_hash=digest,
                       bytes=st.st_size, modified=st.st_mtime)


def _int(x: Any) -> int | None:
    try:
        return None if x is None or isinstance(x, bool) else int(x)
    except (TypeError, ValueError):
        return None


def _dir_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) under root, not following links."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
            except OSError:
                continue
    return files, size


def _evidence(state_dir: Path) -> tuple[int, int, int]:
    """(windows, pins, bytes) of the validator's pinned upload evidence."""
    root = state_dir / "evidence"
    try:
        raw = json.loads((root / "index.json").read_text())
        rows = raw.get("sightings") or {}
    except (OSError, ValueError, AttributeError):
        return 0, 0, _dir_bytes(root)[1] if root.is_dir() else 0
    pins = sum(len(v) for v in rows.values() if isinstance(v, Mapping))
    return len(rows), pins, _dir_bytes(root)[1]


def store_usage(state_dir: Path, events_dir: Path | None, location: str | None, netuid: int | None) -> StoreUsage:
    ev_windows, pins, ev_bytes = _evidence(state_dir)
    events_bytes = _dir_bytes(events_dir)[1] if events_dir is not None and events_dir.is_dir() else 0
    usage: dict[str, Any] = dict(state_dir_bytes=_dir_bytes(state_dir)[1], evidence_windows=ev_windows,
                                 evidence_pins=pins, evidence_bytes=ev_bytes, events_bytes=events_bytes,
                                 store_location=location)
    if location:
        try:
            usage.update(_own_store(location, netuid))
        except Exception as exc:  # noqa: BLE001 - credentials, network: say so, show the rest
            usage["store_error"] = f"{type(exc).__name__}: {exc}"
    return StoreUsage(**usage)


def _own_store(location: str, netuid: int | None) -> dict[str, Any]:
    """Objects (and bytes, for a directory) the node's own store holds under `<netuid>/`."""
    prefix = f"{netuid}/" if netuid is not None else ""
    if location.startswith("s3://"):
        from subnet.storage.base import open_store

        return {"store_objects": len(open_store(location).list(prefix)), "store_bytes": None}
    root = Path(unquote(urlparse(location).path) if location.startswith("file://") else location).expanduser()
    if not root.is_dir():
        return {"store_objects": 0, "store_bytes": 0, "store_error": f"{root} does not exist"}
    files, size = _dir_bytes(root / prefix if prefix else root)
    return {"store_objects": files, "store_bytes": size}


def node_events(events_dir: Path | None, role: str, hotkey: str | None) -> list[dict[str, Any]]:
    """This node's events from a directory that may hold other nodes' logs too (the demo shares one)."""
    if events_dir is None or not events_dir.exists():
        return []
    files = sorted(events_dir.glob(f"{role}-*.jsonl")) if role in ("validator", "miner") and events_dir.is_dir() \
        else [events_dir]
    evs = read_events(files)
    if role in ("validator", "miner"):
        evs = [e for e in evs if e.get("component") == role]
    if hotkey:
        evs = [e for e in evs if e.get("hotkey") in (hotkey, None)]
    return evs


def peer_table(events: list[dict[str, Any]]) -> list[PeerStatus]:
    """Per uid over every `window_scored`: windows seen, outcome counts, last score/rating/weight."""
    acc: dict[int, dict[str, Any]] = {}
    for ev in events:
        if ev.get("event") != "window_scored":
            continue
        ratings, weights = uid_map(ev.get("ratings")), uid_map(ev.get("weights"))
        for uid, s in uid_map(ev.get("scores")).items():
            s = s if isinstance(s, Mapping) else {}
            a = acc.setdefault(uid, {"windows": 0, "outcomes": {}})
            a["windows"] += 1
            outcome = peer_outcome(s.get("score"), s.get("reason"), s.get("outcome"))
            a["outcomes"][outcome] = a["outcomes"].get(outcome, 0) + 1
            a.update(last_window=_int(ev.get("window")), last_score=s.get("score"), last_reason=s.get("reason"))
            r = ratings.get(uid)
            a["ordinal"] = r.get("ordinal") if isinstance(r, Mapping) else None
            a["weight"] = weights.get(uid)
    return [PeerStatus(uid=u, windows=a["windows"], outcomes=dict(sorted(a["outcomes"].items())),
                       last_window=a.get("last_window"), last_score=a.get("last_score"),
                       last_reason=a.get("last_reason"), ordinal=a.get("ordinal"), weight=a.get("weight"))
            for u, a in sorted(acc.items())]


def _last(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in reversed(events) if e.get("event") == name), None)


def _weights_call(ev: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if ev is None:
        return None
    return {k: ev.get(k) for k in ("outcome", "block", "success", "error", "detail", "ts")}


# -- the chain (optional, bounded) ------------------------------------------------------------------------


def chain_status(network: str, netuid: int | None, hotkey: str | None, timeout_s: float) -> ChainStatus:
    """Read the node's standing and the lead; never waits longer than `timeout_s` (daemon thread)."""
    if netuid is None:
        return ChainStatus(network=network, netuid=None, reachable=False,
                           error="no netuid (pass --netuid; the state directory does not name one)")
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["ok"] = _read_chain(network, netuid, hotkey)
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            box["err"] = f"{type(exc).__name__}: {exc}"

    t = threading.Thread(target=work, name="status-chain", daemon=True)
    t.start()
    t.join(timeout_s)
    if "ok" in box:
        return box["ok"]
    why = box.get("err") or f"no answer within {timeout_s:g}s"
    return ChainStatus(network=network, netuid=netuid, reachable=False, error=f"chain unreachable: {why}")


def _read_chain(network: str, netuid: int, hotkey: str | None) -> ChainStatus:
    from subnet.chain import make_subtensor
    from subnet.node.chain import ChainView, lead_validator
    from subnet.protocol.windows import WindowParams

    sub = make_subtensor(network)
    try:
        view = ChainView(sub, netuid, WindowParams(window_blocks=1))
        mg = view.metagraph()
        block = view.block()
        peers = view.peers(mg)
        me = next((p for p in peers if hotkey and p.hotkey == hotkey), None)
        neuron = next((n for n in mg.neurons if me is not None and n.uid == me.uid), None)
        lead = lead_validator(peers)
        pending = None
        if hotkey:
            try:
                pending = sum(1 for c in view.timelocked_commits() if c.get("hotkey") == hotkey)
            except Exception:  # noqa: BLE001 - a chain without commit-reveal storage
                pending = None
        return ChainStatus(
            network=network, netuid=netuid, reachable=True, block=block, neurons=len(peers),
            uid=me.uid if me else None, registered=(me is not None) if hotkey else None,
            stake=me.stake if me else None, validator_permit=me.validator_permit if me else None,
            incentive=float(neuron.incentive or 0.0) if neuron is not None else None,
            dividends=float(neuron.dividends or 0.0) if neuron is not None else None,
            last_update=me.last_update if me else None, committed_location=me.location if me else None,
            lead=None if lead is None else {"uid": lead.uid, "hotkey": lead.hotkey, "stake": lead.stake,
                                            "location": lead.location, "is_self": lead.hotkey == hotkey},
            pending_commits_on_chain=pending)
    finally:
        close = getattr(sub, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing must not hide the answer
                pass


# -- the whole -----------------------------------------------------------------------------------------


def detect_role(state_dir: Path) -> str:
    if (state_dir / VALIDATOR_STATE).is_file():
        return "validator"
    if (state_dir / MINER_STATE).is_file():
        return "miner"
    return "unknown"


def collect_status(state_dir: str | os.PathLike[str], *, events_dir: str | os.PathLike[str] | None = None,
                   network: str | None = None, netuid: int | None = None, store_location: str | None = None,
                   with_hash: bool = True, chain_timeout_s: float = 30.0) -> NodeStatus:
    """The status of the node whose state is in `state_dir` (events default to `<state_dir>/events`)."""
    sd = Path(state_dir).expanduser()
    ev_dir = Path(events_dir).expanduser() if events_dir else (sd / "events" if (sd / "events").is_dir() else None)
    role = detect_role(sd)
    problems: list[str] = []
    local: dict[str, Any] = {}
    if role == "validator":
        local = _validator_local(sd, problems)
    elif role == "miner":
        local = _miner_local(sd, problems)
    elif not sd.is_dir():
        problems.append(f"state directory {sd} does not exist")
    else:
        problems.append(f"no {VALIDATOR_STATE} or {MINER_STATE} in {sd}: not a node's state directory (yet)")
    identity = local.pop("identity", {}) or {}
    hotkey = identity.get("hotkey")
    netuid = netuid if netuid is not None else _int(identity.get("netuid"))
    events = node_events(ev_dir, role, hotkey)
    last_ev = events[-1] if events else None
    uid = next((_int(e.get("uid")) for e in reversed(events) if e.get("uid") is not None), None)
    model = model_status(sd, with_hash=with_hash) if sd.is_dir() else None
    if model is not None and model.error:
        problems.append(f"model file unreadable: {model.error}")
    _event_details(role, events, local)
    chain = chain_status(network, netuid, hotkey, chain_timeout_s) if network else None
    if chain is not None and not chain.reachable:
        problems.append(chain.error or "chain unreachable")
    if chain is not None and chain.reachable and chain.registered is False:
        problems.append(f"hotkey {hotkey} is not registered on netuid {netuid}")
    lead = chain.lead if chain is not None and chain.reachable else _lead_from_events(role, events)
    return NodeStatus(
        role=role, state_dir=str(sd), events_dir=None if ev_dir is None else str(ev_dir), identity=identity,
        uid=chain.uid if chain is not None and chain.uid is not None else uid, hotkey=hotkey,
        events=len(events),
        last_event=None if last_ev is None else {"event": last_ev.get("event"), "ts": last_ev.get("ts")},
        model=model, lead=lead, store=store_usage(sd, ev_dir, store_location, netuid), chain=chain,
        peers=peer_table(events) if role == "validator" else [], problems=problems, **local)


def _validator_local(sd: Path, problems: list[str]) -> dict[str, Any]:
    from subnet.validator.state import ValidatorState

    try:
        st = ValidatorState.from_json((sd / VALIDATOR_STATE).read_text())
    except Exception as exc:  # noqa: BLE001 - ConfigError or OSError: report it
        problems.append(f"{VALIDATOR_STATE} unreadable: {exc}")
        return {}
    comp = st.competition
    return {
        "identity": dict(st.identity),
        "last_window": st.last_scored_window if st.last_scored_window >= 0 else None,
        "last_window_kind": "scored",
        "competition": {"round": comp.round, "leader": comp.leader, "leader_since": comp.leader_since,
                        "players": len(comp.players)},
        "weights": WeightsStatus(last_block=st.last_weights_block if st.last_weights_block >= 0 else None,
                                 windows_since=st.weights_windows, pending_commit=st.pending_commit),
    }


def _miner_local(sd: Path, problems: list[str]) -> dict[str, Any]:
    from subnet.miner.state import MinerState

    try:
        st = MinerState.load(sd)
    except Exception as exc:  # noqa: BLE001 - MinerStateError: report it
        problems.append(f"{MINER_STATE} unreadable: {exc}")
        return {}
    return {
        "identity": dict(st.identity),
        "last_window": st.last_window_uploaded if st.last_window_uploaded >= 0 else None,
        "last_window_kind": "trained",
        "miner": {"step": st.step, "version": st.version, "last_manifest_window": st.last_manifest_window},
    }


def _lead_from_events(role: str, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Without the chain, the events know the lead only if this validator led (it published manifests)."""
    manifest = _last(events, "manifest_published") if role == "validator" else None
    if manifest is None:
        return None
    return {"uid": manifest.get("uid"), "hotkey": manifest.get("hotkey"), "is_self": True,
            "source": f"events: this node published the manifest of window {manifest.get('window')}"}


def _event_details(role: str, events: list[dict[str, Any]], local: dict[str, Any]) -> None:
    """Fill what only the events know: the weights outcomes (validator), the uploads (miner)."""
    if role == "validator" and "weights" in local:
        w: WeightsStatus = local["weights"]
        local["weights"] = WeightsStatus(last_block=w.last_block, windows_since=w.windows_since,
                                         pending_commit=w.pending_commit,
                                         last_call=_weights_call(_last(events, "weights_set")),
                                         last_reveal=_weights_call(_last(events, "weights_revealed")))
    if role == "miner" and "miner" in local:
        ups = [e for e in events if e.get("event") == "uploaded"]
        last = ups[-1] if ups else None
        local["miner"] = {**local["miner"], "uploads": len(ups),
                          "late": sum(1 for e in events if e.get("event") == "late"),
                          "syncs": sum(1 for e in events if e.get("event") == "synced"),
                          "last_upload": None if last is None else {k: last.get(k) for k in
                                                                    ("window", "fragment", "bytes", "base_version",
                                                                     "loss_first", "loss_last", "ts")}}
