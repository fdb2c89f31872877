"""Model identity and checkpoints.

`model_hash` is what nodes compare to agree they hold the same global model:
sha256 over every state-dict entry in sorted-name order (name, dtype, shape,
raw bytes). Checkpoints are safetensors (never pickle) written atomically
(temp file in the same directory, fsync, os.replace) so a kill -9 leaves
either the old file or the new one. `meta` is stored as JSON in the
safetensors header under one key, so it may hold any JSON values.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, save
from torch import nn

from subnet.atomic import write_bytes_atomic
from subnet.errors import ModelError

META_KEY = "tessera_meta"
MAX_HEADER_BYTES = 64 << 20  # safetensors header: tensor table + metadata


def _state(model_or_state: nn.Module | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    return model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state


def tensor_bytes(t: torch.Tensor) -> bytes:
    """Raw little-endian bytes of a tensor (any dtype, including bf16)."""
    t = t.detach().to("cpu").contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def model_hash(model_or_state: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """Hex sha256 over (name, dtype, shape, bytes) of every tensor, names sorted."""
    h = hashlib.sha256()
    state = _state(model_or_state)
    for name in sorted(state):
        t = state[name]
        h.update(f"{name}\0{str(t.dtype)}\0{tuple(t.shape)}\0".encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()


def _tensors(model_or_state: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in _state(model_or_state).items():
        t = t.detach().to("cpu").contiguous()
        if t.untyped_storage().data_ptr() in seen:  # safetensors refuses shared storage
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def checkpoint_bytes(model_or_state: nn.Module | Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> bytes:
    """Serialise to safetensors bytes (for object stores)."""
    try:
        header = {META_KEY: json.dumps(dict(meta), sort_keys=True, separators=(",", ":"), allow_nan=False)}
    except (TypeError, ValueError) as exc:
        raise ModelError(f"checkpoint meta must be JSON-serialisable: {exc}") from exc
    return save(_tensors(model_or_state), metadata=header)


def _split_meta(header: Mapping[str, str] | None) -> dict[str, Any]:
    raw = (header or {}).get(META_KEY)
    if raw is None:
        return {}
    if not isinstance(raw, str):
        raise ModelError("checkpoint meta must be a JSON string")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"checkpoint meta is not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelError("checkpoint meta must be a JSON object")
    return meta


def read_checkpoint_meta(data: bytes | bytearray | memoryview, *,
                         max_header_bytes: int = MAX_HEADER_BYTES) -> dict[str, Any]:
    """The `meta` of checkpoint bytes from the safetensors header alone: no tensor is parsed.

    Lets a follower check a checkpoint's signature and claims before handing
    peer bytes to the tensor parser. The length prefix is bounded before
    anything is decoded; a malformed header raises ModelError.
    """
    view = memoryview(data)
    if len(view) < 8:
        raise ModelError(f"checkpoint is {len(view)} bytes, shorter than the safetensors length prefix")
    n = int.from_bytes(view[:8], "little")
    if n > max_header_bytes or 8 + n > len(view):
        raise ModelError(f"checkpoint header claims {n} bytes (limit {max_header_bytes}, file {len(view)})")
    try:
        header = json.loads(bytes(view[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"checkpoint header is not JSON: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise ModelError("checkpoint header is not a JSON object")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise ModelError("checkpoint __metadata__ must map strings to strings")
    return _split_meta(meta)


def load_checkpoint_bytes(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Inverse of `checkpoint_bytes`; anything malformed (peer bytes) raises ModelError."""
    meta = read_checkpoint_meta(data)
    try:
        state = load(bytes(data))
    except Exception as exc:  # noqa: BLE001 - the parser's own errors on hostile bytes are not all SafetensorError
        raise ModelError(f"not a safetensors checkpoint: {type(exc).__name__}: {exc}") from exc
    return state, meta


def save_checkpoint(model_or_state: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike[str],
                    meta: Mapping[str, Any]) -> Path:
    """Write a safetensors checkpoint atomically; returns the final path."""
    return write_bytes_atomic(path, checkpoint_bytes(model_or_state, meta))


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read (state_dict, meta) from a checkpoint written by `save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata()
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"cannot read checkpoint {path}: {exc}") from exc
    return state, _split_meta(header)
