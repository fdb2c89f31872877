"""model_hash and atomic safetensors checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from subnet.errors import ModelError
from subnet.model.presets import build_model
from subnet.model.state import (
    checkpoint_bytes,
    load_checkpoint,
    load_checkpoint_bytes,
    model_hash,
    save_checkpoint,
)

torch.set_num_threads(1)


def test_hash_sensitivity() -> None:
    m = build_model("tiny", seed=0)
    h = model_hash(m)
    assert h == model_hash(m.state_dict()) and len(h) == 64
    with torch.no_grad():
        m.model.norm.weight[0] += 1e-7
    assert model_hash(m) != h
    sd = {"a": torch.zeros(2, 3)}
    assert model_hash(sd) != model_hash({"a": torch.zeros(3, 2)})  # shape counts
    assert model_hash(sd) != model_hash({"a": torch.zeros(2, 3, dtype=torch.float64)})  # dtype counts
    assert model_hash({"x": torch.ones(4, dtype=torch.bfloat16)})  # bf16 has no numpy dtype: still hashes


def test_round_trip(tmp_path: Path) -> None:
    m = build_model("tiny", seed=1)
    path = save_checkpoint(m, tmp_path / "ck" / "v3.safetensors", {"version": 3, "window": 12, "note": "x"})
    sd, meta = load_checkpoint(path)
    assert meta == {"version": 3, "window": 12, "note": "x"}
    assert model_hash(sd) == model_hash(m)
    m2 = build_model("tiny", seed=2)
    m2.load_state_dict(sd)
    assert model_hash(m2) == model_hash(m)
    assert [p.name for p in path.parent.iterdir()] == ["v3.safetensors"]  # no temp file left
    sd_b, meta_b = load_checkpoint_bytes(checkpoint_bytes(m, {"version": 3}))
    assert meta_b == {"version": 3} and model_hash(sd_b) == model_hash(m)


def test_overwrite_is_atomic_replace(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    save_checkpoint({"w": torch.zeros(3)}, path, {"v": 1})
    save_checkpoint({"w": torch.ones(3)}, path, {"v": 2})
    sd, meta = load_checkpoint(path)
    assert meta == {"v": 2} and torch.equal(sd["w"], torch.ones(3))


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        load_checkpoint(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ModelError):
        load_checkpoint(junk)
    with pytest.raises(ModelError):
        load_checkpoint_bytes(b"garbage")
    with pytest.raises(ModelError):
        checkpoint_bytes({"w": torch.zeros(1)}, {"bad": float("nan")})
