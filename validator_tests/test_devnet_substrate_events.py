"""Pallet events in `System.Events` on the devnet's Substrate face (substrate_rpc/extrinsics.py).

The SDK reads some intents' outcomes from pallet events (`RegisterSubnet`
takes its netuid from `SubtensorModule.NetworkAdded`), so the face serves the
runtime's events its metadata declares beside `ExtrinsicSuccess`. Fast: an
in-process `Node`, an extrinsic signed as the SDK signs, decoded with the
SDK's codec from the served metadata.
"""

from __future__ import annotations

import asyncio

import bittensor_core
import pytest
from harness.substrate_face import face_rpc, fresh_face, sdk_codec

from subnet.devnet.substrate_rpc.face import SubstrateFace

ALICE = bittensor_core.Keypair.create_from_uri("//Alice")
BOB = bittensor_core.Keypair.create_from_uri("//Bob").ss58_address


@pytest.fixture
def face(tmp_path):
    yield from fresh_face(tmp_path)


_call = face_rpc
_codec = sdk_codec


async def _submit_and_seal(face: SubstrateFace, data: bytes) -> None:
    await face.call("author_submitExtrinsic", ["0x" + data.hex()])
    face.node.produce_block()


def test_register_network_reports_network_added_with_its_netuid(face):
    codec = _codec(face)
    call = codec.compose_call("SubtensorModule", "register_network", {"hotkey": BOB})
    genesis = face.node.genesis_hash
    payload = codec.signature_payload(call, era="00", nonce=0, tip=0, tip_asset_id=None,
                                      genesis_hash=genesis, era_block_hash=genesis)
    data, _ = codec.encode_signed_extrinsic(call, public_key=ALICE.public_key, signature=ALICE.sign(payload),
                                            signature_version=1, era="00", nonce=0, tip=0, tip_asset_id=None)
    asyncio.run(_submit_and_seal(face, data))
    events = codec.storage_entry("System", "Events")
    raw = _call(face, "state_getStorage", "0x" + codec.storage_key(events, []).hex(), face.node.head.hash)
    records = codec.decode(events.value_type, bytes.fromhex(raw[2:]))
    names = [(r["module_id"], r["event_id"]) for r in records]
    assert names == [("SubtensorModule", "NetworkAdded"), ("System", "ExtrinsicSuccess")]
    netuid = face.node.rt.netuids()[-1]
    assert list(records[0]["attributes"]) == [netuid, 1]
    assert all(r["extrinsic_idx"] == 0 for r in records)
