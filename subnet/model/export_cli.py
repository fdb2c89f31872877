"""`tessera export --hf DIR`: the node's current global model as a Hugging Face model folder.

    tessera export --hf ./tessera-small --state_dir ~/.tessera/validator --model.preset small
    tessera export --hf ./tessera-small --state_dir STATE_DIR --model.preset small --push-to-hub me/tessera-small

Flags come from `ExportCommand` (each is also an environment variable:
`--hf` <- TESSERA_HF, `--model.preset` <- TESSERA_MODEL_PRESET); `--push-to-hub`
is accepted as a spelling of `--push_to_hub`. The upload uses the Hub token
of `HF_TOKEN` or `hf auth login`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Literal

_EPILOG = ("Every flag can also be set by environment variable: TESSERA_ + the flag name upper-cased with dots as "
           "underscores (--hf <- TESSERA_HF, --model.preset <- TESSERA_MODEL_PRESET, --data.cache_dir <- "
           "TESSERA_CACHE_DIR).")


@dataclass(frozen=True, kw_only=True)
class ExportModel:
    """Which preset the node trains (its --model.preset)."""

    preset: str = "tiny"
    """Model preset name (tiny, small, 125m, 1b, 8b): must be the node's."""


@dataclass(frozen=True, kw_only=True)
class ExportData:
    """Where the embedded tokenizer is cached."""

    cache_dir: str | None = None
    """Cache with tokenizer/bpe-<vocab>.json (default $TESSERA_CACHE_DIR or ~/.cache/tessera; trained if absent)."""


@dataclass(frozen=True, kw_only=True)
class ExportCommand:
    """Root of the `tessera export` flags."""

    hf: str
    """Output directory of the Hugging Face model folder (new, empty, or an earlier export, which is replaced)."""
    state_dir: str = "~/.tessera/validator"
    """The node's --state_dir, holding global_model.safetensors."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weight dtype of the export (float32: logits identical to the node's)."""
    push_to_hub: str | None = None
    """Also upload the folder to this Hub model repo (owner/name); none: local only."""
    hub_private: bool = False
    """Create the Hub repo as private."""
    json: bool = False
    """Print what was written as JSON."""
    model: ExportModel = field(default_factory=ExportModel)
    data: ExportData = field(default_factory=ExportData)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from subnet.config import add_dataclass_flags

    parser.epilog = _EPILOG
    add_dataclass_flags(parser, ExportCommand)
    # The spelling; the dataclass flag (--push_to_hub, TESSERA_PUSH_TO_HUB) stays the documented one.
    parser.add_argument("--push-to-hub", dest="push_to_hub", default=argparse.SUPPRESS, metavar="REPO",
                        help="same as --push_to_hub")
    parser.set_defaults(export_parser=parser)


def run(args: argparse.Namespace) -> int:
    from loguru import logger

    from subnet.config import config_from_args
    from subnet.errors import SubnetError
    from subnet.model.export import export_hf, push_to_hub

    cmd = config_from_args(ExportCommand, args, parser=getattr(args, "export_parser", None))
    try:
        result = export_hf(cmd.state_dir, cmd.hf, cmd.model.preset, cache_dir=cmd.data.cache_dir, dtype=cmd.dtype)
        url = push_to_hub(result.dir, cmd.push_to_hub, private=cmd.hub_private) if cmd.push_to_hub else None
    except SubnetError as exc:
        logger.error("export failed: {}", exc)
        return 1
    if cmd.json:
        print(json.dumps({**asdict(result), "hub_url": url}, indent=2))
    else:
        print(f"exported {result.preset} version {result.version} (model hash {result.model_hash[:16]}..., "
              f"{result.dtype}) to {result.dir}")
        print(f"files: {', '.join(result.files)}")
        if url:
            print(f"pushed to {url}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    _p = argparse.ArgumentParser(prog="tessera export")
    add_arguments(_p)
    sys.exit(run(_p.parse_args()))
