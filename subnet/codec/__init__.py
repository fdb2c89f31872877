"""Pseudo-gradient compression (SparseLoCo-style) and the signed wire format.

`sparseloco` encodes with error feedback + chunked top-k + low-bit values;
`wire` turns an encoded update into a signed safetensors artifact and back;
`apply` applies a decoded update to live parameters with an exact undo.
"""

from subnet.codec.apply import Undo, apply_sparse
from subnet.codec.config import CodecConfig
from subnet.codec.errors import (
    ArtifactError,
    BadIndex,
    BadPayloadHash,
    BadShape,
    BadSignature,
    HeaderMismatch,
    Malformed,
    NonFinite,
    TooLarge,
    Truncated,
    ValueOutOfRange,
    WrongHotkey,
)
from subnet.codec.sparseloco import EncodedUpdate, Encoder, SparseTensor, decode, decode_sparse
from subnet.codec.wire import Artifact, ArtifactHeader, expected_max_bytes, read_artifact, write_artifact

__all__ = [
    "Artifact", "ArtifactError", "ArtifactHeader", "BadIndex", "BadPayloadHash", "BadShape", "BadSignature",
    "CodecConfig", "EncodedUpdate", "Encoder", "HeaderMismatch", "Malformed", "NonFinite", "SparseTensor",
    "TooLarge", "Truncated", "Undo", "ValueOutOfRange", "WrongHotkey", "apply_sparse", "decode", "decode_sparse",
    "expected_max_bytes", "read_artifact", "write_artifact",
]
