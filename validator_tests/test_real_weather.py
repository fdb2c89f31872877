"""The "real weather" end to end (issue 9): the chain's defaults, a finality lag, churn and slow scoring.

One devnet process (0.5 s blocks, finalized head 2 blocks behind the best
head), one validator and miners as real processes, on a subnet bootstrapped
with subtensor's values for a new subnet: commit-reveal weights **on**,
`MinAllowedWeights` and `ImmunityPeriod` as `init_new_network` sets them (1
and 5000; bootstrap changes neither, and would change one only through an
owner call). Only the DEVNET-only fast timing (Tempo 20, WeightsSetRateLimit 2,
root calls through Sudo) departs from a real subnet. While the network runs:

1. a new miner hotkey is registered through the SDK (`bt.BurnedRegister`,
   signed by its coldkey) and its miner started: no existing honest miner's
   upload is ever scored "absent" after the first two scored windows, and the
   newcomer is scored;
2. the subnet owner lowers `MaxAllowedUids` to the uid count (an owner call,
   as `btcli sudo set --name max_allowed_uids` sends it), and one more
   registration prunes the lowest-emission uid (all uids are still inside
   the 5000-block immunity period, so subtensor's `get_neuron_to_prune`
   falls back to the best immune one: the late miner, which never earns).
   Its process exits with status 3 and says why; the new hotkey on the
   recycled uid starts with a fresh rating. (On subtensor the owner could
   not go below `MinAllowedUids`, 64 in the runtime, without root lowering
   it first with `sudo_set_min_allowed_uids`; the devnet does not model
   MinAllowedUids, see contrib/DEVNET.md);
3. the validator's timelocked commits are revealed on chain: a
   `weights_revealed` event confirms the reveal, the SDK's weights read shows
   the validator's row, and honest miners' incentive is positive after the
   reveal epoch;
4. scoring is slowed by the test-only fault-injection knob
   `TESSERA_TEST_SCORING_DELAY_S` (subnet/validator/loop.py: the validator
   sleeps that long after each window closes, before reading its pinned
   upload evidence), and a `--adversary.behaviour late` adversary miner uploads an honest
   artifact only after each window's deadline: none of its uploads is ever
   credited.

Known bug, reported as an xfail (only in runs where it shows, after every
assertion above has passed): the validator's norm-outlier gate zeroes an
honest veteran's upload when a newly registered honest miner, whose young
error-feedback buffer gives a several times smaller update norm, is the only
other member of its fragment cohort (see the end of the test).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import bittensor as bt
import bittensor_core
import pytest
from harness.devnet import bootstrap, running_devnet
from harness.network import Network, read_json

from subnet.chain import make_subtensor
from subnet.demo import REPO_ROOT, ProcessGroup
from subnet.devnet.bootstrap import _set_hparam, ensure_wallet
from subnet.devnet.substrate import DevnetSubstrate
from subnet.protocol.windows import WindowParams, window_of
from subnet.validator.loop import SCORING_DELAY_ENV

pytestmark = pytest.mark.slow

SCORING_DELAY_S = 4.0  # half a 16-block window of 0.5 s blocks
FINALITY_LAG = 2
NEW_SUBNET_MIN_ALLOWED_WEIGHTS = 1  # init_new_network
NEW_SUBNET_IMMUNITY_PERIOD = 5000  # init_new_network
DEFAULT_SIGMA = 25 / 3
OK = "ok"  # scoring.py's reason for a credited (positively scored) upload


# -- chain operations the operators do (SDK intents, as btcli sends them) ----------------------------


def _ok(result, what: str):
    assert result.success, f"{what} failed: {result.message}"
    return result


def _on_chain(url: str, op):
    """Run `op(client)` on a fresh async SDK client over the devnet seam (as bootstrap does)."""
    async def main():
        async with bt.Client("local", substrate=DevnetSubstrate(url)) as client:
            return await op(client)
    return asyncio.run(main())


def _register(url: str, netuid: int, wallet: bt.Wallet) -> tuple[int, int]:
    """Fund the coldkey from //Alice and `BurnedRegister` its hotkey; (uid, block of registration)."""
    alice = bittensor_core.Keypair.create_from_uri("//Alice")

    async def op(client):
        _ok(await client.execute(bt.Transfer(dest_ss58=wallet.coldkeypub.ss58_address, amount_tao=50.0), alice),
            "funding")
        _ok(await client.execute(bt.BurnedRegister(netuid=netuid), wallet), "burned_register")
        uids = dict(await client.query_map(("SubtensorModule", "Uids"), [netuid]))
        uid = int(uids[wallet.hotkeypub.ss58_address])
        regs = await client.query(("SubtensorModule", "BlockAtRegistration"), [netuid, uid])
        return uid, int(regs)
    return _on_chain(url, op)


