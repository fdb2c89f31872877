"""`tessera` console script: one entry point, each command group owned by its package.

Groups register themselves lazily so `tessera devnet status` does not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# group name -> (module, help). Each module exposes `add_arguments(parser)` and `run(args) -> int`.
GROUPS: dict[str, tuple[str, str]] = {
    "devnet": ("subnet.devnet.cli", "run and manage the local subtensor-semantics devnet"),
    "data": ("subnet.data.cli", "fetch, verify and tokenize the embedded corpus"),
    "demo": ("subnet.demo", "devnet + validator + miners with a live scoreboard"),
    "status": ("subnet.telemetry.status_cli", "a node's state: windows, model, weights, peers, store, chain"),
    "export": ("subnet.model.export_cli", "write the node's global model as a Hugging Face model folder"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="tessera", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="group", required=True)
    if argv and argv[0] in GROUPS:
        # Import only the group asked for.
        names = [argv[0]]
    else:
        names = list(GROUPS)
    modules = {}
    for name in GROUPS:
        mod_name, help_text = GROUPS[name]
        p = sub.add_parser(name, help=help_text)
        if name in names:
            try:
                modules[name] = importlib.import_module(mod_name)
            except ImportError as exc:  # pragma: no cover - clear message for broken installs
                parser.error(f"cannot load command group {name!r}: {exc}")
            modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    return int(modules[args.group].run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
