"""bench/league.py at its smallest: 2 honest miners, 2 adversary kinds, 2 windows, both twins really played.

Checks that every figure of the league table is computed from the run (the
rows the pipeline produced, the models the aggregation moved), not written
in: each is recomputed here from the raw rows and models, and moving one row
moves the figure.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import league  # noqa: E402  (bench/league.py)

from subnet.validator.scoring import mean_loss  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def played() -> league.LeagueRun:
    return league.run_twins(honest=2, windows=2, kinds=("copier", "tiny"))


def test_the_league_table_is_computed_from_the_run(played: league.LeagueRun) -> None:
    res = played.summary()
    rows = played.league.rows
    assert res["size"] == {"honest": 2, "adversaries": 2, "kinds": 2, "windows": 2}
    assert {r["kind"] for r in rows} == {"honest", "copier", "tiny"} and len(rows) == 2 * 4
    assert all(r["kind"] == "honest" for r in played.twin.rows) and len(played.twin.rows) == 2 * 2
    # emission share: mean over windows of the adversaries' summed weights, from the pipeline's weights
    by_window = [sum(r["weight"] for r in rows if r["window"] == w and r["kind"] != "honest") for w in range(2)]
    assert res["adversary_emission_share"] == pytest.approx(statistics.fmean(by_window))
    assert res["kinds"]["copier"]["outcomes"] == ["copy"] and res["kinds"]["copier"]["emission_share"] == 0.0
    assert res["kinds"]["tiny"]["aggregated"] == 0
    # honest scores and zeroed counts, from both twins' rows
    honest = [r for r in rows if r["kind"] == "honest"]
    assert res["honest_zeroed"]["of"] == len(honest) == 4
    assert res["honest_zeroed"]["league"] == sum(r["outcome"] != "scored" for r in honest)
    assert res["honest_mean_score"]["league"] == pytest.approx(statistics.fmean(float(r["score"] or 0) for r in honest))
    # held-out loss: the twins' models as the aggregation left them
    for twin in (played.league, played.twin):
        assert len(twin.losses) == 2
        assert twin.losses[-1] == pytest.approx(mean_loss(twin.world.gm.model, league._eval_batches(twin.world)))
    assert res["heldout_loss"]["final_delta"] == pytest.approx(played.league.losses[-1] - played.twin.losses[-1])
    # the margin of the partial-copy rule, measured over the honest pair each window (both orders)
    assert res["honest_pair_share"]["pairs"] == 2 * 2 and 0 < res["honest_pair_share"]["max"] < 0.25
    md = league.markdown(res, 1.0, "test")
    assert f"{res['adversary_emission_share']:.3f}" in md and "| copier | 1 | 0.000 | 0 | copy |" in md


def test_moving_one_row_moves_the_figures(played: league.LeagueRun) -> None:
    res = played.summary()
    rows = [dict(r) for r in played.league.rows]
    copier = next(r for r in rows if r["kind"] == "copier" and r["window"] == 1)
    copier["weight"] = 0.5
    honest = next(r for r in rows if r["kind"] == "honest" and r["outcome"] == "scored") if any(
        r["kind"] == "honest" and r["outcome"] == "scored" for r in rows) else None
    if honest is not None:
        honest["outcome"] = "norm_outlier"
    moved = dataclasses.replace(played, league=dataclasses.replace(played.league, rows=rows)).summary()
    assert moved["adversary_emission_share"] == pytest.approx(res["adversary_emission_share"] + 0.25)
    if honest is not None:
        assert moved["honest_zeroed"]["league"] == res["honest_zeroed"]["league"] + 1
