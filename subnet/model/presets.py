"""Model presets: Llama-style decoders from `transformers.LlamaConfig`.

`tiny` (~1.2M params, tests) and `small` (~10.7M, the demo) are trained on CPU
with the embedded BPE tokenizer, so their vocab matches it (2048 / 8192).
`125m`, `1b` (TinyLlama-1.1B shape) and `8b` (Llama-3-8B shape) are real
configurations, shape-checked on the meta device and never allocated in tests.

Embeddings are untied everywhere: the input embedding belongs to the first
fragment and the LM head to the last, so a tied matrix would be trained by two
cohorts at once. Init is deterministic: `build_model(name, seed)` seeds a
forked CPU RNG, so the same (name, seed, torch/transformers versions) yields
the same bytes in every process without touching the caller's global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from subnet.errors import ModelError


@dataclass(frozen=True, kw_only=True)
class ModelPreset:
    """Shape of one preset. Sizes in elements; `max_seq_len` in tokens."""

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    max_seq_len: int
    rope_theta: float = 10000.0
    tokenizer: str = "embedded"  # 'embedded' (BPE trained on the corpus) or a hub tokenizer name


PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in (
        ModelPreset(name="tiny", vocab_size=2048, hidden_size=128, intermediate_size=256,
                    n_layers=4, n_heads=4, n_kv_heads=4, max_seq_len=256),
        ModelPreset(name="small", vocab_size=8192, hidden_size=288, intermediate_size=768,
                    n_layers=6, n_heads=4, n_kv_heads=4, max_seq_len=512),
        ModelPreset(name="125m", vocab_size=32000, hidden_size=768, intermediate_size=2048,
                    n_layers=12, n_heads=12, n_kv_heads=12, max_seq_len=2048,
                    tokenizer="TinyLlama/TinyLlama_v1.1"),
        ModelPreset(name="1b", vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                    n_layers=22, n_heads=32, n_kv_heads=4, max_seq_len=2048,
                    tokenizer="TinyLlama/TinyLlama_v1.1"),
        ModelPreset(name="8b", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                    n_layers=32, n_heads=32, n_kv_heads=8, max_seq_len=8192, rope_theta=500000.0,
                    tokenizer="NousResearch/Meta-Llama-3-8B"),
    )
}


def get_preset(name: str) -> ModelPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ModelError(f"unknown model preset {name!r}", remediation=f"choose one of {sorted(PRESETS)}") from None


def build_config(name: str) -> LlamaConfig:
    """The `LlamaConfig` of preset `name` (fp32, untied, no dropout)."""
    p = get_preset(name)
    return LlamaConfig(
        vocab_size=p.vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.n_layers,
        num_attention_heads=p.n_heads,
        num_key_value_heads=p.n_kv_heads,
        max_position_embeddings=p.max_seq_len,
        rope_theta=p.rope_theta,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        initializer_range=0.02,
        rms_norm_eps=1e-5,
        use_cache=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        torch_dtype="float32",
    )


def build_model(name: str, seed: int = 0, *, device: str | torch.device = "cpu") -> LlamaForCausalLM:
    """Fresh model of preset `name`, initialised deterministically from `seed`.

    device="meta" builds shapes only (no memory), for the large presets.
    """
    config = build_config(name)
    device = torch.device(device)
    if device.type == "meta":
        with torch.device("meta"):
            return LlamaForCausalLM(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = LlamaForCausalLM(config)
    return model.to(device)


def count_params(config: LlamaConfig | str) -> int:
    """Number of distinct parameters, counted on the meta device (nothing allocated)."""
    if isinstance(config, str):
        config = build_config(config)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    return sum(p.numel() for p in model.parameters())
