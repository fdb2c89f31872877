"""An honest miner alone in a fragment cohort with five lazy or tiny-update miners, as a network run.

The demo once showed one lazy miner zeroing the honest miner beside it through
the norm gate (issue 10). Here the whole subnet is one fragment
(`--model.n_fragments 1`), so every window the honest miner shares its cohort
with all five free-riders: two noise miners (random values with a plausible
norm), a zero-update miner, and two that upload an honest update scaled down
to 1% and 0.1% (the griefing case: the smallest possible norm that still looks
like work). Real devnet, validator and miners as processes (bench/adversaries.py
`run_network`).

Asserted over every scored window in which the honest miner uploaded: it is
never zeroed (no norm-outlier or any other zero outcome), and its score is
strictly above every free-rider's; its final weight and on-chain incentive are
above each of theirs. One outcome is the honest miner's own and not its
cohort's: the sequential proof of work (subnet/validator/powevidence.py) may
hold its first window (an empty account needs t >= 4.5 at once); such a window
counts only if its held score beats every free-rider's and the credit is paid
at its next judged window (the validator's `pow_released`), or it is the last.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from adversaries import RunResult, run_network  # noqa: E402

pytestmark = pytest.mark.slow

WINDOWS = 6
LAZY = ["noise", "zero", "scaled:0.01", "noise", "scaled:0.001"]


def _neutral(reason: str) -> bool:
    """Start-up windows (store not committed yet) or nothing uploaded that window."""
    return reason.startswith("absent") or "store committed" in reason


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> RunResult:
    return run_network(tmp_path_factory.mktemp("lazy-cohort"), LAZY, honest=1, windows=WINDOWS,
                       flags={"--model.n_fragments": "1"})


def _held_then_paid(run: RunResult, uid: int, i: int) -> float | None:
    """The held score of window run.scored[i] if the sequential rule held it and paid it at the next judged window."""
    mine = run.scored[i]["scores"][str(uid)]
    held = mine.get("pow_held_score")
    if mine.get("outcome") != "no_proof_of_work" or "running evidence" not in mine["reason"] or not held:
        return None
    for later in run.scored[i + 1:]:
        nxt = later["scores"].get(str(uid))
        if nxt is None or _neutral(nxt["reason"]):
            continue
        paid = any(c["uid"] == uid for c in later.get("pow_released", []))
        return float(held) if paid else None
    return float(held)  # the last judged window: nothing after it could pay it


def test_honest_miner_is_never_zeroed_by_its_cohort(run: RunResult) -> None:
    assert run.validator_alive, "the validator died"
    (honest,) = run.honest
    judged = 0
    for i, e in enumerate(run.scored):
        mine = e["scores"].get(str(honest))
        if mine is None or _neutral(mine["reason"]):
            continue
        judged += 1
        held = _held_then_paid(run, honest, i)
        score = held if held is not None else mine["score"]
        assert score is not None and score > 0, (e["window"], mine)
        assert "outlier" not in mine["reason"], (e["window"], mine)
        for uid in run.behaviours:
            if uid == honest:
                continue
            other = e["scores"].get(str(uid))
            if other is None or other["score"] is None:
                continue
            assert score > other["score"], (e["window"], run.behaviours[uid], mine, other)
    assert judged >= WINDOWS - 2, f"the honest miner was judged in only {judged} windows: {run.reasons(honest)}"


def test_honest_miner_outranks_every_free_rider(run: RunResult) -> None:
    (honest,) = run.honest
    fw = run.final_weights()
    for uid, label in run.behaviours.items():
        if uid == honest:
            continue
        assert fw[honest] > fw[uid], (label, fw)
        assert run.incentive[honest] > run.incentive[uid], (label, run.incentive)
