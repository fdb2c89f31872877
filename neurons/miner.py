"""Tessera miner entry point: parse flags, build, run, close.

    python neurons/miner.py --netuid 1 --wallet.name miner --wallet.hotkey default \
        --subtensor.network finney --store.location s3://bucket/tessera?endpoint=...

Every flag is also an environment variable (`--wallet.name` <- TESSERA_WALLET_NAME).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from loguru import logger  # noqa: E402

from subnet.config import parse_config, setup_logging  # noqa: E402
from subnet.errors import SubnetError  # noqa: E402
from subnet.node.config import MinerNeuronConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(MinerNeuronConfig, argv, prog="neurons/miner.py")
    setup_logging(cfg.logging, "miner")
    from subnet.miner.loop import Miner
    from subnet.node.runtime import NodeRuntime

    try:
        miner = Miner(NodeRuntime.build(cfg, "miner"))
    except SubnetError as exc:
        logger.error("cannot start the miner: {}", exc)
        return 1
    try:
        miner.run()
    except KeyboardInterrupt:
        logger.info("interrupted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
