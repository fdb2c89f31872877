"""Yuma Consensus (subnet.devnet.yuma) against hand-computed cases and properties.

Expected values are worked out by hand in the comments (never by calling the
code under test); property tests check invariants and compare the vectorised
weighted median with a line-by-line port of the chain's pivot algorithm.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subnet.devnet.yuma import (
    U16_MAX,
    YumaInputError,
    YumaInputs,
    activity_mask,
    epoch_emission,
    split_emission,
    to_u16,
    topk_nonzero,
    validator_permits,
    weighted_median_col,
    yuma_epoch,
)
from subnet.errors import SubnetError

ALPHA = 0.1  # 1 - 900_000 / 1e6


def make_inputs(
    weights,
    stake,
    *,
    permit=None,
    last_update=None,
    reg=None,
    bonds=None,
    current_block=100,
    activity_cutoff=5000,
    kappa=0.5,
    bma=900_000,
    beta=1.0,
    max_validators=64,
    last_epoch_block=90,
    owner_uid=None,
    stake_threshold=0.0,
) -> YumaInputs:
    w = np.asarray(weights, dtype=float)
    n = w.shape[0]
    s = np.asarray(stake, dtype=float)
    return YumaInputs(
        weights=w,
        stake=s,
        last_update=np.full(n, current_block) if last_update is None else np.asarray(last_update),
        block_at_registration=np.zeros(n, dtype=int) if reg is None else np.asarray(reg),
        validator_permit=(s > 0) if permit is None else np.asarray(permit, dtype=bool),
        bonds=np.zeros((n, n)) if bonds is None else np.asarray(bonds, dtype=float),
        current_block=current_block,
        activity_cutoff=activity_cutoff,
        kappa=kappa,
        bonds_moving_average=bma,
        bonds_penalty=beta,
        max_allowed_validators=max_validators,
        last_epoch_block=last_epoch_block,
        owner_uid=owner_uid,
        stake_threshold=stake_threshold,
    )


# ------------------------------------------------------------------ minority cabal


def cabal_weights() -> np.ndarray:
    # uids 0,1,2 validators; 3,4 miners. V0 and V1 back miner 3, V2 (the cabal) backs miner 4.
    w = np.zeros((5, 5))
    w[0, 3] = 65535
    w[1, 3] = 65535
    w[2, 4] = 65535
    return w


def test_minority_cabal_is_clipped_by_kappa():
    out = yuma_epoch(make_inputs(cabal_weights(), [40, 35, 25, 0, 0], kappa=0.5))
    # S = S_a = [0.4, 0.35, 0.25, 0, 0]
    np.testing.assert_allclose(out.active_stake, [0.4, 0.35, 0.25, 0, 0])
    # column 3 sorted desc: 1 (0.4), 1 (0.35), 0 (0.25); cumulative 0.4, 0.75 >= 0.5 -> C3 = 1
    # column 4 sorted desc: 1 (0.25), 0, 0; cumulative 0.25 < 0.5, 0.65 >= 0.5 at value 0 -> C4 = 0
    np.testing.assert_allclose(out.consensus, [0, 0, 0, 1, 0])
    # clipped rows: V0 [..1..], V1 [..1..], V2 all zero -> VT = [1, 1, 0, 0, 0]
    np.testing.assert_allclose(out.validator_trust, [1, 1, 0, 0, 0])
    # R3 = 0.4 + 0.35 = 0.75, R4 = 0 -> I = [0, 0, 0, 1, 0]
    np.testing.assert_allclose(out.incentive, [0, 0, 0, 1, 0])
    # dB col 3 = [0.4, 0.35, 0] / 0.75 = [8/15, 7/15, 0]; no old bonds -> B = dB; D = B[:,3] * 1
    np.testing.assert_allclose(out.dividends, [8 / 15, 7 / 15, 0, 0, 0])
    # sum I + sum D = 2 -> server [0,0,0,1/2,0], validator [4/15, 7/30, 0, 0, 0]
    np.testing.assert_allclose(out.server_emission_share, [0, 0, 0, 0.5, 0])
    np.testing.assert_allclose(out.validator_emission_share, [4 / 15, 7 / 30, 0, 0, 0])
    # stored bonds col 3 max-upscaled: [1, 7/8, 0] -> [65535, floor(57343.125) = 57343, 0]
    expected_bonds = np.zeros((5, 5), dtype=int)
    expected_bonds[0, 3] = 65535
    expected_bonds[1, 3] = 57343
    np.testing.assert_array_equal(out.bonds, expected_bonds)
    storage = out.as_storage()
    # 8/15 * 65535 = 34952 exactly; 7/15 * 65535 = 30583 exactly
    assert storage["Dividends"] == [34952, 30583, 0, 0, 0]
    assert storage["Incentive"] == [0, 0, 0, 65535, 0]
    # 0.4 * 65535 = 26214.0, 0.35 * 65535 = 22937.25, 0.25 * 65535 = 16383.75
    assert storage["StakeWeight"] == [26214, 22937, 16383, 0, 0]


def test_cabal_above_kappa_keeps_its_miner():
    # kappa = 0.2: column 4 cumulative 0.25 >= 0.2 at value 1 -> C4 = 1 (and C3 = 1).
    out = yuma_epoch(make_inputs(cabal_weights(), [40, 35, 25, 0, 0], kappa=0.2))
    np.testing.assert_allclose(out.consensus, [0, 0, 0, 1, 1])
    # R3 = 0.75, R4 = 0.25, sum 1
    np.testing.assert_allclose(out.incentive, [0, 0, 0, 0.75, 0.25])
    # D0 = B03*I3 = 8/15*0.75 = 0.4, D1 = 7/15*0.75 = 0.35, D2 = B24*I4 = 1*0.25
    np.testing.assert_allclose(out.dividends, [0.4, 0.35, 0.25, 0, 0])


def test_chain_kappa_default_behaves_like_half():
    # chain default kappa 32767/65535 = 0.4999924 sits just below 0.5: same cabal outcome.
    out = yuma_epoch(make_inputs(cabal_weights(), [40, 35, 25, 0, 0], kappa=32767 / 65535))
    np.testing.assert_allclose(out.incentive, [0, 0, 0, 1, 0])


def test_partial_weight_is_clipped_to_consensus():
    # V0 (0.6) gives miner 2 weight 0.5 and miner 3 0.5; V1 (0.4) gives miner 2 all its weight.
    w = np.zeros((4, 4))
    w[0, 2], w[0, 3] = 1, 1
    w[1, 2] = 1
    out = yuma_epoch(make_inputs(w, [6, 4, 0, 0], kappa=0.5))
    # col 2: 1 (0.4), 0.5 (0.6): cum 0.4, 1.0 -> C2 = 0.5; col 3: 0.5 (0.6) -> C3 = 0.5
    np.testing.assert_allclose(out.consensus, [0, 0, 0.5, 0.5])
    # Wc: V0 [.5, .5], V1 [.5, 0]; VT = [1, 0.5]
    np.testing.assert_allclose(out.validator_trust, [1, 0.5, 0, 0])
    # R2 = 0.6*.5 + 0.4*.5 = 0.5, R3 = 0.6*.5 = 0.3 -> I = [0.625, 0.375]
    np.testing.assert_allclose(out.incentive, [0, 0, 0.625, 0.375])
    # dB col 2 = [0.3, 0.2]/0.5 = [0.6, 0.4]; col 3 = [1, 0]
    # D0 = 0.6*0.625 + 1*0.375 = 0.75, D1 = 0.4*0.625 = 0.25
    np.testing.assert_allclose(out.dividends, [0.75, 0.25, 0, 0])


# ------------------------------------------------------------------ bond EMA


def test_bond_ema_grows_toward_steady_state():
    # uids 0,1 validators with equal stake, uid 2 the miner both now weight fully.
    # V0 has been bonded alone: stored bonds column 2 = [65535, 0, 0].
    w = np.zeros((3, 3))
    w[0, 2] = w[1, 2] = 1
    bonds = np.zeros((3, 3))
    bonds[0, 2] = U16_MAX
    b1_history = []
    for epoch in range(60):
        block = 100 + 10 * epoch
        out = yuma_epoch(
            make_inputs(w, [1, 1, 0], bonds=bonds, current_block=block, last_epoch_block=block - 10)
        )
        b1_history.append(out.dividends[1])
        bonds = out.bonds.astype(float)
        if epoch == 0:
            # B_old col 2 normalised = [1, 0]; dB = [0.5, 0.5]
            # B = 0.1*[0.5, 0.5] + 0.9*[1, 0] = [0.95, 0.05]; I = [0,0,1] -> D = [0.95, 0.05]
            np.testing.assert_allclose(out.dividends, [0.95, 0.05, 0], atol=1e-12)
            # stored: max-upscale [1, 0.05/0.95 = 1/19] -> [65535, floor(3449.21) = 3449]
            assert out.bonds[:, 2].tolist() == [65535, 3449, 0]
        if epoch == 1:
            # stored [65535, 3449] normalise -> b1_old = 3449/68984 (u16 quantisation)
            b1 = 0.05 + 0.9 * (3449 / 68984)  # = 0.0949971...
            np.testing.assert_allclose(out.dividends[:2], [1 - b1, b1], atol=1e-12)
            # unquantised closed form 0.5*(1 - 0.9**2) = 0.095
            assert abs(b1 - 0.095) < 1e-5
            # stored: 65535 * b1/(1-b1) = 65535 * 0.104965... = 6878.9 -> 6878
            assert out.bonds[:, 2].tolist() == [65535, int(65535 * b1 / (1 - b1)), 0]
        if epoch == 2:
            b1_prev = 0.05 + 0.9 * (3449 / 68984)
            stored_prev = int(65535 * b1_prev / (1 - b1_prev))
            b1 = 0.05 + 0.9 * stored_prev / (65535 + stored_prev)
            np.testing.assert_allclose(out.dividends[1], b1, atol=1e-12)
            # closed form 0.5*(1 - 0.9**3) = 0.1355
            assert abs(b1 - 0.1355) < 1e-4
    assert all(b > a for a, b in zip(b1_history[:40], b1_history[1:41]))  # strictly growing early on
    # steady state: equal stake, equal weights -> equal bonds 0.5/0.5 (0.5*(1-0.9**60) = 0.4991)
    assert abs(b1_history[-1] - 0.5) < 2e-3


def test_bonds_penalty_zero_bonds_unclipped_weights():
    # beta = 0: Wb = W (unclipped), so the cabal validator V2 bonds to its miner 4,
    # but miner 4 has no incentive (C4 = 0), so V2 still earns no dividends.
    out = yuma_epoch(make_inputs(cabal_weights(), [40, 35, 25, 0, 0], beta=0.0))
    # dB col 4 = [0, 0, 0.25] / 0.25 -> V2 holds the whole column: stored 65535
    assert out.bonds[2, 4] == 65535
    np.testing.assert_allclose(out.dividends, [8 / 15, 7 / 15, 0, 0, 0])
    out_b1 = yuma_epoch(make_inputs(cabal_weights(), [40, 35, 25, 0, 0], beta=1.0))
    assert out_b1.bonds[2, 4] == 0


def test_new_registration_masks_old_bonds():
    # V0 was fully bonded to uid 2, whose slot was re-registered at block 95 (after the
    # last epoch at 90). Both validators (0.5/0.5) weight uid 2 at block 100.
    w = np.zeros((3, 3))
    w[0, 2] = w[1, 2] = 1
    bonds = np.zeros((3, 3))
    bonds[0, 2] = U16_MAX
    out = yuma_epoch(make_inputs(w, [1, 1, 0], bonds=bonds, reg=[0, 0, 95], last_epoch_block=90))
    # masked: B_old col 2 = 0 -> B = normalise(0.1*[0.5, 0.5]) = [0.5, 0.5]
    np.testing.assert_allclose(out.dividends, [0.5, 0.5, 0])
    assert out.bonds[:, 2].tolist() == [65535, 65535, 0]
    # registered at block 90 = last_epoch_block (< last_epoch_block + 1): not masked,
    # so V0 keeps its old bond: B = [0.95, 0.05] as in the EMA test.
    kept = yuma_epoch(make_inputs(w, [1, 1, 0], bonds=bonds, reg=[0, 0, 90], last_epoch_block=90))
    np.testing.assert_allclose(kept.dividends, [0.95, 0.05, 0])
    # registered at block 91 = last_epoch_block + 1: the first block after the epoch, masked
    boundary = yuma_epoch(make_inputs(w, [1, 1, 0], bonds=bonds, reg=[0, 0, 91], last_epoch_block=90))
    np.testing.assert_allclose(boundary.dividends, [0.5, 0.5, 0])


def test_lost_permit_clears_bond_row():
    # k = 1: only V0 (stake 2) keeps a permit; V1's bond row is cleared in storage,
    # though it still counted this epoch (it held the old permit).
    w = np.zeros((3, 3))
    w[0, 2] = w[1, 2] = 1
    out = yuma_epoch(make_inputs(w, [2, 1, 0], max_validators=1))
    assert out.new_validator_permit.tolist() == [True, False, False]
    # dB col 2 = [2/3, 1/3] -> D = [2/3, 1/3]
    np.testing.assert_allclose(out.dividends, [2 / 3, 1 / 3, 0])
    assert out.bonds[1].tolist() == [0, 0, 0]
    assert out.bonds[0, 2] == 65535


# ------------------------------------------------------------------ zero-weight fallback


def test_all_zero_weights_pays_validators_by_active_stake():
    w = np.zeros((4, 4))
    out = yuma_epoch(make_inputs(w, [1, 2, 3, 0]))
    # I = 0 and D = 0 -> validator share = S_a = [1/6, 2/6, 3/6, 0]
    np.testing.assert_allclose(out.incentive, 0)
    np.testing.assert_allclose(out.dividends, 0)
    np.testing.assert_allclose(out.server_emission_share, 0)
    np.testing.assert_allclose(out.validator_emission_share, [1 / 6, 2 / 6, 3 / 6, 0])
    # 600 rao -> [100, 200, 300, 0]
    assert epoch_emission(out, 600).tolist() == [100, 200, 300, 0]


def test_zero_weights_fallback_skips_inactive_then_uses_total_stake():
    w = np.zeros((4, 4))
    # V0 inactive: 0 + 5000 < 10000. S_a = [0, 2, 3, 0] / 5 = [0, 0.4, 0.6, 0]
    out = yuma_epoch(make_inputs(w, [1, 2, 3, 0], current_block=10_000, last_update=[0, 9000, 9000, 9000]))
    np.testing.assert_allclose(out.validator_emission_share, [0, 0.4, 0.6, 0])
    # Everyone inactive: no active stake -> S = [1/6, 1/3, 1/2, 0]
    out = yuma_epoch(make_inputs(w, [1, 2, 3, 0], current_block=10_000, last_update=[0, 0, 0, 0]))
    np.testing.assert_allclose(out.validator_emission_share, [1 / 6, 1 / 3, 1 / 2, 0])


# ------------------------------------------------------------------ weight masks


def test_self_weight_is_masked_except_owner():
    # uid 0 is the only validator; it weights itself and miner 1 equally.
    w = np.array([[1.0, 1.0, 0.0], [0, 0, 0], [0, 0, 0]])
    out = yuma_epoch(make_inputs(w, [1, 0, 0]))
    # diagonal dropped -> row [0, 1, 0]; C = [0, 1, 0]; I = [0, 1, 0]; D = [1, 0, 0]
    np.testing.assert_allclose(out.incentive, [0, 1, 0])
    np.testing.assert_allclose(out.dividends, [1, 0, 0])
    owned = yuma_epoch(make_inputs(w, [1, 0, 0], owner_uid=0))
    # owner keeps self-weight: row [0.5, 0.5, 0]; single validator -> C = row; I = [0.5, 0.5, 0]
    np.testing.assert_allclose(owned.incentive, [0.5, 0.5, 0])
    # B col 0 = [1,0,0], col 1 = [1,0,0] -> D0 = 0.5 + 0.5 = 1
    # shares: sum I + sum D = 2 -> server [0.25, 0.25, 0], validator [0.5, 0, 0]
    np.testing.assert_allclose(owned.server_emission_share, [0.25, 0.25, 0])
    np.testing.assert_allclose(owned.validator_emission_share, [0.5, 0, 0])
    assert epoch_emission(owned, 1000).tolist() == [750, 250, 0]


def test_outdated_weights_are_masked():
    # V0 set weights at block 50. uid 1 registered at 60 (after) and uid 2 at 50 (same block:
    # LastUpdate <= BlockAtRegistration also masks); uid 3 registered at 10 keeps its weight.
    w = np.array([[0, 1, 1, 1.0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    out = yuma_epoch(make_inputs(w, [1, 0, 0, 0], last_update=[50, 0, 0, 0], reg=[0, 60, 50, 10]))
    # surviving row [0, 0, 0, 1] -> I = [0, 0, 0, 1]
    np.testing.assert_allclose(out.incentive, [0, 0, 0, 1])
    fresh = yuma_epoch(make_inputs(w, [1, 0, 0, 0], last_update=[61, 0, 0, 0], reg=[0, 60, 50, 10]))
    # all three weights now postdate the registrations -> 1/3 each
    np.testing.assert_allclose(fresh.incentive, [0, 1 / 3, 1 / 3, 1 / 3])


def test_non_permitted_rows_are_ignored():
    # V1 holds stake but no permit from the previous epoch: its weights and stake do not count.
    w = np.zeros((4, 4))
    w[0, 2] = 1
    w[1, 3] = 1
    out = yuma_epoch(make_inputs(w, [1, 9, 0, 0], permit=[True, False, False, False]))
    np.testing.assert_allclose(out.active_stake, [1, 0, 0, 0])  # 0.1 renormalised alone
    np.testing.assert_allclose(out.incentive, [0, 0, 1, 0])
    # but it earns a permit for the next epoch (top-k by stake)
    assert out.new_validator_permit.tolist() == [True, True, False, False]
    # the owner's old permit is forced on (HEAD rule)
    owned = yuma_epoch(make_inputs(w, [1, 9, 0, 0], permit=[True, False, False, False], owner_uid=1))
    # S_a = [0.1, 0.9]; C2: 1 (0.1), 0 (0.9) -> 0; C3: 1 (0.9) -> 1; I = [0, 0, 0, 1]
    np.testing.assert_allclose(owned.incentive, [0, 0, 0, 1])


def test_inactive_validator_is_excluded():
    # V0 (0.6) weights miner 2 but last set weights at block 0; V1 (0.4) weights miner 3.
    w = np.zeros((4, 4))
    w[0, 2] = 1
    w[1, 3] = 1
    out = yuma_epoch(make_inputs(w, [6, 4, 0, 0], current_block=10_000, last_update=[0, 9000, 0, 0]))
    assert out.active.tolist() == [False, True, False, False]
    # S_a = [0, 1]: only V1 counts in the median -> C = [0, 0, 0, 1], I = [0, 0, 0, 1]
    np.testing.assert_allclose(out.active_stake, [0, 1, 0, 0])
    np.testing.assert_allclose(out.incentive, [0, 0, 0, 1])
    np.testing.assert_allclose(out.dividends, [0, 1, 0, 0])
    # both active: V0's majority (0.6 >= 0.5) wins miner 2; miner 3 (0.4) is clipped
    both = yuma_epoch(make_inputs(w, [6, 4, 0, 0], current_block=10_000, last_update=[9000, 9000, 0, 0]))
    np.testing.assert_allclose(both.incentive, [0, 0, 1, 0])


def test_activity_boundary():
    # active iff LastUpdate + cutoff >= block: 5000 + 5000 >= 10000, not >= 10001
    assert activity_mask(np.array([5000]), 10_000, 5000).tolist() == [True]
    assert activity_mask(np.array([5000]), 10_001, 5000).tolist() == [False]


# ------------------------------------------------------------------ permits


def test_permit_topk_nonzero_and_ties():
    stake = np.array([5, 1, 3, 0, 3], dtype=float)
    # ascending stable order: uid3(0), uid1(1), uid2(3), uid4(3), uid0(5); drop the first n-k = 3
    assert topk_nonzero(stake, 2).tolist() == [True, False, False, False, True]
    # k >= n: every nonzero stake
    assert topk_nonzero(stake, 10).tolist() == [True, True, True, False, True]
    # k = n: the zero-stake uid is still excluded
    assert topk_nonzero(stake, 5).tolist() == [True, True, True, False, True]
    assert topk_nonzero(stake, 0).tolist() == [False] * 5
    # owner always gets one
    assert validator_permits(stake, 2, owner_uid=1).tolist() == [True, True, False, False, True]
    assert validator_permits(stake, 2, owner_uid=3).tolist() == [True, False, False, True, True]


def test_stake_threshold_filters_all_but_owner():
    w = np.zeros((3, 3))
    out = yuma_epoch(make_inputs(w, [10, 1, 0], stake_threshold=2.0))
    # uid 1 (1 < 2) zeroed: S = [1, 0, 0], no permit
    np.testing.assert_allclose(out.stake_norm, [1, 0, 0])
    assert out.new_validator_permit.tolist() == [True, False, False]
    owned = yuma_epoch(make_inputs(w, [10, 1, 0], stake_threshold=2.0, owner_uid=1))
    np.testing.assert_allclose(owned.stake_norm, [10 / 11, 1 / 11, 0])
    assert owned.new_validator_permit.tolist() == [True, True, False]


# ------------------------------------------------------------------ weighted median


def test_weighted_median_col_hand_cases():
    stake = np.array([0.5, 0.3, 0.2, 0.0])
    col = np.array([[0.9], [0.5], [0.1], [1.0]])  # the zero-stake row (1.0) is ignored
    # desc: 0.9 (0.5) cum 0.5, 0.5 (0.3) cum 0.8, 0.1 (0.2) cum 1.0
    assert weighted_median_col(stake, col, 0.5)[0] == 0.9
    assert weighted_median_col(stake, col, 0.6)[0] == 0.5
    assert weighted_median_col(stake, col, 0.8)[0] == 0.5
    assert weighted_median_col(stake, col, 0.81)[0] == 0.1
    assert weighted_median_col(stake, col, 1.0)[0] == 0.1  # kappa 1: the minimum
    assert weighted_median_col(stake, col, 0.0)[0] == 0.9  # kappa 0: the maximum
    # no staked rows -> zeros
    np.testing.assert_array_equal(weighted_median_col(np.zeros(4), np.ones((4, 2)), 0.5), [0, 0])
    # stake need not be normalised: [5, 3, 2] behaves like [0.5, 0.3, 0.2]
    assert weighted_median_col(stake * 10, col, 0.6)[0] == 0.5


def chain_weighted_median(stake, score, kappa):
    """Line-by-line port of subtensor `weighted_median` (mid-pivot partition) as an oracle."""
    idx = [i for i in range(len(stake)) if stake[i] > 0]
    if not idx:
        return 0.0
    total = sum(stake[i] for i in idx)
    s = {i: stake[i] / total for i in idx}
    stake_sum = sum(s.values())
    minority = stake_sum - kappa
    lo_part, hi_part = 0.0, stake_sum
    current = idx
    while True:
        if len(current) == 1:
            return score[current[0]]
        pivot = score[current[len(current) // 2]]
        lower = [i for i in current if score[i] < pivot]
        upper = [i for i in current if score[i] > pivot]
        lo_stake = sum(s[i] for i in lower)
        hi_stake = sum(s[i] for i in upper)
        if minority < lo_part + lo_stake and lower:
            current, hi_part = lower, lo_part + lo_stake
        elif hi_part - hi_stake <= minority and upper:
            current, lo_part = upper, hi_part - hi_stake
        else:
            return pivot


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 16), st.lists(st.integers(0, 4), min_size=3, max_size=3)),
        min_size=1,
        max_size=9,
    ),
    kappa_64ths=st.integers(0, 64),
)
def test_weighted_median_matches_chain_pivot_algorithm(rows, kappa_64ths):
    # Oracle and implementation get the same floats; they may only disagree where the
    # stake mass at/above a value equals kappa and float summation order tips one side.
    stake = np.array([r[0] for r in rows], dtype=float)
    score = np.array([r[1] for r in rows], dtype=float) / 4.0
    kappa = kappa_64ths / 64
    got = weighted_median_col(stake, score, kappa)
    for c in range(score.shape[1]):
        want = chain_weighted_median(stake.tolist(), score[:, c].tolist(), kappa)
        if abs(got[c] - want) > 1e-12:
            # Then ours (kappa tolerance 1e-9) must be the larger value, sitting on the boundary.
            s = stake / stake.sum()
            mass_ge = s[score[:, c] >= got[c]].sum()
            assert got[c] > want and abs(mass_ge - kappa) < 1e-9, (got[c], want)


# ------------------------------------------------------------------ emission helpers


def test_split_emission():
    owner, rest = split_emission(1_000_000_000)
    assert (owner, rest) == (180_000_000, 820_000_000)
    owner_f, rest_f = split_emission(1.0, owner_cut=0.18)
    assert owner_f == pytest.approx(0.18) and rest_f == pytest.approx(0.82)
    o, r = split_emission(7, owner_cut=0.5)  # int: floor(3.5) = 3 to owner, 4 conserved
    assert (o, r) == (3, 4)
    with pytest.raises(YumaInputError):
        split_emission(-1)
    with pytest.raises(YumaInputError):
        split_emission(10, owner_cut=1.5)


def test_to_u16():
    # 0.5*65535 = 32767.5 -> 32767 (truncation); 1 -> 65535; out of range clipped
    assert to_u16(np.array([0.0, 0.5, 1.0, 1.2, -0.1, 1 / 3])).tolist() == [0, 32767, 65535, 65535, 0, 21845]
    # float noise just below 1 does not lose a unit
    assert to_u16(np.array([1 - 1e-15])).tolist() == [65535]


def test_epoch_emission_float_and_int():
    out = yuma_epoch(make_inputs(cabal_weights(), [40, 35, 25, 0, 0]))
    # shares [4/15, 7/30, 0, 1/2, 0] of 3000 = [800, 700, 0, 1500, 0]
    np.testing.assert_allclose(epoch_emission(out, 3000.0), [800, 700, 0, 1500, 0])
    # of 10 rao: floor(2.67)=2, floor(2.33)=2, 0, 5, 0 (1 rao of dust, as on chain)
    assert epoch_emission(out, 10).tolist() == [2, 2, 0, 5, 0]
    with pytest.raises(YumaInputError):
        epoch_emission(out, float("nan"))


# ------------------------------------------------------------------ input validation


@pytest.mark.parametrize(
    "change, match",
    [
        ({"weights": np.zeros((3, 2))}, "square"),
        ({"stake": np.zeros(4)}, "stake must have shape"),
        ({"weights": -np.ones((3, 3))}, "negative"),
        ({"stake": np.array([1.0, np.nan, 0])}, "NaN"),
        ({"bonds": np.full((3, 3), 70_000.0)}, "u16"),
        ({"kappa": 1.5}, "kappa"),
        ({"bonds_penalty": -0.1}, "bonds_penalty"),
        ({"bonds_moving_average": 2e6}, "bonds_moving_average"),
        ({"owner_uid": 3}, "owner_uid"),
        ({"current_block": -1}, "current_block"),
        ({"last_update": np.array([1.5, 0, 0])}, "integer"),
    ],
)
def test_bad_inputs_raise_typed_error(change, match):
    base = dict(
        weights=np.zeros((3, 3)),
        stake=np.ones(3),
        last_update=np.zeros(3, dtype=int),
        block_at_registration=np.zeros(3, dtype=int),
        validator_permit=np.ones(3, dtype=bool),
        bonds=np.zeros((3, 3)),
        current_block=10,
        activity_cutoff=5000,
        kappa=0.5,
        bonds_moving_average=900_000,
        bonds_penalty=1.0,
        max_allowed_validators=64,
        last_epoch_block=0,
    )
    base.update(change)
    with pytest.raises(YumaInputError, match=match) as err:
        YumaInputs(**base)
    assert isinstance(err.value, SubnetError)


# ------------------------------------------------------------------ properties


@st.composite
def subnet_states(draw):
    n = draw(st.integers(1, 8))
    u16 = st.integers(0, U16_MAX)
    sparse_u16 = st.one_of(st.just(0), u16)
    weights = np.array(draw(st.lists(sparse_u16, min_size=n * n, max_size=n * n)), dtype=float).reshape(n, n)
    stake = np.array(draw(st.lists(st.one_of(st.just(0), st.integers(1, 10**12)), min_size=n, max_size=n)), float)
    bonds = np.array(draw(st.lists(sparse_u16, min_size=n * n, max_size=n * n)), dtype=float).reshape(n, n)
    current = draw(st.integers(0, 20_000))
    last_update = np.array(draw(st.lists(st.integers(0, 20_000), min_size=n, max_size=n)))
    reg = np.array(draw(st.lists(st.integers(0, 20_000), min_size=n, max_size=n)))
    permit = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return YumaInputs(
        weights=weights,
        stake=stake,
        last_update=last_update,
        block_at_registration=reg,
        validator_permit=permit,
        bonds=bonds,
        current_block=current,
        activity_cutoff=draw(st.integers(0, 10_000)),
        kappa=draw(st.floats(0, 1)),
        bonds_moving_average=draw(st.integers(0, 1_000_000)),
        bonds_penalty=draw(st.floats(0, 1)),
        max_allowed_validators=draw(st.integers(0, 10)),
        last_epoch_block=draw(st.integers(0, 20_000)),
        owner_uid=draw(st.one_of(st.none(), st.integers(0, n - 1))),
        stake_threshold=float(draw(st.sampled_from([0, 1, 10**6]))),
    )


def _sum_is_one_or_zero(x: np.ndarray) -> bool:
    s = float(x.sum())
    return abs(s - 1) < 1e-9 or s == 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inp=subnet_states())
def test_epoch_invariants(inp):
    out = yuma_epoch(inp)
    n = inp.n
    for name, arr in vars(out).items():
        assert arr.shape[0] == n, name
        assert not np.any(np.isnan(arr.astype(float))), name
    assert _sum_is_one_or_zero(out.incentive)
    assert _sum_is_one_or_zero(out.dividends)
    assert _sum_is_one_or_zero(out.stake_norm)
    assert _sum_is_one_or_zero(out.active_stake)
    total_share = float(out.server_emission_share.sum() + out.validator_emission_share.sum())
    if out.stake_norm.sum() > 0:
        assert abs(total_share - 1) < 1e-9
    else:  # zero stake everywhere: nothing to pay, as on chain
        assert total_share == 0
    assert np.all(out.server_emission_share >= 0) and np.all(out.validator_emission_share >= 0)
    assert out.bonds.dtype == np.int64
    assert np.all((out.bonds >= 0) & (out.bonds <= U16_MAX))
    assert np.all(out.bonds[~out.new_validator_permit] == 0)
    assert np.all((out.consensus >= 0) & (out.consensus <= 1 + 1e-12))
    assert np.all((out.validator_trust >= 0) & (out.validator_trust <= 1 + 1e-9))
    # a miner with zero consensus can never earn incentive
    assert np.all(out.incentive[out.consensus == 0] == 0)
    # permits: at most k by stake, plus the owner
    extra = 0 if inp.owner_uid is None else 1
    assert out.new_validator_permit.sum() <= inp.max_allowed_validators + extra
    assert np.all(out.active_stake[~out.active] == 0)
    # bond storage round-trips: feeding stored bonds back is valid input
    storage = out.as_storage()
    assert all(0 <= v <= U16_MAX for v in storage["Incentive"] + storage["Dividends"])


def test_degenerate_inputs_do_not_produce_nan():
    # n = 1, zero stake, all-zero weights, empty subnet
    for stake in ([0.0], [5.0]):
        out = yuma_epoch(make_inputs(np.zeros((1, 1)), stake))
        for arr in vars(out).values():
            assert not np.any(np.isnan(arr.astype(float)))
    single = yuma_epoch(make_inputs(np.zeros((1, 1)), [5.0]))
    np.testing.assert_allclose(single.validator_emission_share, [1.0])
    empty = yuma_epoch(make_inputs(np.zeros((0, 0)), np.zeros(0)))
    assert empty.incentive.shape == (0,) and empty.bonds.shape == (0, 0)


# ------------------------------------------------------------------ speed


def test_epoch_is_fast_for_256_uids_64_validators():
    rng = np.random.default_rng(0)
    n, v = 256, 64
    w = np.zeros((n, n))
    w[:v] = rng.integers(0, U16_MAX + 1, (v, n))
    stake = np.zeros(n)
    stake[:v] = rng.uniform(1, 1000, v)
    inp = make_inputs(
        w,
        stake,
        bonds=rng.integers(0, U16_MAX + 1, (n, n)),
        reg=rng.integers(0, 900, n),
        current_block=1000,
        last_epoch_block=640,
        kappa=32767 / 65535,
        max_validators=128,
    )
    yuma_epoch(inp)
    runs = 20
    t0 = time.perf_counter()
    for _ in range(runs):
        out = yuma_epoch(inp)
    per_epoch = (time.perf_counter() - t0) / runs
    assert abs(out.incentive.sum() - 1) < 1e-9
    assert per_epoch < 0.25, f"{per_epoch * 1e3:.1f} ms per epoch"
