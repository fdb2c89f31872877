"""The devnet's Substrate face (subnet/devnet/substrate_rpc): metadata, raw storage, runtime APIs.

Fast tests drive `SubstrateFace` on an in-process `Node` (SQLite under
tmp_path) and decode its answers with the pinned SDK's own codec
(`bittensor_core`, built from the served metadata), so a wrong type, key or
default shows up exactly as the SDK would see it.
"""

from __future__ import annotations

import asyncio

import bittensor_core
import pytest
from bittensor._transport.codec import RuntimeCodec
from harness.substrate_face import face_rpc, fresh_face, sdk_codec

from subnet.devnet.config import SPEC_VERSION
from subnet.devnet.server import RpcError
from subnet.devnet.substrate_rpc import scale
from subnet.devnet.substrate_rpc.face import SubstrateFace
from subnet.devnet.substrate_rpc.metadata import build_metadata, runtime_definition
from subnet.devnet.substrate_rpc.types import TypeExprError, TypeRegistry

ALICE = bittensor_core.Keypair.create_from_uri("//Alice").ss58_address
BOB = bittensor_core.Keypair.create_from_uri("//Bob").ss58_address


@pytest.fixture
def face(tmp_path):
    yield from fresh_face(tmp_path)


rpc = face_rpc
codec_from = sdk_codec


def test_compact_encoding_matches_the_sdk_codec():
    codec = RuntimeCodec(build_metadata(), spec_version=SPEC_VERSION, transaction_version=1)
    for value in (0, 63, 64, 16383, 16384, 2**30 - 1, 2**30, 2**64 - 1):
        assert scale.compact(value) == codec.encode_compact(value)
        assert scale.read_compact(scale.compact(value)) == (value, len(scale.compact(value)))


def test_unknown_type_expression_is_a_typed_error():
    with pytest.raises(TypeExprError):
        TypeRegistry().resolve("NoSuchType")
    with pytest.raises(TypeExprError):
        TypeRegistry().resolve("Frobnicate<u8>")


def test_metadata_is_v15_with_subtensor_names_and_decodable_defaults():
    codec = RuntimeCodec(build_metadata(), spec_version=SPEC_VERSION, transaction_version=1)
    assert codec.is_v15
    ir = codec.metadata_ir()
    by_name = {p.name: p for p in ir.pallets}
    assert by_name["SubtensorModule"].index == 7 and by_name["Commitments"].index == 18
    tempo = next(s for s in by_name["SubtensorModule"].storage if s.name == "Tempo")
    assert tempo.value_type_ident == "u16"
    assert "get_metagraph" in codec.runtime_api_map["SubnetInfoRuntimeApi"]
    pallets, _ = runtime_definition()
    for pallet in pallets:  # every ValueQuery default must decode (the SDK decodes it on a miss)
        for item in pallet.storage:
            entry = codec.storage_entry(pallet.name, item.name)
            codec.decode(entry.decode_type(False), entry.default_bytes)


def test_runtime_version_headers_and_hashes(face):
    version = rpc(face, "state_getRuntimeVersion")
    assert version["specVersion"] == SPEC_VERSION and version["transactionVersion"] == 1
    genesis = rpc(face, "chain_getBlockHash", 0)
    assert genesis == face.node.genesis_hash
    head = rpc(face, "chain_getHeader", None)
    assert int(head["number"], 16) == face.node.head.number == 1
    assert head["parentHash"] == genesis
    assert rpc(face, "chain_getHeader", "0x" + "ab" * 32) is None
    assert rpc(face, "chain_getFinalizedHead") == face.node.head.hash  # instant seal: lag 0


def test_account_and_subnet_storage_decode_to_the_json_face_values(face):
    codec = codec_from(face)
    account = codec.storage_entry("System", "Account")
    raw = rpc(face, "state_getStorage", "0x" + codec.storage_key(account, [ALICE]).hex())
    decoded = codec.decode(account.value_type, bytes.fromhex(raw[2:]))
    assert decoded == face.node.reader.query("System", "Account", [ALICE])
    assert decoded["data"]["free"] > 0
    total = codec.storage_entry("SubtensorModule", "TotalNetworks")
    raw = rpc(face, "state_getStorage", "0x" + codec.storage_key(total, []).hex())
    assert codec.decode(total.value_type, bytes.fromhex(raw[2:])) == len(face.node.rt.netuids())


def test_keys_paged_lists_only_existing_entries(face):
    codec = codec_from(face)
    tempo = codec.storage_entry("SubtensorModule", "Tempo")
    prefix = "0x" + codec.storage_key(tempo, []).hex()
    keys = rpc(face, "state_getKeysPaged", prefix, 100, None, None)
    netuids = sorted(codec.decode_storage_key_params(tempo, bytes.fromhex(k[2:]), fixed=0)[0] for k in keys)
    assert netuids == sorted(face.node.rt.netuids())
    assert rpc(face, "state_getKeysPaged", prefix, 100, keys[-1], None) == [] if keys else True


