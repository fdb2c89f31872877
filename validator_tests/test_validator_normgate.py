"""The norm gate (subnet/validator/loop.py `_gate_norm_outliers`): nobody else's upload can zero an honest one.

The gate's yardstick is a per-fragment reference norm that only positively
scored updates move (`_update_ref_norms`), so noise, zero, tiny or newcomer
uploads beside an honest miner change nothing for it, while a scaled-up update
is still zeroed. These drive the validator's own methods on plain values.
"""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.node.config import ValidatorOptions
from subnet.validator.intake import Scored
from subnet.validator.loop import Validator
from subnet.validator.state import ValidatorState


def _validator(ref_norms: dict[int, float] | None = None) -> Validator:
    v = Validator.__new__(Validator)  # the methods under test read only cfg.validator and state
    v.cfg = SimpleNamespace(validator=ValidatorOptions())
    v.state = ValidatorState(ref_norms=dict(ref_norms or {}))
    return v


def _upload(uid: int, norm: float, fragment: int = 0) -> Scored:
    return Scored(uid=uid, hotkey=f"hk{uid}", fragment=fragment, score=None, reason="", detail={"norm": norm},
                  artifact=object())  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(honest=st.floats(0.5, 2.0), others=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=5))
def test_small_uploads_beside_an_honest_miner_never_zero_it(honest: float, others: list[float]) -> None:
    """1 to 5 lazy, zero or tiny uploads in the cohort: the honest update (norm 0.5-2x the reference) stands."""
    v = _validator({0: 1.0})
    results = [_upload(1, honest)] + [_upload(10 + i, n) for i, n in enumerate(others)]
    v._gate_norm_outliers(results)
    assert results[0].artifact is not None and results[0].score is None, results[0].reason


@settings(max_examples=100, deadline=None)
@given(lazy=st.lists(st.floats(0.0, 0.05), min_size=1, max_size=5), windows=st.integers(1, 20))
def test_uploads_that_earn_nothing_never_move_the_reference(lazy: list[float], windows: int) -> None:
    v = _validator({0: 1.0})
    for _ in range(windows):
        results = [_upload(10 + i, n) for i, n in enumerate(lazy)]
        for r in results:
            r.score = 0.0  # scored nothing (no held-out improvement, below the floor, no proof of work)
        v._update_ref_norms(results)
    assert v.state.ref_norms[0] == 1.0


def test_a_scaled_update_is_still_zeroed_and_an_honest_newcomer_is_not_a_veterans_yardstick() -> None:
    v = _validator({0: 5.0})  # veterans' updates measure about 5
    veteran, newcomer, scaled = _upload(1, 5.1), _upload(2, 0.97), _upload(3, 51.0)
    v._gate_norm_outliers([veteran, newcomer, scaled])
    assert veteran.artifact is not None and newcomer.artifact is not None
    assert scaled.artifact is None and scaled.reason.startswith("norm outlier")
    # before any reference exists the gate falls back to this window's cohort (cold start)
    cold = _validator()
    a, b = _upload(1, 1.0), _upload(2, 10.0)
    cold._gate_norm_outliers([a, b])
    assert a.artifact is not None and b.artifact is None


def test_the_reference_follows_positively_scored_updates_and_persists(tmp_path) -> None:
    v = _validator()
    rs = [_upload(1, 2.0), _upload(2, 4.0), _upload(3, 100.0)]
    rs[0].score, rs[1].score, rs[2].score = 0.1, 0.2, 0.0
    v._update_ref_norms(rs)
    assert v.state.ref_norms == {0: 2.0}  # lower median of the positives: one outsized winner cannot lift it
    v.state.save(tmp_path)
    assert ValidatorState.load(tmp_path, {}).ref_norms == {0: 2.0}
