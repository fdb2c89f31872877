"""Signed artifact files: round trip, and one typed refusal per way a peer file can be wrong."""

from __future__ import annotations

import io
import json
import pickle

import pytest
import torch
from bittensor.sp_core import Keypair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subnet.codec import (
    ArtifactError,
    ArtifactHeader,
    BadIndex,
    BadPayloadHash,
    BadShape,
    BadSignature,
    CodecConfig,
    Encoder,
    HeaderMismatch,
    Malformed,
    NonFinite,
    TooLarge,
    Truncated,
    ValueOutOfRange,
    WrongHotkey,
    decode,
    expected_max_bytes,
    read_artifact,
    write_artifact,
)
from subnet.codec.bitpack import pack_bits, unpack_bits
from subnet.codec.sparseloco import pack_indices, unpack_indices
from subnet.codec.wire import header_metadata, sign_and_pack

torch.set_num_threads(1)

SHAPES = {"blk.w": (64, 200), "blk.norm": (200,), "tail": (5000,)}
CFG = CodecConfig(chunk=4096, topk=64, value_bits=2)
ALICE = Keypair.create_from_uri("//Alice")
BOB = Keypair.create_from_uri("//Bob")


def _encoded(seed: int = 0, cfg: CodecConfig = CFG):
    g = torch.Generator().manual_seed(seed)
    return Encoder(SHAPES, cfg).encode({n: torch.randn(s, generator=g) for n, s in SHAPES.items()})


def _header(kp: Keypair = ALICE, **kw) -> ArtifactHeader:
    base = dict(netuid=7, window=42, uid=3, hotkey=kp.ss58_address, fragment=1, base_version=9)
    base.update(kw)
    return ArtifactHeader(**base)


def _read(data: bytes, **kw):
    args = dict(expected_hotkey=ALICE.ss58_address, max_bytes=1 << 20, shapes=SHAPES, netuid=7, window=42,
                fragment=1, base_version=9, codec=CFG)
    args.update(kw)
    return read_artifact(data, **args)


def _tensors(enc):
    return {"idx": enc.idx.clone(), "occ": enc.occ.clone(), "val": enc.val.clone(), "scale": enc.scales.clone()}


def _resign(tensors, meta=None, kp: Keypair = ALICE) -> bytes:
    """A validly signed file with arbitrary content: what a hostile but registered miner can send."""
    return sign_and_pack(tensors, meta or header_metadata(_encoded(), _header()), kp)


def test_round_trip_decodes_identically() -> None:
    enc = _encoded()
    data = write_artifact(enc, _header(), ALICE)
    art = _read(data)
    assert art.header == _header()
    assert art.nbytes == len(data)
    assert len(data) <= expected_max_bytes(SHAPES, CFG)
    a, b = decode(enc, SHAPES), decode(art.encoded, SHAPES)
    assert all(torch.equal(a[n], b[n]) for n in SHAPES)


def test_sign_with_foreign_keypair_refused_at_write() -> None:
    with pytest.raises(WrongHotkey):
        write_artifact(_encoded(), _header(ALICE), BOB)


def test_tampered_payload_byte() -> None:
    data = bytearray(write_artifact(_encoded(), _header(), ALICE))
    data[-3] ^= 0x01  # inside the last tensor's bytes
    with pytest.raises(BadPayloadHash):
        _read(bytes(data))


def test_tampered_header_field() -> None:
    data = write_artifact(_encoded(), _header(), ALICE)
    forged = data.replace(b'"window":"42"', b'"window":"43"')
    assert forged != data and len(forged) == len(data)
    with pytest.raises(BadSignature):
        _read(forged, window=43)


def test_wrong_hotkey() -> None:
    data = write_artifact(_encoded(), _header(BOB), BOB)
    with pytest.raises(WrongHotkey, match=BOB.ss58_address[:10]):
        _read(data)


def test_signature_by_another_key_claiming_our_hotkey() -> None:
    data = sign_and_pack(_tensors(_encoded()), header_metadata(_encoded(), _header(ALICE)), BOB)
    with pytest.raises(BadSignature):
        _read(data)


