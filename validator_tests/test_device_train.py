"""The inner loop's speed knobs change speed, not the step: micro-batches, autocast, checkpointing, compile.

Plus the 125m preset training for real (a few CPU steps, slow).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness.pages import stride_pages

from subnet.data.pages import TokenPages
from subnet.device.config import DeviceConfig
from subnet.miner.config import TrainConfig
from subnet.miner.distributed import shard_batches
from subnet.miner.train import TrainRuntime, inner_train, prepare_training
from subnet.model.fragments import partition
from subnet.model.presets import build_model
from subnet.model.state import model_hash

torch.set_num_threads(1)


def knob_pages(vocab: int = 211, page_len: int = 33) -> TokenPages:
    return stride_pages(seed=4, docs=200, step=11, modulus=vocab, page_len=page_len)


CFG = TrainConfig(inner_steps=3, batch_size=4, lr=3e-3, warmup_steps=0)


def _train(run_for, fragment_index: int = 1):
    model = build_model("tiny", seed=0)
    frag = partition(model, 2)[fragment_index]
    run = run_for(model)
    before = model_hash(model)
    res = inner_train(model, frag, shard_batches(knob_pages(), tuple(range(12)), 4, 3), CFG, runtime=run)
    assert model_hash(model) == before
    return res


def _rel_l2(a, b) -> float:
    """||a - b|| / ||b|| over the whole fragment."""
    num = sum(float((a[n] - b[n]).pow(2).sum()) for n in b)
    return (num / sum(float(b[n].pow(2).sum()) for n in b)) ** 0.5


@pytest.fixture(scope="module")
def plain():
    return _train(lambda m: TrainRuntime())


def test_micro_batches_accumulate_to_the_same_step(plain) -> None:
    micro = _train(lambda m: TrainRuntime(micro_batch_size=1))
    assert _rel_l2(micro.pseudo_grad, plain.pseudo_grad) < 1e-4  # summation order only (measured 1.2e-5)
    assert micro.stats.losses == pytest.approx(plain.stats.losses, rel=1e-6)
    assert micro.stats.tokens == plain.stats.tokens


def test_activation_checkpointing_recomputes_the_same_gradients(plain) -> None:
    ckpt = _train(lambda m: prepare_training(m, torch.device("cpu"), None, DeviceConfig(checkpointing="on")))
    assert _rel_l2(ckpt.pseudo_grad, plain.pseudo_grad) < 1e-6  # the same kernels again (measured 0)


def test_compiled_forward_trains_the_same_step(plain) -> None:
    comp = _train(lambda m: prepare_training(m, torch.device("cpu"), None,
                                             DeviceConfig(compile=True, compile_backend="eager")))
    assert _rel_l2(comp.pseudo_grad, plain.pseudo_grad) < 1e-6


def test_bf16_autocast_trains_close_to_fp32_with_fp32_state(plain) -> None:
    bf = _train(lambda m: TrainRuntime(autocast_dtype=torch.bfloat16))
    assert all(t.dtype == torch.float32 for t in bf.pseudo_grad.values())
    assert all(t.dtype == torch.float32 for t in bf.optimizer_state.exp_avg.values())
    assert bf.stats.losses[-1] < bf.stats.losses[0]
    # bf16 forward passes round: close to the fp32 step, not equal (that is why consensus never uses them)
    cos = [float(torch.nn.functional.cosine_similarity(bf.pseudo_grad[n].flatten(), plain.pseudo_grad[n].flatten(),
                                                       dim=0)) for n in plain.pseudo_grad]
    assert min(cos) > 0.9
    assert 1e-4 < _rel_l2(bf.pseudo_grad, plain.pseudo_grad) < 0.2  # measured 0.05


@pytest.mark.slow
def test_125m_preset_trains_for_real_on_cpu() -> None:
    torch.set_num_threads(2)
    model = build_model("125m", seed=0)
    frags = partition(model, 4)
    vocab = model.config.vocab_size
    pages = stride_pages(seed=0, docs=64, step=17, modulus=vocab, doc_len=64, page_len=65)
    cfg = TrainConfig(inner_steps=2, batch_size=2, lr=1e-3, warmup_steps=0)
    run = prepare_training(model, torch.device("cpu"), None, DeviceConfig(micro_batch_size=1))
    before = model_hash(model)
    res = inner_train(model, frags[3], shard_batches(pages, (0, 1, 2, 3), 2, 2), cfg, runtime=run)
    assert res.stats.steps == 2 and all(np.isfinite(res.stats.losses))
    assert res.stats.losses[0] == pytest.approx(np.log(vocab), rel=0.1)  # a fresh model: ~uniform
    assert res.stats.losses[-1] < res.stats.losses[0]
    assert set(res.pseudo_grad) == set(frags[3].param_names) and model_hash(model) == before
    torch.set_num_threads(1)
