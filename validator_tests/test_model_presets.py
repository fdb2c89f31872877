"""Model presets: sizes, vocab agreement with the tokenizer, deterministic init."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from subnet.errors import ModelError
from subnet.model.presets import PRESETS, build_config, build_model, count_params
from subnet.model.state import model_hash

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.mark.parametrize(("name", "low", "high"), [
    ("tiny", 0.8e6, 1.5e6), ("small", 8e6, 12e6), ("125m", 110e6, 140e6), ("1b", 1.0e9, 1.2e9), ("8b", 7.9e9, 8.1e9),
])
def test_param_counts(name: str, low: float, high: float) -> None:
    n = count_params(name)
    assert low <= n <= high
    cfg = build_config(name)
    assert cfg.vocab_size == PRESETS[name].vocab_size and not cfg.tie_word_embeddings
    assert cfg.hidden_size % cfg.num_attention_heads == 0


def test_meta_model_matches_real_for_tiny() -> None:
    real = build_model("tiny", seed=0)
    meta = build_model("tiny", device="meta")
    assert [(n, p.shape) for n, p in real.named_parameters()] == [(n, p.shape) for n, p in meta.named_parameters()]
    assert sum(p.numel() for p in real.parameters()) == count_params("tiny")


def test_seed_determinism_and_isolation() -> None:
    torch.manual_seed(1)
    before = torch.rand(1)
    torch.manual_seed(1)
    a = build_model("tiny", seed=7)
    assert torch.rand(1).equal(before)  # caller's RNG untouched
    assert model_hash(a) == model_hash(build_model("tiny", seed=7))
    assert model_hash(a) != model_hash(build_model("tiny", seed=8))


def test_same_bytes_in_two_processes() -> None:
    code = ("import torch;torch.set_num_threads(1);from subnet.model.presets import build_model;"
            "from subnet.model.state import model_hash;print(model_hash(build_model('tiny', seed=3)))")
    hashes = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=ROOT).stdout.strip() for _ in range(2)}
    assert hashes == {model_hash(build_model("tiny", seed=3))}


def test_forward_shapes() -> None:
    m = build_model("tiny", seed=0)
    x = torch.randint(0, PRESETS["tiny"].vocab_size, (2, 16))
    out = m(input_ids=x, labels=x)
    assert out.logits.shape == (2, 16, PRESETS["tiny"].vocab_size)
    assert torch.isfinite(out.loss) and abs(out.loss.item() - torch.log(torch.tensor(2048.0)).item()) < 0.5


def test_unknown_preset() -> None:
    with pytest.raises(ModelError):
        build_config("huge")
