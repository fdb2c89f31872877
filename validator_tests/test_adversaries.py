"""Adversarial miners on a live network: the validator survives them and pays them nothing.

Two network runs (devnet + validator + 2 honest miners + adversaries, all as
processes, the fast flags of harness/network.py, 7 scored windows each),
driven by bench/adversaries.py's `run_network`:

- broken/forged files (nan, truncated, oversized, wrong_shape, bad_index,
  pickle, lying_header, impersonate, steal_key, replay, late, zero);
- quality attacks and free-riders (scaled x100, sign_flip, noise,
  copier_noisy, two sybils sharing one operator store).

For every adversary: the validator process stays alive and scores every
window; the adversary's weight in the validator's last `window_scored` event
and its on-chain incentive after a Yuma epoch are 0 (quality attacks:
strictly below every honest miner's, which must be > 0); it is never
selected into a manifest (a scaled-up update is a norm outlier in its
fragment cohort); broken files carry their expected rejection reason
(subnet.adversary.behaviours.EXPECTED_OUTCOME) in enough windows to show the
attack really ran. Sybils (two hotkeys of one operator sharing a store): the
second is charged every window ("shares a store"), so at most one is paid.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from adversaries import GROUPS, RunResult, run_network  # noqa: E402

from subnet.adversary.behaviours import EXPECTED_OUTCOME, PICKLE_MARKER  # noqa: E402

pytestmark = pytest.mark.slow

WINDOWS = 7
MIN_EXERCISED = 3  # windows in which each broken file must have been seen and refused


def _neutral(reason: str) -> bool:
    """Outcomes that are not the attack's own: start-up windows (store not committed yet),
    nothing uploaded that window, or an upload built on a base one window behind (a loaded
    machine delays any miner's catch-up; a stale base is refused and paid nothing either way).
    `replay`'s expected outcome is also "stale base version": its hits are counted before this."""
    return reason.startswith("absent") or "store committed" in reason or reason.startswith("stale base version")


def _check_common(res: RunResult) -> None:
    assert res.validator_alive, "the validator died"
    windows = [e["window"] for e in res.scored]
    assert len(windows) >= WINDOWS and windows == list(range(windows[0], windows[0] + len(windows))), windows
    fw = res.final_weights()
    for h in res.honest:
        assert fw[h] > 0, f"honest uid {h} earned nothing: {fw}"
        assert res.incentive[h] > 0, f"honest uid {h} has no incentive on chain: {res.incentive}"
        assert not any(r.startswith("rejected") for r in res.reasons(h)), res.reasons(h)
    assert res.selected() & set(res.honest), "no honest contribution was ever aggregated"


def _assert_zero(res: RunResult, uid: int) -> None:
    label = res.behaviours[uid]
    assert res.final_weights()[uid] == 0.0, (label, res.final_weights())
    assert res.incentive[uid] == 0.0, (label, res.incentive)
    assert uid not in res.selected(), (label, res.manifests)


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> RunResult:
    return run_network(tmp_path_factory.mktemp("adv-broken"), GROUPS["broken"], windows=WINDOWS)


@pytest.fixture(scope="module")
def quality(tmp_path_factory) -> RunResult:
    return run_network(tmp_path_factory.mktemp("adv-quality"), GROUPS["quality"], windows=WINDOWS)


def test_broken_files_are_refused_and_paid_nothing(broken: RunResult) -> None:
    _check_common(broken)
    for uid, label in broken.behaviours.items():
        if label == "honest":
            continue
        _assert_zero(broken, uid)
        reasons = broken.reasons(uid)
        assert all(s is None or s <= 0 for s in broken.scores(uid)), (label, broken.scores(uid))
        expected = EXPECTED_OUTCOME.get(label)
        if label == "zero":
            expected = ("empty update",)
        assert expected is not None, label
        hits = [r for r in reasons if r.startswith(expected)]
        others = [r for r in reasons if not r.startswith(expected) and not _neutral(r)]
        assert not others, (label, others)
        if label in ("steal_key", "late"):
            continue  # their evidence is on the miner side, below
        need = 1 if label == "replay" else MIN_EXERCISED  # replay needs a window-(w-2) artifact to exist first
        assert len(hits) >= need, (label, reasons)


def test_pickle_payload_was_never_unpickled(broken: RunResult) -> None:
    (uid,) = broken.uids("pickle")
    state_dir = broken.state_dir(uid)
    assert state_dir.is_dir(), state_dir
    assert not (state_dir / PICKLE_MARKER).exists()


def test_steal_key_and_late_really_attacked(broken: RunResult) -> None:
    (thief,) = broken.uids("steal_key")
    uploads = [e for e in broken.miner_events if e.get("uid") == thief and e.get("event") == "uploaded"]
    assert not uploads, "steal_key must never write under its own key"
    stolen = list(broken.store_dir(thief).rglob("*.safetensors"))
    assert len(stolen) >= MIN_EXERCISED, stolen  # files under victims' keys in the thief's own store
    (late,) = broken.uids("late")
    late_uploads = [e for e in broken.miner_events if e.get("uid") == late and e.get("event") == "uploaded"]
    assert len(late_uploads) >= MIN_EXERCISED, late_uploads


def test_quality_attacks_earn_less_than_every_honest_miner(quality: RunResult) -> None:
    _check_common(quality)
    fw = quality.final_weights()
    honest_min = min(fw[h] for h in quality.honest)
    honest_min_incentive = min(quality.incentive[h] for h in quality.honest)
    for label in ("scaled", "sign_flip", "noise"):
        (uid,) = quality.uids(label)
        assert fw[uid] < honest_min, (label, fw)
        assert quality.incentive[uid] < honest_min_incentive, (label, quality.incentive)
        scored = [s for s in quality.scores(uid) if s is not None]
        assert len(scored) >= MIN_EXERCISED, (label, quality.reasons(uid))  # the attack really reached scoring
        assert uid not in quality.selected(), (label, quality.manifests)
        assert all(s <= 0 for s in scored), (label, quality.scores(uid), quality.reasons(uid))


def test_noisy_copier_is_charged_and_paid_nothing(quality: RunResult) -> None:
    (uid,) = quality.uids("copier_noisy")
    _assert_zero(quality, uid)
    reasons = quality.reasons(uid)
    assert any(r.startswith(("copy of uid", "copy tie uid")) for r in reasons), reasons
    victims = {int(r.split()[3]) for r in reasons if r.startswith(("copy of uid", "copy tie uid"))}
    assert uid not in victims and victims <= set(quality.behaviours), victims  # it copies whoever shares its fragment


def test_sybils_get_at_most_one_share(quality: RunResult) -> None:
    sybils = quality.uids("sybil")
    assert len(sybils) == 2
    fw = quality.final_weights()
    assert sum(fw[s] > 0 for s in sybils) <= 1, fw
    assert sum(quality.incentive[s] > 0 for s in sybils) <= 1, quality.incentive
    payload = {(e["uid"], e["window"]): e.get("payload") for e in quality.miner_events
               if e.get("event") == "uploaded" and e.get("uid") in sybils}
    shared = 0
    for e in quality.scored:
        rows = [e["scores"].get(str(s), {}) for s in sybils]
        same = payload.get((sybils[0], e["window"])) == payload.get((sybils[1], e["window"])) is not None
        if same and all(r.get("score") is not None and not r["reason"].startswith(("rejected", "stale"))
                        for r in rows):
            shared += 1  # bit-identical uploads, both scored: at least one is charged, at most one paid
            prefixes = ("copy of uid", "copy tie uid", "shares a store with uid")
            charged = [r for r in rows if r["reason"].startswith(prefixes)]
            assert charged, (e["window"], rows)
            assert sum((r.get("score") or 0) > 0 for r in rows) <= 1, (e["window"], rows)
    assert shared >= 1, "the two sybils never shared a fragment: the attack was not exercised"