def _owner_sets(url: str, netuid: int, owner: bt.Wallet, item: str, name: str, value) -> list[str]:
    """An owner hyperparameter call (`btcli sudo set --name NAME`), outside the admin freeze window."""
    return _on_chain(url, lambda client: _set_hparam(client, netuid, item, value, owner=(name, owner)))


# -- reading what happened --------------------------------------------------------------------------


def _scored(net: Network) -> list[dict]:
    return sorted(net.events("validator", "window_scored"), key=lambda e: e["window"])


def _reason(e: dict, uid: int) -> str | None:
    s = e["scores"].get(str(uid))
    return None if s is None else s["reason"]


def _uploaded(net: Network, hotkey: str) -> set[int]:
    return {e["window"] for e in net.events("miner", "uploaded") if e.get("hotkey") == hotkey}


def _honest_ok(net: Network, uid: int, after_window: int = -1) -> bool:
    return any(_reason(e, uid) == OK for e in _scored(net) if e["window"] > after_window)


def _mg(sub, netuid: int):
    return sub.subnets.metagraph(netuid)


def _predicted_victim(mg, owner_hotkey: str) -> tuple[int, list[tuple]]:
    """`get_neuron_to_prune` with every uid inside its immunity period: the best immune non-owner uid
    (lowest emission, then older registration, then lower uid)."""
    keys = sorted((n.emission.rao, n.block_at_registration, n.uid) for n in mg.neurons if n.hotkey != owner_hotkey)
    return keys[0][2], keys


