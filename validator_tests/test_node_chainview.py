"""Pure parts of the neurons' chain view: commitments, lead choice, peer store policy."""

from __future__ import annotations

from subnet.node.chain import COMMIT_PREFIX, Peer, lead_validator, parse_commitment
from subnet.node.peerstores import PeerStores, is_local
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
