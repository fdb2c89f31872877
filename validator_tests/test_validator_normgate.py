"""The norm gate (subnet/validator/pipeline.py `norm_gate`): nobody else's upload can zero an honest one.

The gate's yardstick is a per-fragment reference norm that only positively
scored updates move, each by what it improved (`update_ref_norms`), so noise,
zero, tiny or newcomer uploads beside an honest miner change nothing for it,
while a scaled-up update is still zeroed. These drive the pipeline's stage
functions on plain `Submission` values (validator_tests/test_validator_pipeline*.py
run the whole pipeline on a real model).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.validator.pipeline import cold_norm_gate, norm_gate, update_ref_norms
from subnet.validator.state import ValidatorState
from subnet.validator.submission import Outcome, Submission

LIMIT = 4.0  # ValidatorOptions.norm_outlier's default


def _upload(uid: int, norm: float, fragment: int = 0) -> Submission:
    return Submission(uid=uid, hotkey=f"hk{uid}", fragment=fragment, outcome=Outcome.VERIFIED, reason="verified",
                      detail={"norm": norm}, sparse=())


def _scored(s: Submission, score: float) -> Submission:
    outcome = Outcome.SCORED if score > 0 else Outcome.NO_IMPROVEMENT
    return s.judged(outcome, "ok" if score > 0 else "no held-out improvement", score=score, keep_update=True)


@settings(max_examples=300, deadline=None)
@given(honest=st.floats(0.5, 2.0), others=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=5))
def test_small_uploads_beside_an_honest_miner_never_zero_it(honest: float, others: list[float]) -> None:
    """1 to 5 lazy, zero or tiny uploads in the cohort: the honest update (norm 0.5-2x the reference) stands."""
    results = norm_gate([_upload(1, honest)] + [_upload(10 + i, n) for i, n in enumerate(others)], {0: 1.0}, LIMIT)
    assert results[0].pending and results[0].score is None, results[0].reason


@settings(max_examples=100, deadline=None)
@given(lazy=st.lists(st.floats(0.0, 0.05), min_size=1, max_size=5), windows=st.integers(1, 20))
def test_uploads_that_earn_nothing_never_move_the_reference(lazy: list[float], windows: int) -> None:
    refs = {0: 1.0}
    for _ in range(windows):
        # scored nothing (no held-out improvement, below the floor, no proof of work)
        refs = update_ref_norms([_scored(_upload(10 + i, n), 0.0) for i, n in enumerate(lazy)], refs)
    assert refs[0] == 1.0


@settings(max_examples=100, deadline=None)
@given(tiny=st.lists(st.tuples(st.floats(1e-4, 0.2), st.floats(1e-4, 0.01)), min_size=1, max_size=8),
       windows=st.integers(1, 20))
def test_tiny_positive_uploads_cannot_drag_the_reference_down(tiny: list[tuple[float, float]], windows: int) -> None:
    """Many small updates that improve a little (score <= 1% of the honest one's) weigh what they improve."""
    refs = {0: 1.0}
    for _ in range(windows):
        cohort = [_scored(_upload(1, 1.0), 1.0)] + [_scored(_upload(10 + i, n), s) for i, (n, s) in enumerate(tiny)]
        refs = update_ref_norms(cohort, refs)
    assert refs[0] == 1.0
    assert norm_gate([_upload(1, 1.0)], refs, LIMIT)[0].pending


def test_a_scaled_update_is_still_zeroed_and_an_honest_newcomer_is_not_a_veterans_yardstick() -> None:
    veteran, newcomer, scaled = norm_gate([_upload(1, 5.1), _upload(2, 0.97), _upload(3, 51.0)], {0: 5.0}, LIMIT)
    assert veteran.pending and newcomer.pending
    assert scaled.outcome is Outcome.NORM_OUTLIER and scaled.artifact is None and scaled.score == 0.0
    assert scaled.reason.startswith("norm outlier")
    # before any reference exists the gate waits for the evaluation, then measures against the window's
    # positively scored updates, each weighing what it improved (cold start)
    a, b = norm_gate([_upload(1, 1.0), _upload(2, 10.0)], {}, LIMIT)
    assert a.pending and b.pending
    a, b, tiny = cold_norm_gate([_scored(a, 0.02), _scored(b, 0.015), _scored(_upload(3, 0.01), 0.002)], {}, LIMIT)
    assert a.outcome is Outcome.SCORED and tiny.outcome is Outcome.SCORED
    assert b.outcome is Outcome.NORM_OUTLIER, b.reason


def test_the_reference_follows_positively_scored_updates_and_persists(tmp_path) -> None:
    rs = [_scored(_upload(1, 2.0), 0.1), _scored(_upload(2, 4.0), 0.1), _scored(_upload(3, 100.0), 0.0)]
    refs = update_ref_norms(rs, {})
    assert refs == {0: 2.0}  # lower median of the positives (equal scores): the zero-scored giant is not counted
    state = ValidatorState(ref_norms=refs)
    state.save(tmp_path)
    assert ValidatorState.load(tmp_path, {}).ref_norms == {0: 2.0}
    # each update weighs its score: the one doing most of the work sets the yardstick, not the count
    assert update_ref_norms([_scored(_upload(1, 2.0), 0.01), _scored(_upload(2, 4.0), 0.1),
                             _scored(_upload(3, 1.0), 0.01)], {}) == {0: 4.0}
