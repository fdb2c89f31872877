"""`tessera export --hf`: a real tiny global model out as a Hugging Face folder, loaded back with transformers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from subnet.cli import main
from subnet.config import config_from_args
from subnet.data.config import default_cache_dir
from subnet.data.tokenizer import EOS, load_tokenizer
from subnet.model.export_cli import ExportCommand, add_arguments
from subnet.model.presets import get_preset
from subnet.node.globalmodel import build_global_model, persist, restore

TEXTS = [
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer",
    "  ROMEO.\n\tBut soft, what light through yonder window breaks?" + EOS + "JULIET. O Romeo!",
    "unicode: naïve café — 東京 🙂, numbers 12345 and   spaces",
    "",
]


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A node's state dir holding a trained-looking tiny global model (version 7), persisted by the node's code."""
    sd = tmp_path_factory.mktemp("node")
    gm = build_global_model("tiny", 2, 0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in gm.model.parameters():  # move every tensor off the seeded init
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    gm.version, gm.last_manifest_window = 7, 41
    persist(gm, sd)
    return sd


@pytest.fixture(scope="module")
def exported(node, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "tessera-tiny"
    assert main(["export", "--hf", str(out), "--state_dir", str(node), "--model.preset", "tiny"]) == 0
    return out


def _node_model(state_dir: Path):
    """The model exactly as a node holds it after a restart (build, then restore the persisted copy)."""
    gm = build_global_model("tiny", 2, 0)
    assert restore(gm, state_dir)
    gm.model.eval()
    return gm


def _batch(tok, length: int = 48) -> torch.Tensor:
    ids = [tok.encode(t * 4)[:length] for t in TEXTS[:3]]
    assert all(len(i) == length for i in ids)
    return torch.tensor(ids, dtype=torch.long)


def test_folder_layout_and_provenance(exported, node):
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
            "tessera.json", "README.md"} <= names
    conf = json.loads((exported / "config.json").read_text())
    assert conf["model_type"] == "llama" and conf["architectures"] == ["LlamaForCausalLM"]
    assert conf["vocab_size"] == get_preset("tiny").vocab_size and conf["tie_word_embeddings"] is False
    assert json.loads((exported / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    prov = json.loads((exported / "tessera.json").read_text())
    gm = _node_model(node)
    assert prov["version"] == 7 and prov["last_manifest_window"] == 41 and prov["model_hash"] == gm.model_hash
    assert prov["preset"] == "tiny" and prov["dtype"] == "float32" and "model.safetensors" in prov["files"]
    assert not any(p.name.startswith(".") for p in exported.parent.iterdir())  # no temp dir left


def test_transformers_loads_it_with_the_nodes_logits(exported, node):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(exported)
    hf.eval()
    gm = _node_model(node)
    tok = load_tokenizer(default_cache_dir(), get_preset("tiny").vocab_size)
    x = _batch(tok)
    with torch.no_grad():
        ours, theirs = gm.model(x).logits, hf(x).logits
    assert theirs.dtype == torch.float32 and theirs.shape == ours.shape
    assert torch.allclose(theirs, ours, rtol=0, atol=1e-6), (theirs - ours).abs().max()
    from subnet.model.state import model_hash

    assert model_hash(hf) == gm.model_hash  # the very same tensors


def test_tokenizer_round_trips_to_the_projects_ids(exported):
    from transformers import AutoTokenizer

    ours = load_tokenizer(default_cache_dir(), get_preset("tiny").vocab_size)
    theirs = AutoTokenizer.from_pretrained(exported)
    assert theirs.eos_token == EOS and theirs.eos_token_id == ours.eos_id == 0
    assert len(theirs) == ours.vocab_size
    for text in TEXTS:
        ids = ours.encode(text)
        assert theirs(text, add_special_tokens=False)["input_ids"] == ids
        assert theirs.encode(text) == ids  # nothing is added around the text
        assert theirs.decode(ids) == ours.decode(ids) == text


def test_generate_text(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(exported)
    model = AutoModelForCausalLM.from_pretrained(exported)
    ids = tok("To be, or not", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids.shape[1] and out[0, : ids.shape[1]].tolist() == ids[0].tolist()
    assert isinstance(tok.decode(out[0]), str)


def test_re_export_replaces_an_earlier_export_in_bfloat16(exported, node, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "again"
    assert main(["export", "--hf", str(out), "--state_dir", str(node), "--model.preset", "tiny"]) == 0
    (out / "stale.txt").write_text("from the first export")
    assert main(["export", "--hf", str(out), "--state_dir", str(node), "--model.preset", "tiny",
                 "--dtype", "bfloat16"]) == 0
    assert not (out / "stale.txt").exists()
    hf = AutoModelForCausalLM.from_pretrained(out)
    assert hf.dtype == torch.bfloat16
    assert json.loads((out / "tessera.json").read_text())["dtype"] == "bfloat16"


def test_refusals(node, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not an export")
    assert main(["export", "--hf", str(foreign), "--state_dir", str(node), "--model.preset", "tiny"]) == 1
    assert (foreign / "keep.txt").exists()
    assert main(["export", "--hf", str(tmp_path / "a"), "--state_dir", str(node), "--model.preset", "small"]) == 1
    assert main(["export", "--hf", str(tmp_path / "b"), "--state_dir", str(tmp_path / "none")]) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_flags_env_and_push_spelling():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--hf", "/tmp/x", "--push-to-hub", "me/tessera-tiny"])
    cmd = config_from_args(ExportCommand, args, env={"TESSERA_MODEL_PRESET": "small", "TESSERA_CACHE_DIR": "/c"})
    assert cmd.hf == "/tmp/x" and cmd.push_to_hub == "me/tessera-tiny" and cmd.model.preset == "small"
    assert cmd.data.cache_dir == "/c" and cmd.hub_private is False and cmd.dtype == "float32"
    cmd = config_from_args(ExportCommand, parser.parse_args([]), env={"TESSERA_HF": "/tmp/y"})
    assert cmd.hf == "/tmp/y" and cmd.push_to_hub is None
