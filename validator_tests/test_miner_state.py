"""The miner's persistent state (subnet.miner.state): round trip, restart, kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from subnet.codec.config import CodecConfig
from subnet.codec.sparseloco import Encoder
from subnet.data.pages import TokenPages
from subnet.miner.config import TrainConfig
from subnet.miner.state import STATE_FILE, MinerState, MinerStateError
from subnet.miner.train import inner_train
from subnet.model.fragments import fragment_shapes, partition
from subnet.model.presets import build_model

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _pages() -> TokenPages:
    tokens = (np.arange(40 * 33) * 5 % 199).astype(np.uint16)
    return TokenPages(tokens, page_len=33, heldout_fraction=0.1)


def _batches(pages: TokenPages, start: int):
    i = start
    while True:
        yield pages.batch([i % 30, (i + 1) % 30])
        i += 2


def _cfg() -> TrainConfig:
    return TrainConfig(inner_steps=3, lr=2e-3, batch_size=2, warmup_steps=5)


def test_missing_state_is_fresh(tmp_path: Path) -> None:
    s = MinerState.load(tmp_path / "nothing", identity={"hotkey": "a"})
    assert (s.version, s.last_window_uploaded, s.step, s.ef) == (0, -1, 0, {})
    assert s.identity == {"hotkey": "a"}


def test_round_trip_with_real_encoder_and_optimizer(tmp_path: Path) -> None:
    model = build_model("tiny", seed=0)
    frag = partition(model, 2)[1]
    pages = _pages()
    pg, adam, stats = inner_train(model, frag, _batches(pages, 0), _cfg())
    enc = Encoder(fragment_shapes(model, frag), CodecConfig(chunk=256, topk=8))
    enc.encode(pg)
    state = MinerState(version=4, last_manifest_window=11, last_window_uploaded=12, step=stats.end_step, adam=adam,
                       identity={"netuid": 3, "hotkey": "5Fabc", "preset": "tiny"})
    state.update_encoder_state(enc.state_dict())
    path = state.save(tmp_path)
    assert path.name == STATE_FILE
    back = MinerState.load(tmp_path, identity={"netuid": 3, "hotkey": "5Fabc", "preset": "tiny"})
    assert (back.version, back.last_manifest_window, back.last_window_uploaded, back.step) == (4, 11, 12, 3)
    assert back.adam.step == adam.step
    assert all(torch.equal(back.adam.exp_avg[n], adam.exp_avg[n]) for n in adam.step)
    assert all(torch.equal(back.adam.exp_avg_sq[n], adam.exp_avg_sq[n]) for n in adam.step)
    ef = back.encoder_state(frag)
    assert ef is not None and all(torch.equal(ef[n], enc.state_dict()[n]) for n in frag.param_names)
    assert back.encoder_state(partition(model, 2)[0]) is None
    enc2 = Encoder(fragment_shapes(model, frag), CodecConfig(chunk=256, topk=8))
    enc2.load_state_dict(ef)
    assert torch.equal(enc2.encode(pg).idx, enc.encode(pg).idx)  # same EF -> same next payload
    # Another identity does not inherit this state.
    assert MinerState.load(tmp_path, identity={"netuid": 3, "hotkey": "other", "preset": "tiny"}).step == 0


def test_restart_resumes_training_exactly(tmp_path: Path) -> None:
    pages = _pages()
    model = build_model("tiny", seed=0)
    frag = partition(model, 1)[0]
    cfg = _cfg()
    # Continuous run: two windows in one process.
    _, adam, s1 = inner_train(model, frag, _batches(pages, 0), cfg)
    pg_cont, _, _ = inner_train(model, frag, _batches(pages, 10), cfg, adam, start_step=s1.end_step)
    # Restarted run: window 1, save, load, window 2.
    _, adam_b, s1b = inner_train(model, frag, _batches(pages, 0), cfg)
    MinerState(step=s1b.end_step, adam=adam_b).save(tmp_path)
    loaded = MinerState.load(tmp_path)
    pg_restart, _, _ = inner_train(model, frag, _batches(pages, 10), cfg, loaded.adam, start_step=loaded.step)
    assert all(torch.equal(pg_cont[n], pg_restart[n]) for n in pg_cont)


def test_truncated_file_is_a_clear_error_and_tmp_files_are_ignored(tmp_path: Path) -> None:
    MinerState(step=7, ef={"w": torch.ones(100)}).save(tmp_path)
    # A temp file from a killed save never counts and is cleaned by the next save.
    stray = tmp_path / f".{STATE_FILE}.junk.tmp"
    stray.write_bytes(b"\x00" * 10)
    assert MinerState.load(tmp_path).step == 7
    MinerState(step=8).save(tmp_path)
    assert not stray.exists() and MinerState.load(tmp_path).step == 8
    data = (tmp_path / STATE_FILE).read_bytes()
    (tmp_path / STATE_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(MinerStateError, match="cannot read"):
        MinerState.load(tmp_path)


def test_identity_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(MinerStateError):
        MinerState(identity={"x": object()}).save(tmp_path)
    assert not (tmp_path / STATE_FILE).exists()


_SAVER = """
import sys, torch
from loguru import logger
logger.remove()
torch.set_num_threads(1)
from subnet.miner.state import MinerState
from subnet.miner.train import AdamState
d = sys.argv[1]
i = 0
while True:
    i += 1
    v = float(i)
    names = [f"layer{k}.weight" for k in range(4)]
    adam = AdamState(step={n: i for n in names}, exp_avg={n: torch.full((512, 256), v) for n in names},
                     exp_avg_sq={n: torch.full((512, 256), v) for n in names})
    s = MinerState(version=i, last_window_uploaded=i, step=i, adam=adam,
                   ef={n: torch.full((512, 256), v) for n in names})
    s.save(d)
    print(i, flush=True)
"""


def _check_consistent(state: MinerState) -> int:
    i = state.step
    assert state.version == state.last_window_uploaded == i
    assert len(state.ef) == 4 and len(state.adam.step) == 4
    for name in state.ef:
        assert torch.all(state.ef[name] == float(i))
        assert torch.all(state.adam.exp_avg[name] == float(i))
        assert torch.all(state.adam.exp_avg_sq[name] == float(i))
        assert state.adam.step[name] == i
    return i


def test_kill_9_during_saves_never_leaves_a_partial_state(tmp_path: Path) -> None:
    rng = random.Random(1234)
    last_seen = 0
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(tmp_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = proc.stdout.readline()  # at least one complete save
            assert line, proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        state = MinerState.load(tmp_path)
        i = _check_consistent(state)
        assert i >= 1
        last_seen = max(last_seen, i)
    assert last_seen >= 1