def test_hostile_storage_requests_get_typed_answers(face):
    codec = codec_from(face)
    keys = codec.storage_entry("SubtensorModule", "Keys")
    full = codec.storage_key(keys, [1, 0])
    assert rpc(face, "state_getStorage", "0x" + (full + b"\x00").hex()) is None  # stray byte
    assert rpc(face, "state_getStorage", "0x" + full[:-1].hex()) is None  # truncated
    assert rpc(face, "state_getStorage", "0x" + "00" * 40) is None  # no such item
    with pytest.raises(RpcError) as info:
        rpc(face, "state_getStorage", "0xzz")
    assert info.value.code == -32602
    with pytest.raises(RpcError) as info:
        rpc(face, "state_getStorage", "0x" + full.hex(), "0x" + "ab" * 32)
    assert info.value.code == 4001  # UnknownBlock, as a node answers
    with pytest.raises(RpcError) as info:
        rpc(face, "state_call", "SubnetInfoRuntimeApi_get_metagraph", "0x01")  # u16 needs 2 bytes
    assert info.value.code == -32602
    with pytest.raises(RpcError) as info:
        rpc(face, "state_call", "NoSuchApi_method", "0x")
    assert "is not found" in info.value.message
    assert rpc(face, "account_nextIndex", ALICE) == rpc(face, "system_accountNextIndex", ALICE) == 0


def test_runtime_api_answers_from_the_same_reader(face):
    codec = codec_from(face)
    definition = codec.runtime_api_map["SubnetRegistrationRuntimeApi"]["get_network_registration_cost"]
    raw = rpc(face, "state_call", "SubnetRegistrationRuntimeApi_get_network_registration_cost", "0x")
    assert codec.decode(definition["output"], bytes.fromhex(raw[2:])) == face.node.rt.genesis.network_lock_cost
    missing = codec.runtime_api_map["SubnetInfoRuntimeApi"]["get_metagraph"]
    raw = rpc(face, "state_call", "SubnetInfoRuntimeApi_get_metagraph", "0x" + (999).to_bytes(2, "little").hex())
    assert codec.decode(missing["output"], bytes.fromhex(raw[2:])) is None


def signed_transfer(face: SubstrateFace, *, nonce: int, value: int = 10**9, mortal: bool = True,
                    genesis: str | None = None) -> bytes:
    """A Balances.transfer_keep_alive from //Alice to //Bob, signed as the SDK signs it."""
    codec = codec_from(face)
    alice = bittensor_core.Keypair.create_from_uri("//Alice")
    call = codec.compose_call("Balances", "transfer_keep_alive", {"dest": BOB, "value": value})
    head = face.node.head.number
    era = {"period": 64, "current": head} if mortal else "00"
    genesis = genesis or face.node.genesis_hash
    birth_hash = face.node.store.block_hash(head) if mortal else genesis  # the era is born at `current`
    payload = codec.signature_payload(call, era=era, nonce=nonce, tip=0, tip_asset_id=None,
                                      genesis_hash=genesis, era_block_hash=birth_hash)
    data, _ = codec.encode_signed_extrinsic(call, public_key=alice.public_key, signature=alice.sign(payload),
                                            signature_version=1, era=era, nonce=nonce, tip=0, tip_asset_id=None)
    return data


async def _submit_and_seal(face: SubstrateFace, data: bytes) -> str:
    ext_hash = await face.call("author_submitExtrinsic", ["0x" + data.hex()])
    face.node.produce_block()
    return ext_hash


def test_signed_extrinsic_dispatched_with_events_and_block_body(face):
    codec = codec_from(face)
    before = face.node.reader.query("System", "Account", [BOB])["data"]["free"]
    data = signed_transfer(face, nonce=0)
    ext_hash = asyncio.run(_submit_and_seal(face, data))
    assert face.node.reader.query("System", "Account", [BOB])["data"]["free"] == before + 10**9
    block = rpc(face, "chain_getBlock", face.node.head.hash)["block"]
    assert block["extrinsics"] == ["0x" + data.hex()]
    assert ext_hash == "0x" + __import__("hashlib").blake2b(data, digest_size=32).hexdigest()
    events = codec.storage_entry("System", "Events")
    raw = rpc(face, "state_getStorage", "0x" + codec.storage_key(events, []).hex(), face.node.head.hash)
    (record,) = codec.decode(events.value_type, bytes.fromhex(raw[2:]))
    assert (record["extrinsic_idx"], record["event_id"]) == (0, "ExtrinsicSuccess")
    # A failing dispatch: the module error by pallet and error index, named by the SDK's codec.
    asyncio.run(_submit_and_seal(face, signed_transfer(face, nonce=1, value=10**30, mortal=False)))
    raw = rpc(face, "state_getStorage", "0x" + codec.storage_key(events, []).hex(), face.node.head.hash)
    (record,) = codec.decode(events.value_type, bytes.fromhex(raw[2:]))
    assert record["event_id"] == "ExtrinsicFailed"
    module = record["attributes"]["dispatch_error"]["Module"]
    assert codec.module_error(module["index"], bytes.fromhex(module["error"][2:])[0])["name"] == "InsufficientBalance"


def test_forged_replayed_and_garbage_extrinsics_refused(face):
    def refused(data: bytes) -> RpcError:
        with pytest.raises(RpcError) as info:
            asyncio.run(_submit_and_seal(face, data))
        assert info.value.code == 1010
        return info.value

    good = signed_transfer(face, nonce=0)
    tampered = bytearray(good)
    tampered[40] ^= 1  # inside the signature
    assert "bad signature" in refused(bytes(tampered)).message
    assert "bad signature" in refused(signed_transfer(face, nonce=0, genesis="0x" + "00" * 32)).message
    assert "Invalid Transaction" in refused(b"\x04\x00\x01").message
    assert "future" in refused(signed_transfer(face, nonce=5)).message
    asyncio.run(_submit_and_seal(face, good))
    assert "outdated" in refused(good).message  # replay