def test_oversized_refused_before_parsing() -> None:
    data = write_artifact(_encoded(), _header(), ALICE)
    with pytest.raises(TooLarge):
        _read(data, max_bytes=len(data) - 1)
    with pytest.raises(TooLarge):
        _read(b"\xff" * 100, max_bytes=99)  # not even parsed


def test_nan_scale() -> None:
    t = _tensors(_encoded())
    t["scale"][2, 1] = float("nan")
    with pytest.raises(NonFinite):
        _read(_resign(t))


def test_scale_over_bound_and_negative() -> None:
    t = _tensors(_encoded())
    t["scale"][0, 1] = 1e6
    with pytest.raises(ValueOutOfRange, match="bound"):
        _read(_resign(t))
    t = _tensors(_encoded())
    t["scale"][0, 0] = -1.0
    with pytest.raises(ValueOutOfRange):
        _read(_resign(t))


def _repack(enc, blocks, **override):
    """Re-encode (possibly hostile) per-block positions with the real index coder."""
    t = _tensors(enc)
    t["idx"], t["occ"] = pack_indices(enc, blocks)
    t.update(override)
    return t


def test_repacked_honest_indices_still_read() -> None:
    enc = _encoded()
    assert _read(_resign(_repack(enc, unpack_indices(enc)))).header == _header()


def test_out_of_range_index_in_partial_chunk() -> None:
    enc = _encoded()
    blocks = unpack_indices(enc)
    names = [t.name for t in enc.layout.tensors]
    tail_blocks = blocks[names.index("tail")]  # 5000 = 4096 + a 904-element partial chunk
    tail_blocks[1][0, -1] = 910  # inside the last (partial) sub-block, past the end of the tensor
    with pytest.raises(BadIndex, match="out of range"):
        _read(_resign(_repack(enc, blocks)))


def test_out_of_range_index_fixed_width_mode() -> None:
    cfg = CodecConfig(chunk=100, topk=3, value_bits=2)
    assert cfg.sub_block_bits is None  # 7-bit fixed indices are cheaper than an occupancy map here
    enc = _encoded(cfg=cfg)
    blocks = unpack_indices(enc)
    blocks[0][0][0, -1] = 127  # fits 7 bits, >= chunk
    with pytest.raises(BadIndex, match="out of range"):
        _read(_resign(_repack(enc, blocks), header_metadata(enc, _header())), codec=cfg)


def test_repeated_index_refused() -> None:
    enc = _encoded()
    blocks = unpack_indices(enc)
    blocks[0][0][0, 1] = blocks[0][0][0, 0]  # the same position twice would double its weight
    with pytest.raises(BadIndex, match="repeated"):
        _read(_resign(_repack(enc, blocks)))


def test_bad_occupancy_maps_refused() -> None:
    enc = _encoded()
    layout = enc.layout
    occ = unpack_bits(enc.occ, 1, layout.n_occ_bits)
    extra = occ.clone()
    extra[(extra == 0).nonzero()[0]] = 1  # one entry too many in the first chunk
    with pytest.raises(BadIndex, match="occupancy"):
        _read(_resign(_tensors(enc) | {"occ": pack_bits(extra, 1)}))
    # move the first chunk's last entry past its terminating zero (k ones kept, but after the last sub-block)
    rows_bits = 64 + 4096 // 32
    chunk0 = occ[:rows_bits].clone()
    last_one = int(chunk0.nonzero()[-1])
    chunk0[last_one] = 0
    chunk0[rows_bits - 1] = 1
    moved = occ.clone()
    moved[:rows_bits] = chunk0
    with pytest.raises(BadIndex):
        _read(_resign(_tensors(enc) | {"occ": pack_bits(moved, 1)}))


def test_wrong_shapes() -> None:
    data = write_artifact(_encoded(), _header(), ALICE)
    with pytest.raises(BadShape, match="blk.w"):
        _read(data, shapes={**SHAPES, "blk.w": (64, 201)})
    with pytest.raises(BadShape):
        _read(data, shapes={**SHAPES, "other": (10,)})


