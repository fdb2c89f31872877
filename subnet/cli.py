"""`tessera` console script: one entry point, each command group owned by its package.

Groups register themselves lazily so `tessera devnet status` does not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable

# group name -> (module, help). Each module exposes `add_arguments(parser)` and `run(args) -> int`.
GROUPS: dict[str, tuple[str, str]] = {
    "devnet": ("subnet.devnet.cli", "run and manage the local subtensor-semantics devnet"),
    "data": ("subnet.data.cli", "fetch, verify and tokenize the embedded corpus"),
    "demo": ("subnet.demo", "devnet + validator + miners with a live scoreboard"),
    "status": ("subnet.telemetry.status_cli", "a node's state: windows, model, weights, peers, store, chain"),
    "export": ("subnet.model.export_cli", "write the node's global model as a Hugging Face model folder"),
    "version": ("subnet.version", "this code's version; `update`: git pull --ff-only + reinstall (auto-update)"),
    "dashboard": ("subnet.telemetry.dashboard_cli", "serve the read-only web dashboard of a node's event log"),
}


def build_parser(load: Iterable[str] | None = None) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    """The `tessera` parser with the flags of the groups in `load` (default: all) and their modules."""
    parser = argparse.ArgumentParser(prog="tessera", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="group", required=True)
    names = set(GROUPS if load is None else load)
    modules: dict[str, object] = {}
    for name, (mod_name, help_text) in GROUPS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name in names:
            try:
                modules[name] = importlib.import_module(mod_name)
            except ImportError as exc:  # pragma: no cover - clear message for broken installs
                parser.error(f"cannot load command group {name!r}: {exc}")
            modules[name].add_arguments(p)  # type: ignore[attr-defined]
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the group asked for.
    parser, modules = build_parser([argv[0]] if argv and argv[0] in GROUPS else None)
    args = parser.parse_args(argv)
    return int(modules[args.group].run(args) or 0)  # type: ignore[attr-defined]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
