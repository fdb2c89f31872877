"""Commit-reveal escrows over the Substrate face (subnet/devnet/substrate_rpc/escrow.py).

A SCALE timelocked commit has no room for the devnet's plaintext escrow, so
the SDK-side hook posts it first (`devnet_commitEscrow`) and the face attaches
it to the commit as `devnet_reveal` when that extrinsic is admitted. Fast:
an in-process `Node` behind `SubstrateFace`, extrinsics signed as the SDK signs.
The full path (the SDK's own `SetWeights` over RpcSubstrate, revealed at the
drand round) is in test_devnet_commit_reveal.py and the e2e tests.
"""

from __future__ import annotations

import asyncio

import bittensor_core
import pytest
from bittensor._transport.codec import RuntimeCodec, strip_option_opaque_metadata
from harness.substrate_face import face_rpc, fresh_face

from subnet.devnet.codec import from_wire
from subnet.devnet.server import RpcError
from subnet.devnet.substrate_rpc.escrow import EscrowBook, EscrowRefused, commit_bytes
from subnet.devnet.substrate_rpc.extrinsics import ScaleExtrinsic
from subnet.devnet.substrate_rpc.face import SubstrateFace

ALICE = bittensor_core.Keypair.create_from_uri("//Alice")
COMMIT = bytes(range(40))
ESCROW = {"hotkey": ALICE.ss58_address, "uids": [1, 2], "values": [65535, 100], "version_key": 7}


@pytest.fixture
def face(tmp_path):
    yield from fresh_face(tmp_path)


_call = face_rpc


def _signed_commit(face: SubstrateFace, *, nonce: int, commit: bytes = COMMIT) -> bytes:
    raw = bytes.fromhex(_call(face, "state_call", "Metadata_metadata_at_version", "0x0f000000")[2:])
    version = _call(face, "state_getRuntimeVersion")
    codec = RuntimeCodec(strip_option_opaque_metadata(raw), spec_version=version["specVersion"],
                         transaction_version=version["transactionVersion"])
    call = codec.compose_call("SubtensorModule", "commit_timelocked_mechanism_weights", {
        "netuid": 1, "mecid": 0, "commit": "0x" + commit.hex(), "reveal_round": 1, "commit_reveal_version": 4})
    genesis = face.node.genesis_hash
    payload = codec.signature_payload(call, era="00", nonce=nonce, tip=0, tip_asset_id=None,
                                      genesis_hash=genesis, era_block_hash=genesis)
    data, _ = codec.encode_signed_extrinsic(call, public_key=ALICE.public_key, signature=ALICE.sign(payload),
                                            signature_version=1, era="00", nonce=nonce, tip=0, tip_asset_id=None)
    return data


async def _submit_and_seal(face: SubstrateFace, data: bytes) -> dict:
    """Submit, note the admitted extrinsic's params, seal a block; those params."""
    await face.call("author_submitExtrinsic", ["0x" + data.hex()])
    (ext, _), = face.node._pool
    face.node.produce_block()
    return ext.params


def test_escrow_book_first_offer_wins_and_malformed_offers_are_refused():
    book = EscrowBook(max_pending=2)
    book.offer("0x" + COMMIT.hex(), ESCROW)
    with pytest.raises(EscrowRefused, match="already"):
        book.offer("0x" + COMMIT.hex().upper().replace("0X", "0x"), {**ESCROW, "uids": [3, 4]})
    for bad_commit, bad_escrow in [("nothex", ESCROW), ("0xzz", ESCROW), ("0x" + "00" * 5001, ESCROW),
                                   ("0x00", {"hotkey": "x"}), ("0x00", {**ESCROW, "uids": [1]}), ("0x00", [1])]:
        with pytest.raises(EscrowRefused):
            book.offer(bad_commit, bad_escrow)
    book.offer("0x01", ESCROW)
    book.offer("0x02", ESCROW)  # bounded: the oldest pending escrow goes
    assert len(book) == 2
    book.offer("0x" + COMMIT.hex(), ESCROW)  # dropped, so offerable again


def test_escrow_attached_to_its_scale_commit_and_consumed_on_admission(face):
    assert _call(face, "devnet_commitEscrow", "0x" + COMMIT.hex(), ESCROW) is True
    with pytest.raises(RpcError) as refused:
        _call(face, "devnet_commitEscrow", "0x" + COMMIT.hex(), {**ESCROW, "values": [1, 1]})
    assert refused.value.code == -32602 and "already" in refused.value.message
    # a pool refusal (nonce ahead) keeps the escrow for the resubmission
    with pytest.raises(RpcError) as future:
        _call(face, "author_submitExtrinsic", "0x" + _signed_commit(face, nonce=3).hex())
    assert future.value.code == 1010
    assert len(face.escrows) == 1
    params = asyncio.run(_submit_and_seal(face, _signed_commit(face, nonce=0)))
    assert params["devnet_reveal"] == ESCROW and from_wire(params["commit"]) == COMMIT
    assert len(face.escrows) == 0
    # dispatched by the runtime's rules (no subnet 1 here: refused, as on chain; the nonce is used)
    (receipt,) = face.node.store.block(face.node.head.number).extrinsics
    assert receipt["error"]["name"] == "MechanismDoesNotExist"
    assert face.node.next_index(ALICE.ss58_address) == 1


def test_commit_without_escrow_carries_none(face):
    _call(face, "devnet_commitEscrow", "0x" + bytes(8).hex(), ESCROW)  # someone else's commit
    assert "devnet_reveal" not in asyncio.run(_submit_and_seal(face, _signed_commit(face, nonce=0)))
    assert len(face.escrows) == 1


@pytest.mark.parametrize("data", [b"", b"abc", b"0x12", b"0xzz", bytes([0xFF, 0xFE]), bytes(range(256)), COMMIT])
def test_commit_bytes_undo_the_codecs_text_or_hex_decoding(face, data):
    face._load()
    length = (len(data) << 2 | 1).to_bytes(2, "little") if len(data) >= 64 else bytes([len(data) << 2])
    decoded = face.codec.decode("Vec<u8>", length + data)
    ext = ScaleExtrinsic(module="SubtensorModule", function="commit_timelocked_mechanism_weights",
                         params={"commit": decoded}, signer=ALICE.ss58_address, nonce=0, era_birth=0, era_period=0,
                         genesis_hash="0x00", raw=b"", payload=b"")
    assert commit_bytes(ext) == data


def test_escrow_post_to_an_unreachable_face_warns_and_never_raises():
    import time

    from harness.devnet import free_port

    from subnet.devnet.substrate import _post_escrow

    t0 = time.monotonic()
    _post_escrow(f"ws://127.0.0.1:{free_port()}", COMMIT, ESCROW, timeout=2.0)  # refused: the commit goes on
    assert time.monotonic() - t0 < 2.0
