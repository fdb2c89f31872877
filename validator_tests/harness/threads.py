"""Run one script under several torch thread counts: the bit-identity check consensus code must pass.

The script gets the thread count as argv[1] (it calls torch.set_num_threads
itself) and prints one digest; a fresh process per count, so no thread pool
state carries over.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def digests_across_thread_counts(script: str, counts: Sequence[int] = (1, 2), timeout_s: float = 120) -> list[str]:
    """The stripped stdout of `script` for each thread count (asserts each run exited 0)."""
    outs = []
    for threads in counts:
        r = subprocess.run([sys.executable, "-c", script, str(threads)], capture_output=True, text=True,
                           timeout=timeout_s, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.strip())
    return outs
