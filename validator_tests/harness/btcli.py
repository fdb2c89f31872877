"""Run the pinned SDK's `btcli` the way an operator's script would: no stdin, `--json`, against a devnet URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BTCLI = Path(sys.executable).with_name("btcli")


def run_btcli(url: str, tmp: Path, *args: str, timeout_s: float = 120) -> Any:
    """`btcli ARGS --json` with wallets under `tmp/wallets`, its home and runtime cache under `tmp`; output parsed.

    No fallback or archive endpoints, so every call goes to `url`; a non-zero
    exit fails the test with btcli's own output.
    """
    env = {**os.environ, "HOME": str(tmp / "home"), "BT_NETWORK": url, "BT_WALLET_PATH": str(tmp / "wallets"),
           "BT_FALLBACK_ENDPOINTS": "none", "BT_ARCHIVE_ENDPOINTS": "none",
           "BITTENSOR_RUNTIME_CACHE_DIR": str(tmp / "runtime-cache"), "NO_COLOR": "1"}
    proc = subprocess.run([str(BTCLI), *args, "--json"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout_s)
    assert proc.returncode == 0, f"btcli {' '.join(args)}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)
