"""Windows and seeds: arithmetic, edges, golden seeds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subnet.errors import ProtocolError
from subnet.protocol.windows import WindowParams, seed_from_hash, window_end, window_of, window_start


@given(wb=st.integers(1, 1000), start=st.integers(0, 10_000), off=st.integers(0, 10**7))
def test_block_lies_in_its_window(wb: int, start: int, off: int) -> None:
    p = WindowParams(window_blocks=wb, start_block=start)
    block = start + off
    w = window_of(block, p)
    assert window_start(w, p) <= block < window_end(w, p)
    assert window_end(w, p) == window_start(w + 1, p)
    assert window_end(w, p) - window_start(w, p) == wb


def test_edges_and_errors() -> None:
    p = WindowParams(window_blocks=10, start_block=5)
    assert window_of(5, p) == 0 and window_of(14, p) == 0 and window_of(15, p) == 1
    with pytest.raises(ProtocolError):
        window_of(4, p)
    with pytest.raises(ProtocolError):
        window_start(-1, p)
    with pytest.raises(ProtocolError):
        WindowParams(window_blocks=0)
    with pytest.raises(ProtocolError):
        WindowParams(window_blocks=3, start_block=-1)


def test_seed_golden_and_forms() -> None:
    # Golden values: a change here forks the network (every node must agree).
    assert seed_from_hash("0x" + "00" * 32) == 6580962131905780241
    assert seed_from_hash(bytes(range(32))) == 11915344766082324262
    h = "0x" + bytes(range(32)).hex()
    assert seed_from_hash(h) == seed_from_hash(h[2:]) == seed_from_hash(h.upper().replace("0X", "0x"))
    assert 0 <= seed_from_hash("ab") < 2**64


@pytest.mark.parametrize("bad", ["", "0x", "0xzz", "hello", 12, None])
def test_seed_rejects_garbage(bad: object) -> None:
    with pytest.raises(ProtocolError):
        seed_from_hash(bad)  # type: ignore[arg-type]
