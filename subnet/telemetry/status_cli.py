"""`tessera status`: a production node's standing as a table (rich) or as JSON (`--json`).

    tessera status --state_dir ~/.tessera/validator
    tessera status --state_dir ~/.tessera/validator --subtensor.network finney --netuid N --json

Flags come from `StatusCommand`, so each is also an environment variable
(`--state_dir` <- TESSERA_STATE_DIR, `--subtensor.network` <-
TESSERA_SUBTENSOR_NETWORK): a shell set up for the neuron needs no flags.
Exit status 0 when the state directory holds a node's state, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from subnet.telemetry.status import NodeStatus, collect_status

_EPILOG = ("Every flag can also be set by environment variable: TESSERA_ + the flag name upper-cased with dots as "
           "underscores (--state_dir <- TESSERA_STATE_DIR, --subtensor.network <- TESSERA_SUBTENSOR_NETWORK).")


@dataclass(frozen=True, kw_only=True)
class StatusChain:
    """The chain to read (optional)."""

    network: str | None = None
    """finney | test | local | ws://host:port | devnet+ws://...; none: local state only."""
    timeout_s: float = 30.0
    """Longest wait for the chain; past it the chain is reported unreachable and the local part shown."""


@dataclass(frozen=True, kw_only=True)
class StatusStore:
    """The node's own artifact store (optional)."""

    location: str | None = None
    """The node's --store.location, to report what it holds; none: not read."""


@dataclass(frozen=True, kw_only=True)
class StatusTelemetry:
    """Where the node's event log is."""

    dir: str | None = None
    """The node's --telemetry.dir; none: <state_dir>/events when it exists."""


@dataclass(frozen=True, kw_only=True)
class StatusCommand:
    """Root of the `tessera status` flags."""

    state_dir: str
    """The node's --state_dir (validator_state.json or miner_state.safetensors, global_model.safetensors)."""
    netuid: int | None = None
    """Subnet id for the chain part; none: the one the state directory records."""
    json: bool = False
    """Print JSON instead of tables."""
    hash: bool = True
    """Hash the model file (reads all of it: seconds for small presets, minutes for 8b)."""
    subtensor: StatusChain = field(default_factory=StatusChain)
    telemetry: StatusTelemetry = field(default_factory=StatusTelemetry)
    store: StatusStore = field(default_factory=StatusStore)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from subnet.config import add_dataclass_flags

    parser.epilog = _EPILOG
    add_dataclass_flags(parser, StatusCommand)
    parser.set_defaults(status_parser=parser)


