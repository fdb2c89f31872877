"""kill -9 at random instants (a few trials; bench/kill9.py runs 20+ of each).

Real processes, real SIGKILL: a child saving MinerState / ValidatorState or
putting signed artifacts into a LocalDirStore in a loop, and a devnet process
killed while this process submits transfers through the bittensor SDK. After
each kill the persisted state must be complete (old or new version, or absent
before the first write), never torn; the devnet must keep every block and
transfer it reported and apply none twice.
"""

from __future__ import annotations

import random

import pytest
import torch
from harness.bench import load_bench

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def k9():
    return load_bench("kill9")


def test_miner_state_save_killed_loads_complete(k9, tmp_path) -> None:
    r = k9.trial_miner(tmp_path, random.Random(100), max_delay_s=1.0)
    assert r.ok, (r.outcome, r.detail)


@pytest.mark.parametrize("trial", [0, 1])
def test_validator_state_save_killed_loads_complete(k9, tmp_path, trial) -> None:
    r = k9.trial_validator(tmp_path, random.Random(200 + trial), max_delay_s=0.8)
    assert r.ok, (r.outcome, r.detail)


def test_local_store_put_killed_is_absent_or_complete(k9, tmp_path) -> None:
    arts = k9.artifacts()
    rng = random.Random(300)
    results = [k9.trial_put(tmp_path / str(t), rng, max_delay_s=1.5, arts=arts) for t in range(1)]
    assert all(r.ok for r in results), [(r.outcome, r.detail) for r in results]


def test_torn_state_is_detected_by_the_check(k9, tmp_path) -> None:
    """The trial's check can fail: a state file cut short (what a non-atomic save would leave) is reported."""
    from subnet.miner.state import STATE_FILE, MinerState

    MinerState(step=3, version=3, last_window_uploaded=3, ef={"w": torch.full((4, 4), 3.0), "b": torch.ones(4) * 3},
               identity={"hotkey": "k"}).save(tmp_path)
    p = tmp_path / STATE_FILE
    p.write_bytes(p.read_bytes()[:-10])
    from subnet.miner.state import MinerStateError

    with pytest.raises(MinerStateError):
        MinerState.load(tmp_path, identity={"hotkey": "k"})


@pytest.mark.slow
def test_devnet_killed_during_transfers_keeps_committed_state(k9, tmp_path) -> None:
    results = k9.run_devnet_trials(2, random.Random(400), tmp_path)
    print(k9.summarize(results))
    assert all(r.ok for r in results), [(r.outcome, r.detail) for r in results]
    assert sum(r.detail["ok"] for r in results) > 0, "no transfer landed before the kills: the trial tested nothing"
