"""Pure parts of the neurons' chain view: commitments (split over Raw fields), lead choice, peer store policy."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from subnet.chain.commitments import MAX_RAW, commitment_capacity, commitment_fields
from subnet.errors import ChainError
from subnet.node.chain import COMMIT_PREFIX, ChainView, Peer, lead_validator, parse_commitment
from subnet.node.peerstores import PeerStores, is_local
from subnet.protocol.windows import WindowParams
from subnet.storage.peer import LocalPeerReader


def _peer(uid: int, stake: float, permit: bool = True, location: str | None = "s3://b/x") -> Peer:
    return Peer(uid=uid, hotkey=f"hk{uid}", stake=stake, validator_permit=permit, last_update=0,
                location=location, commit_block=1)


def test_parse_commitment_accepts_only_tessera_payloads():
    assert parse_commitment(COMMIT_PREFIX + "s3://bucket/p") == "s3://bucket/p"
    assert parse_commitment(COMMIT_PREFIX + "   ") is None
    assert parse_commitment("someone-else:s3://bucket") is None
    assert parse_commitment("") is None
    assert parse_commitment(None) is None


def test_lead_is_highest_stake_permitted_validator_with_a_store():
    peers = [_peer(0, 500.0, permit=False), _peer(1, 100.0), _peer(2, 300.0, location=None), _peer(3, 200.0)]
    assert lead_validator(peers).uid == 3  # uid 0 has no permit, uid 2 no store
    assert lead_validator(peers, exclude={"hk3"}).uid == 1  # next by stake when the lead is absent
    assert lead_validator([_peer(5, 10.0), _peer(4, 10.0)]).uid == 4  # ties break by uid
    assert lead_validator([_peer(1, 0.0)]) is None


def test_peer_stores_refuse_local_paths_off_devnet(tmp_path):
    loc = f"file://{tmp_path}"
    assert is_local(loc) and is_local(str(tmp_path)) and not is_local("s3://bucket/x")
    assert PeerStores(allow_local=False).get(loc) is None
    stores = PeerStores(allow_local=True)
    store = stores.get(loc)
    assert isinstance(store, LocalPeerReader)
    assert stores.get(loc) is store  # opened once, reused
    assert stores.get("s3://UPPER_case_bad") is None  # malformed: refused, not raised
    assert stores.get(None) is None


# -- commitments: Raw fields, split when long (pallets/commitments/src/lib.rs, types.rs) -------------------


def _sdk_reads(fields: list) -> str:
    """What the pinned SDK's metagraph shows as `neuron.commitment.data` for these fields."""
    from bittensor.metagraph import _decode_fields

    return _decode_fields(fields)


def test_long_store_locations_split_over_raw_fields_and_read_back_whole():
    """subtensor: at most MaxFields (3, runtime/src/lib.rs MaxCommitFieldsInner) fields; Raw0..Raw128 each."""
    short = COMMIT_PREFIX + "s3://b/p"
    assert commitment_fields(short) == [{f"Raw{len(short)}": "0x" + short.encode().hex()}]  # old shape kept
    endpoint = "https://" + "a" * 40 + ".r2.cloudflarestorage.com"
    location = f"s3://{'my-bucket-' * 6}x/tessera/prefix?endpoint={endpoint}"
    assert 128 < len(COMMIT_PREFIX + location) <= commitment_capacity()
    fields = commitment_fields(COMMIT_PREFIX + location)
    assert len(fields) == 2 and all(int(next(iter(f))[3:]) <= MAX_RAW for f in fields)
    assert parse_commitment(_sdk_reads(fields)) == location
    multibyte = COMMIT_PREFIX + "s3://b/" + "é" * 100  # a split inside a utf-8 character still decodes
    assert _sdk_reads(commitment_fields(multibyte)) == multibyte
    assert parse_commitment(_sdk_reads(commitment_fields(short))) == "s3://b/p"


def test_a_location_no_commitment_can_hold_is_a_clear_error():
    commitment_fields("x" * 384)
    with pytest.raises(ChainError, match="at most 384") as err:
        commitment_fields("x" * 385)
    assert "shorter store location" in str(err.value)
    with pytest.raises(ChainError, match="at most 128"):
        commitment_fields("x" * 129, max_fields=1)


def test_commit_location_uses_the_chains_max_fields():
    sent = []

    class Sub:
        def __init__(self, max_fields):
            self.max_fields = max_fields

        def constant(self, item):
            assert (item.container, item.name) == ("Commitments", "MaxFields")
            if isinstance(self.max_fields, Exception):
                raise self.max_fields
            return self.max_fields

        def submit_call(self, call, wallet, signer):
            sent.append(call.params["info"]["fields"])
            return SimpleNamespace(success=True)

    loc = "s3://b/" + "p" * 200
    ChainView(Sub(None), 1, WindowParams(window_blocks=10)).commit_location(None, loc)  # devnet: no constant
    ChainView(Sub(RuntimeError("no such constant")), 1, WindowParams(window_blocks=10)).commit_location(None, loc)
    assert [len(f) for f in sent] == [2, 2]
    with pytest.raises(ChainError):
        ChainView(Sub(1), 1, WindowParams(window_blocks=10)).commit_location(None, loc)