def test_packed_tensor_of_wrong_length() -> None:
    t = _tensors(_encoded())
    t["val"] = torch.cat([t["val"], torch.zeros(1, dtype=torch.uint8)])
    with pytest.raises(BadShape, match="val"):
        _read(_resign(t))


def test_truncated_file() -> None:
    data = write_artifact(_encoded(), _header(), ALICE)
    for cut in (3, 20, len(data) // 2, len(data) - 1):
        with pytest.raises(Truncated):
            _read(data[:cut])


def test_trailing_bytes() -> None:
    data = write_artifact(_encoded(), _header(), ALICE)
    with pytest.raises(Malformed, match="trailing"):
        _read(data + b"\0")


def test_pickle_and_torch_save_payloads_refused() -> None:
    enc = _encoded()
    with pytest.raises(Malformed, match="pickle"):
        _read(pickle.dumps({"idx": enc.idx.numpy(), "val": enc.val.numpy()}))
    buf = io.BytesIO()
    torch.save(_tensors(enc), buf)
    with pytest.raises(Malformed, match="zip"):
        _read(buf.getvalue())


def test_header_length_starting_with_pickle_opcode_is_not_mistaken_for_pickle() -> None:
    """A valid file whose length prefix begins 0x80 0x04 (= a pickle's first bytes) still reads."""
    meta = header_metadata(_encoded(), _header())
    for pad in range(0, 400):
        meta["layout"] = header_metadata(_encoded(), _header())["layout"] + " " * pad  # JSON allows trailing spaces
        data = _resign(_tensors(_encoded()), meta)
        if data[0] == 0x80 and data[1] in (2, 3, 4, 5):
            break
    else:
        pytest.skip("no padding produced a 0x80 0x0N prefix")
    assert _read(data).header == _header()


def test_header_mismatches() -> None:
    data = write_artifact(_encoded(), _header(), ALICE)
    for kw in ({"window": 41}, {"netuid": 8}, {"fragment": 0}, {"base_version": 10}, {"uid": 4},
               {"codec": CodecConfig(chunk=4096, topk=128)}):
        with pytest.raises(HeaderMismatch):
            _read(data, **kw)


def test_unknown_or_missing_metadata_field() -> None:
    meta = header_metadata(_encoded(), _header())
    meta["extra"] = "1"
    with pytest.raises(Malformed, match="extra"):
        _read(_resign(_tensors(_encoded()), meta))
    meta = header_metadata(_encoded(), _header())
    meta["window"] = "042"
    with pytest.raises(Malformed, match="window"):
        _read(_resign(_tensors(_encoded()), meta))


def test_hostile_header_length_and_json() -> None:
    with pytest.raises(Malformed):
        _read((1 << 62).to_bytes(8, "little") + b"{}")
    deep = b"[" * 100000 + b"]" * 100000
    with pytest.raises(Malformed):
        _read(len(deep).to_bytes(8, "little") + deep)
    dup = b'{"__metadata__":{},"__metadata__":{}}'
    with pytest.raises(Malformed, match="duplicate"):
        _read(len(dup).to_bytes(8, "little") + dup)
    huge_shape = json.dumps({"idx": {"dtype": "U8", "shape": [10**18, 10**18], "data_offsets": [0, 0]}}).encode()
    with pytest.raises(Malformed):
        _read(len(huge_shape).to_bytes(8, "little") + huge_shape)


_VALID = write_artifact(_encoded(), _header(), ALICE)
_VALID_ART = _read(_VALID)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes_only_raise_artifact_errors(blob: bytes) -> None:
    with pytest.raises(ArtifactError):
        _read(blob)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(_VALID)))
def test_fuzz_mutated_valid_file(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_VALID)
    for pos, byte in edits:
        data[pos] = byte
    data = bytes(data[:cut]) if cut < len(data) else bytes(data)
    try:
        art = _read(data)
    except ArtifactError:
        return
    # a mutation may only survive if it is semantically void (e.g. JSON whitespace in the header padding)
    assert art.payload_sha256 == _VALID_ART.payload_sha256 and art.header == _VALID_ART.header
    assert art.encoded.names == _VALID_ART.encoded.names and art.encoded.shapes == _VALID_ART.encoded.shapes