def _start_net(devnet, root: Path, miners: int) -> Network:
    """harness.network.start_network, with the bootstrap left at the new subnet's values."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    boot = bootstrap(devnet, root / "wallets", miners=miners,
                     min_allowed_weights=NEW_SUBNET_MIN_ALLOWED_WEIGHTS,  # = init_new_network's: no call
                     immunity_period=NEW_SUBNET_IMMUNITY_PERIOD,  # = init_new_network's: no call
                     commit_reveal=None)  # the chain's default: on
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TESSERA_TORCH_THREADS": "1",
           SCORING_DELAY_ENV: str(SCORING_DELAY_S),  # only the validator reads it
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return Network(devnet=devnet, root=root, boot=boot, procs=ProcessGroup(logs_dir=root / "logs", env=env))


def _window_of(net: Network, block: int) -> int:
    return window_of(block, WindowParams(window_blocks=int(net.flags["--protocol.window_blocks"])))


# -- the test -------------------------------------------------------------------------------------------


def test_real_weather(tmp_path):
    t_start = time.monotonic()
    with running_devnet(tmp_path, block_ms=500, finality_lag=FINALITY_LAG) as devnet:
        assert devnet.head()["finality_lag"] == FINALITY_LAG
        net = _start_net(devnet, tmp_path / "net", miners=3)
        boot, netuid = net.boot, net.boot.netuid
        wallets = Path(boot.wallet_path)
        sub = make_subtensor(devnet.network)
        try:
            # The chain's defaults: commit-reveal on, MinAllowedWeights and ImmunityPeriod untouched.
            assert sub.subnets.commit_reveal_enabled(netuid)
            assert sub.hyperparameters.min_allowed_weights(netuid) == NEW_SUBNET_MIN_ALLOWED_WEIGHTS
            assert sub.query(bt.storage.SubtensorModule.ImmunityPeriod, [netuid]) == NEW_SUBNET_IMMUNITY_PERIOD
            owner_changes = [c for c in boot.changes if "DEVNET-only" not in c]
            assert owner_changes == [], f"bootstrap changed a subnet default: {owner_changes}"

            honest = [boot.miners[0], boot.miners[1]]
            late = boot.miners[2]
            honest_uids = [m.uid for m in honest]
            net.start_validator()
            for i in range(2):
                net.start_miner(i, "honest")
            late_child = net.start_miner(2, "late")

            # First two scored windows in which both honest miners were credited: the network is up.
            net.wait_for("two windows crediting both honest miners",
                         lambda: sum(all(_reason(e, u) == OK for u in honest_uids) for e in _scored(net)) >= 2,
                         timeout=240)
            settled = _scored(net)[1]["window"]  # "after the first two scored windows"

            # -- 1. a miner registers mid-run -----------------------------------------------------------
            newcomer_w = ensure_wallet("newcomer", wallets)
            new_uid, new_reg_block = _register(devnet.url, netuid, newcomer_w)
            new_reg_window = _window_of(net, new_reg_block)
            net.procs.start("newcomer-honest", net.argv("miner", "newcomer"))

            # -- 3. weights land through commit-reveal ----------------------------------------------------
            def revealed() -> list[dict]:
                return [e for e in net.events("validator", "weights_revealed") if e["outcome"] == "revealed"]

            net.wait_for("a confirmed reveal and the newcomer credited",
                         lambda: revealed() and _honest_ok(net, new_uid, new_reg_window), timeout=180)
            row = sub.weights.weights(netuid).get(boot.validator.uid)
            assert row, "the SDK's weights read shows no row for the validator after its reveal"

            def paid() -> bool:
                mg = _mg(sub, netuid)
                return (all(mg.neuron(u).incentive > 0 for u in honest_uids)
                        and mg.neuron(boot.validator.uid).dividends > 0)

            net.wait_for("honest incentive after the reveal epoch", paid, timeout=90, poll=2.0)
            mg_paid = _mg(sub, netuid)
            weights_row = sub.weights.weights(netuid)[boot.validator.uid]

            # -- 2. the subnet fills up and one more registration prunes the late miner -------------------
            owner = bt.Wallet(boot.owner.wallet, "default", str(wallets))
            n_now = int(sub.query(bt.storage.SubtensorModule.SubnetworkN, [netuid]))
            changed = _owner_sets(devnet.url, netuid, owner, "MaxAllowedUids", "max_allowed_uids", n_now)
            assert changed and "owner call" in changed[0], changed
            victim, keys = _predicted_victim(_mg(sub, netuid), boot.owner.hotkey)
            assert victim == late.uid, f"expected the late miner (uid {late.uid}) to be pruned first: {keys}"
            replacement_w = ensure_wallet("replacement", wallets)
            old_rating_windows = [e for e in _scored(net) if str(late.uid) in e["ratings"]]
            repl_uid, repl_block = _register(devnet.url, netuid, replacement_w)
            repl_window = _window_of(net, repl_block)
            assert repl_uid == late.uid, f"the registration replaced uid {repl_uid}, not the late miner's {late.uid}"
            assert int(sub.query(bt.storage.SubtensorModule.SubnetworkN, [netuid])) == n_now
            net.procs.start("replacement-honest", net.argv("miner", "replacement"))

            deadline = time.monotonic() + 90
            while late_child.alive() and time.monotonic() < deadline:
                others = [c for c in net.procs.dead() if c is not late_child]
                assert not others, f"{others[0].name} exited:\n{others[0].log_tail(30)}"
                time.sleep(1)
            assert not late_child.alive(), f"the pruned miner kept running:\n{late_child.log_tail(20)}"
            net.procs.children.remove(late_child)  # pruned on purpose: not a crash to report
            assert late_child.proc.returncode == 3, late_child.log_tail(20)
            log = late_child.log.read_text(errors="replace")
            assert f"lost uid {late.uid}" in log and replacement_w.hotkeypub.ss58_address in log, log[-2000:]

            # the recycled uid plays under its new hotkey (it sits out its registration window)
            net.wait_for("the recycled uid rated under its new hotkey",
                         lambda: any(e["window"] > repl_window and str(repl_uid) in e["ratings"]
                                     for e in _scored(net)), timeout=120)
            state = read_json(net.state_dir(boot.validator.wallet) / "validator_state.json")
        finally:
            net.procs.stop_all()
            sub.close()
    elapsed = time.monotonic() - t_start
    scored = _scored(net)
    print(f"real weather: {elapsed:.0f} s, {len(scored)} scored windows "
          f"({scored[0]['window']}..{scored[-1]['window']}), newcomer registered in window {new_reg_window}, "
          f"uid {repl_uid} recycled in window {repl_window}")

    # 1. No existing honest miner's upload scored absent after the first two scored windows (the
    #    registrations included); an honest miner that missed a deadline itself uploaded nothing.
    for m in honest:
        uploads = _uploaded(net, m.hotkey)
        later = [e for e in scored if e["window"] > settled]
        absent = [(e["window"], _reason(e, m.uid)) for e in later
                  if (_reason(e, m.uid) or "absent").startswith("absent") and e["window"] in uploads]
        assert not absent, f"uid {m.uid}: uploads scored absent: {absent}"
        missing = [e["window"] for e in later if _reason(e, m.uid) is None]
        assert not missing, f"uid {m.uid} left out of scored windows {missing}"
        assert len(uploads & {e["window"] for e in later}) >= len(later) - 2, (m.uid, sorted(uploads))
        for w in (new_reg_window, repl_window):  # the registrations' own windows
            if w in uploads and any(e["window"] == w for e in scored):
                assert not _reason(next(e for e in scored if e["window"] == w), m.uid).startswith("absent")
    # the newcomer sat out its registration window and was scored after it
    assert all(str(new_uid) not in e["scores"] for e in scored if e["window"] <= new_reg_window)
    assert any(_reason(e, new_uid) == OK for e in scored if e["window"] > new_reg_window)

    # 2. The recycled uid's new hotkey started from a fresh rating.
    old = old_rating_windows[-1]["ratings"][str(late.uid)]
    first = next(e for e in scored if e["window"] > repl_window and str(repl_uid) in e["ratings"])
    new = first["ratings"][str(repl_uid)]
    assert abs(new["sigma"] - DEFAULT_SIGMA) < 0.4 and new["sigma"] > old["sigma"], (old, new)
    assert abs(new["mu"] - old["mu"]) > 1.0, (old, new)
    player = state["competition"]["players"][str(repl_uid)]
    assert player["hotkey"] == replacement_w.hotkeypub.ss58_address
    assert player["rounds"] <= sum(e["window"] > repl_window for e in scored), player

    # 3. Weights went through commit-reveal and landed.
    sets = net.events("validator", "weights_set")
    assert sets and all(e["outcome"] != "set" for e in sets), "plaintext weights while commit-reveal is on"
    assert any(e["outcome"] == "committed_pending" for e in sets)
    reveals = [e for e in net.events("validator", "weights_revealed") if e["outcome"] == "revealed"]
    assert reveals and all(e["success"] for e in reveals)
    assert not [e for e in net.events("validator", "weights_revealed") if e["outcome"] == "reveal_failed"]
    assert weights_row and all(weights_row.get(u, 0) > 0 for u in honest_uids), weights_row
    assert weights_row.get(late.uid, 0) == 0, weights_row
    for u in honest_uids:
        assert mg_paid.neuron(u).incentive > 0
    assert mg_paid.neuron(late.uid).incentive == 0

    # 4. Late uploads were made, scoring was slowed, and not one late upload was credited.
    late_uploads = _uploaded(net, late.hotkey)
    late_windows = [e for e in scored if e["window"] < repl_window - 1 and str(late.uid) in e["scores"]]
    assert len(late_uploads) >= 3 and len(late_windows) >= 3, (sorted(late_uploads), len(late_windows))
    for e in late_windows:
        s = e["scores"][str(late.uid)]
        # late, or never readable in time; "no store committed": its first windows under load came before
        # its store commitment was final (nothing could be read, nothing credited)
        assert s["reason"].startswith(("absent", "late", "no store committed")), (e["window"], s)
        assert not s["score"], (e["window"], s)
    assert all(e["seconds"] >= SCORING_DELAY_S for e in scored), "the scoring delay was not applied"
    # the late bytes were in the miner's store before the slowed scoring read that window's evidence
    # (window_scored is emitted `seconds` after scoring began, which sleeps SCORING_DELAY_S first)
    intake = {e["window"]: e["ts"] - e["seconds"] + SCORING_DELAY_S for e in late_windows}
    landed = {e["window"]: e["ts"] for e in net.events("miner", "uploaded") if e.get("hotkey") == late.hotkey}
    before = [w for w in intake if w in landed and landed[w] < intake[w]]
    assert len(before) >= 3, {w: round(intake[w] - landed[w], 2) for w in intake if w in landed}

    # Known bug, checked last so that everything above is asserted first: the validator's norm-outlier
    # gate (subnet/validator/loop.py `_gate_norm_outliers`) compares each verified update with the lower
    # median norm of its fragment cohort, but an honest update's norm depends on how many windows the
    # miner's error-feedback buffer for that fragment has accumulated (ef_decay 0.95 at 1.56 % density:
    # it grows for tens of windows). A newly registered honest miner's update is several times smaller
    # than a veteran's, so in a two-member cohort the veteran's honest upload is zeroed as an "outlier".
    outliers = []
    for e in scored:
        for m in honest:
            s = e["scores"].get(str(m.uid)) or {}
            if e["window"] > settled and s.get("reason", "").startswith("norm outlier"):
                cohort = {u: round(x["norm"], 3) for u, x in e["scores"].items()
                          if x.get("fragment") == s.get("fragment") and x.get("norm")}
                outliers.append((e["window"], m.uid, s["reason"], cohort))
    if outliers:
        pytest.xfail("BUG: honest uploads zeroed by _gate_norm_outliers because a younger honest miner (smaller "
                     f"error-feedback norm) shares the fragment cohort: (window, uid, reason, norms) {outliers}")
