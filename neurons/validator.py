"""Tessera validator entry point: parse flags, build, run, close.

    python neurons/validator.py --netuid 1 --wallet.name validator --wallet.hotkey default \
        --subtensor.network finney

Every flag is also an environment variable (`--wallet.name` <- TESSERA_WALLET_NAME).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from loguru import logger  # noqa: E402

from subnet.config import parse_config, setup_logging  # noqa: E402
from subnet.errors import SubnetError  # noqa: E402
from subnet.node.config import ValidatorNeuronConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(ValidatorNeuronConfig, argv, prog="neurons/validator.py")
    setup_logging(cfg.logging, "validator")
    from subnet.validator.loop import Validator
    from subnet.node.runtime import NodeRuntime

    try:
        node = Validator(NodeRuntime.build(cfg, "validator"))
    except SubnetError as exc:
        logger.error("cannot start the validator: {}", exc)
        return 1
    try:
        node.run()
    except KeyboardInterrupt:
        logger.info("interrupted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
