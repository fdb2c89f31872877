"""Window seeds come from finalised blocks only, so a reorganisation of the tip cannot split them.

A fake SDK client stands in for `bt.Subtensor`: a best chain whose unfinalised
tip can be replaced (a reorg) and a finalised head trailing it by `lag`
blocks, as GRANDPA does on subtensor (and the devnet with a finality lag);
`lag=0` is the devnet's instant finality. The SDK calls used are the pinned
11.3 client's `block`, `finalized_block`, `block_info(n)` and `block_time()`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from subnet.node.chain import ChainView
from subnet.node.runtime import NodeRuntime
from subnet.protocol.windows import WindowParams, seed_from_hash, window_start

WP = WindowParams(window_blocks=10)


@dataclass
class _Info:
    number: int
    hash: str


class ForkingChain:
    """Best chain with a reorg-able tip; `finalized_block` trails `block` by `lag`."""

    def __init__(self, head: int, lag: int) -> None:
        self.head, self.lag, self.fork = head, lag, 0
        self.block_info_calls = 0

    @property
    def block(self) -> int:
        return self.head

    @property
    def finalized_block(self) -> int:
        return max(0, self.head - self.lag)

    def _hash(self, n: int) -> str:
        fork = self.fork if n > self.finalized_block else 0  # a reorg rewrites only unfinalised blocks
        return "0x" + hashlib.sha256(f"{n}/{fork}".encode()).hexdigest()

    def block_info(self, n: int) -> _Info | None:
        self.block_info_calls += 1
        return None if n > self.head else _Info(n, self._hash(n))

    def block_time(self) -> float:
        return 12.0

    def reorg(self) -> None:
        """Replace every block above the finalised head with a sibling branch."""
        self.fork += 1


def test_seed_waits_for_finality_then_is_the_first_blocks_hash() -> None:
    chain = ForkingChain(head=23, lag=3)
    view = ChainView(chain, 1, WP)
    assert window_start(2, WP) == 20 and chain.finalized_block == 20
    assert view.window_seed(2) == seed_from_hash(chain._hash(20))  # 20 is final: readable
    chain.head = 31  # window 3 starts at 30; finalised head is 28
    assert view.window_seed(3) is None
    assert view.block() == 31  # deadlines and evidence use the head, not the finalised block
    chain.head = 33
    assert view.window_seed(3) == seed_from_hash(chain._hash(30))


def test_a_tip_reorg_cannot_split_seeds_between_a_miner_and_a_validator() -> None:
    chain = ForkingChain(head=31, lag=3)
    miner, validator = ChainView(chain, 1, WP), ChainView(chain, 1, WP)
    tip_hash_before = chain._hash(30)  # what a head-reading node would have used
    assert miner.window_seed(3) is None  # block 30 is on the best chain but not final
    chain.reorg()
    assert chain._hash(30) != tip_hash_before
    chain.head = 40  # 30..37 are final now, on the new branch
    seeds = {miner.window_seed(3), validator.window_seed(3)}
    assert seeds == {seed_from_hash(chain._hash(30))}
    chain.reorg()  # a later tip reorg leaves finalised seeds alone
    assert miner.window_seed(3) == validator.window_seed(3) == seeds.pop()


def test_only_finalised_hashes_are_cached() -> None:
    chain = ForkingChain(head=35, lag=10)
    view = ChainView(chain, 1, WP)
    assert view.block_hash(30) is None and chain.block_info_calls == 0  # not final: not even read
    chain.head = 40
    h = view.block_hash(30)
    assert h is not None and view.block_hash(30) == h and chain.block_info_calls == 1


def test_instant_finality_needs_no_wait() -> None:
    chain = ForkingChain(head=30, lag=0)
    assert ChainView(chain, 1, WP).window_seed(3) == seed_from_hash(chain._hash(30))


def _waiting_runtime(chain: ForkingChain) -> SimpleNamespace:
    view = ChainView(chain, 1, WP)
    return SimpleNamespace(chain=view, window_params=WP, head_poll_s=0.0)


def test_wait_for_seed_returns_once_final_and_gives_up_when_the_window_ends() -> None:
    chain = ForkingChain(head=30, lag=3)

    def advance() -> bool:  # the stop callback doubles as the clock: one block per poll
        chain.head += 1
        return False

    rt = _waiting_runtime(chain)
    assert NodeRuntime.wait_for_seed(rt, 3, advance) == seed_from_hash(chain._hash(30))
    assert chain.head >= 33
    stalled = ForkingChain(head=30, lag=50)  # finality stalls past the window's end
    rt = _waiting_runtime(stalled)

    def advance_stalled() -> bool:
        stalled.head += 1
        return False

    assert NodeRuntime.wait_for_seed(rt, 3, advance_stalled) is None
    assert stalled.head >= 40


@pytest.mark.parametrize(("block_s", "poll"), [(12.0, 3.0), (1.0, 0.25), (0.5, 0.125), (0.01, 0.05)])
def test_head_poll_follows_the_chains_block_time(block_s: float, poll: float) -> None:
    rt = SimpleNamespace(_head_poll_s=None, chain=SimpleNamespace(block_time=lambda: block_s))
    assert NodeRuntime.head_poll_s.fget(rt) == pytest.approx(poll)


@pytest.mark.slow
def test_on_a_devnet_with_a_finality_lag(tmp_path) -> None:
    """The same rules against the devnet process (finalised head `lag` blocks behind), through the SDK."""
    import time

    import bittensor as bt
    from harness.devnet import bootstrap, running_devnet

    from subnet.chain import make_subtensor

    lag = 3
    with running_devnet(tmp_path, block_ms=100, finality_lag=lag) as devnet:
        boot = bootstrap(devnet, tmp_path / "wallets", miners=1)
        sub = make_subtensor(devnet.network)
        try:
            view = ChainView(sub, boot.netuid, WindowParams(window_blocks=1))  # window w starts at block w
            head = view.block()
            assert 0 <= head - view.finalized_block() <= lag + 1
            assert view.window_seed(head) is None  # on the best chain, not yet final
            deadline = time.monotonic() + 30
            while view.finalized_block() < head and time.monotonic() < deadline:
                time.sleep(0.05)
            assert view.window_seed(head) == seed_from_hash(sub.block_info(head).hash)
            # a long store location goes into several Raw fields and reads back whole
            miner = bt.Wallet(boot.miners[0].wallet, "default", str(tmp_path / "wallets"))
            location = "s3://" + "tessera-bucket-" * 10 + "x/prefix?endpoint=https://example.r2.cloudflarestorage.com"
            assert 128 < len(location) < 375
            view.commit_location(miner, location)
            peers = {p.uid: p for p in view.peers()}
            assert peers[boot.miners[0].uid].location == location
            assert all(p.registered_at is not None and 0 <= p.registered_at <= view.block() for p in peers.values())
        finally:
            sub.close()
