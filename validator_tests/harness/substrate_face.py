"""A devnet node with its Substrate face in-process, and the SDK's codec built from that face's metadata.

Shared by the face's fast tests (test_devnet_substrate*.py): a fresh node
(instant seal, one block produced), calls through the face's own dispatcher,
and the `RuntimeCodec` the SDK's transport would build.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bittensor._transport.codec import RuntimeCodec, strip_option_opaque_metadata

from subnet.devnet.config import DevnetConfig
from subnet.devnet.node import Node
from subnet.devnet.substrate_rpc.face import SubstrateFace


def fresh_face(tmp_path: Path) -> Iterator[SubstrateFace]:
    """Body of a pytest fixture: a face over a new node under `tmp_path`, closed afterwards."""
    node = Node(DevnetConfig(dir=tmp_path / "devnet", block_ms=0))
    node.produce_block()
    try:
        yield SubstrateFace(node)
    finally:
        node.close()


def face_rpc(face: SubstrateFace, method: str, *params: Any) -> Any:
    """One JSON-RPC method through the face's dispatcher (no socket)."""
    return asyncio.run(face.call(method, list(params)))


def sdk_codec(face: SubstrateFace) -> RuntimeCodec:
    """The codec the SDK builds: metadata fetched the way `_transport.runtime` fetches it."""
    raw = bytes.fromhex(face_rpc(face, "state_call", "Metadata_metadata_at_version", "0x0f000000")[2:])
    version = face_rpc(face, "state_getRuntimeVersion")
    return RuntimeCodec(strip_option_opaque_metadata(raw), spec_version=version["specVersion"],
                        transaction_version=version["transactionVersion"])