def run(args: argparse.Namespace) -> int:
    from subnet.config import config_from_args

    cmd = config_from_args(StatusCommand, args, parser=getattr(args, "status_parser", None))
    status = collect_status(cmd.state_dir, events_dir=cmd.telemetry.dir, network=cmd.subtensor.network,
                            netuid=cmd.netuid, store_location=cmd.store.location, with_hash=cmd.hash,
                            chain_timeout_s=cmd.subtensor.timeout_s)
    if cmd.json:
        print(json.dumps(status.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        from rich.console import Console

        render(status, Console())
    return 0 if status.role != "unknown" else 1


# -- tables -----------------------------------------------------------------------------------------------


def _v(x: Any, fmt: str | None = None) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if fmt and isinstance(x, (int, float)):
        return fmt.format(x)
    return str(x)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _ago(ts: Any, now: float) -> str:
    if not isinstance(ts, (int, float)):
        return "-"
    secs = max(0.0, now - float(ts))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n:
            return f"{secs / n:.1f}{unit} ago"
    return f"{secs:.0f}s ago"


def _weights_line(call: dict[str, Any] | None, now: float) -> str:
    if not call:
        return "-"
    text = f"{call.get('outcome') or ('ok' if call.get('success') else 'failed')} at block {_v(call.get('block'))}"
    if call.get("error"):
        text += f": {call['error']}"
    return f"{text} ({_ago(call.get('ts'), now)})"


def rows(status: NodeStatus, now: float | None = None) -> list[tuple[str, str]]:
    """The key/value lines of the summary table (also what tests read)."""
    now = time.time() if now is None else now
    s = status
    out: list[tuple[str, str]] = [
        ("role", s.role),
        ("state dir", s.state_dir),
        ("uid / hotkey", f"{_v(s.uid)} / {_v(s.hotkey)}"),
        ("netuid / preset", f"{_v(s.identity.get('netuid'))} / {_v(s.identity.get('preset'))}"),
        (f"last window {s.last_window_kind or ''}".strip(), _v(s.last_window)),
        ("last event", "-" if not s.last_event else f"{s.last_event['event']} ({_ago(s.last_event.get('ts'), now)})"),
    ]
    m = s.model
    if m is not None:
        out += [("model version", "not persisted yet" if not m.present else _v(m.version)),
                ("model hash", _v(m.model_hash) if not m.error else f"unreadable: {m.error}")]
    lead = s.lead
    if lead:
        who = f"uid {_v(lead.get('uid'))} {_v(lead.get('hotkey'))}" + (" (this node)" if lead.get("is_self") else "")
    elif s.chain is not None and s.chain.reachable:
        who = "none (no permitted validator with stake and a committed store)"
    else:
        who = "unknown (the chain names it: --subtensor.network)"
    out.append(("lead validator", who))
    if s.competition:
        c = s.competition
        out.append(("competition", f"round {c['round']}, leader uid {_v(c['leader'])}, {c['players']} players"))
    if s.weights is not None:
        w = s.weights
        pending = w.pending_commit
        out += [("last weights block", _v(w.last_block)),
                ("last weights call", _weights_line(w.last_call, now)),
                ("pending reveal", "none" if not pending else
                 f"commit at block {pending.get('commit_block')}, drand round {_v(pending.get('reveal_round'))}, "
                 f"deadline block {_v(pending.get('deadline_block'))}"),
                ("last reveal", _weights_line(w.last_reveal, now))]
    if s.miner:
        mi = s.miner
        up = mi.get("last_upload") or {}
        out += [("uploads / late", f"{_v(mi.get('uploads'))} / {_v(mi.get('late'))}"),
                ("inner steps", _v(mi.get("step"))),
                ("last upload", "-" if not up else f"window {up.get('window')} fragment {up.get('fragment')}, "
                 f"{_bytes(up.get('bytes'))}, loss {_v(up.get('loss_first'), '{:.4f}')} -> "
                 f"{_v(up.get('loss_last'), '{:.4f}')}")]
    st = s.store
    out += [("state dir usage", _bytes(st.state_dir_bytes)),
            ("evidence", f"{st.evidence_pins} pins over {st.evidence_windows} windows, {_bytes(st.evidence_bytes)}"),
            ("event log", f"{s.events} events, {_bytes(st.events_bytes)} in {_v(s.events_dir)}")]
    if st.store_location:
        out.append(("own store", f"{st.store_error}" if st.store_error and st.store_objects is None else
                    f"{_v(st.store_objects)} objects, {_bytes(st.store_bytes)} at {st.store_location}"))
    ch = s.chain
    if ch is not None:
        if not ch.reachable:
            out.append(("chain", f"{ch.network}: {ch.error}"))
        else:
            out += [("chain", f"{ch.network} block {ch.block}, netuid {ch.netuid}: {ch.neurons} neurons"),
                    ("on chain", f"uid {_v(ch.uid)}, stake {_v(ch.stake, '{:.3f}')}, permit {_v(ch.validator_permit)}, "
                     f"incentive {_v(ch.incentive, '{:.4f}')}, last update {_v(ch.last_update)}")]
            if ch.pending_commits_on_chain is not None:
                out.append(("commits on chain", _v(ch.pending_commits_on_chain)))
    return out


def render(status: NodeStatus, console: Any) -> None:
    """Summary table, peer table (validators), then problems."""
    from rich.table import Table

    summary = Table(title=f"tessera status: {status.role}", show_header=False, title_justify="left")
    summary.add_column("what", style="bold")
    summary.add_column("value")
    for key, value in rows(status):
        summary.add_row(key, value)
    console.print(summary)
    if status.peers:
        peers = Table(title="peers seen (window_scored events)", title_justify="left")
        for col in ("uid", "windows", "outcomes", "last window", "last score", "ordinal", "weight", "last reason"):
            peers.add_column(col, justify="right" if col not in ("outcomes", "last reason") else "left")
        for p in status.peers:
            outcomes = ", ".join(f"{k} {n}" for k, n in sorted(p.outcomes.items(), key=lambda kv: -kv[1]))
            peers.add_row(str(p.uid), str(p.windows), outcomes, _v(p.last_window), _v(p.last_score, "{:.4g}"),
                          _v(p.ordinal, "{:.2f}"), _v(p.weight, "{:.3f}"), _v(p.last_reason)[:60])
        console.print(peers)
    for problem in status.problems:
        console.print(f"[bold red]problem:[/] {problem}")


if __name__ == "__main__":  # pragma: no cover
    _p = argparse.ArgumentParser(prog="tessera status")
    add_arguments(_p)
    sys.exit(run(_p.parse_args()))
