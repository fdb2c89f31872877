"""The trained model out: a node's global model as a Hugging Face model folder.

Why: the subnet trains one shared model; its users want
`AutoModelForCausalLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)`,
not Tessera's checkpoint format. The node's `global_model.safetensors` is the
preset's `LlamaForCausalLM` state dict under the names transformers uses, so
the export writes those tensors as `model.safetensors` (checked against the
preset's parameter table, never building the model: an 8b export needs the
weights' memory once), the preset's `LlamaConfig` as config.json, and the
tokenizer the pages were made with: the embedded byte-level BPE wrapped as a
`PreTrainedTokenizerFast` (its tokenizer.json is the cached BPE itself, so ids
are the project's ids), or the preset's hub tokenizer. `tessera.json` records
where the weights came from (version, model hash, preset, tokenizer
fingerprint). Weights stay float32 unless asked otherwise, so logits equal
the node's bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from loguru import logger

from subnet.errors import ModelError

MODEL_FILE = "global_model.safetensors"  # subnet.node.globalmodel.LOCAL_FILE
PROVENANCE = "tessera.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    """What was written, and from which model."""

    dir: str
    preset: str
    version: int | None
    last_manifest_window: int | None
    model_hash: str
    dtype: str
    tokenizer: str
    tokenizer_fingerprint: str
    files: tuple[str, ...]


def load_node_state(state_dir: str | os.PathLike[str], preset: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, meta) of the node's persisted global model, checked against the preset's parameter table."""
    from transformers import LlamaForCausalLM

    from subnet.model.presets import build_config
    from subnet.model.state import load_checkpoint

    path = Path(state_dir).expanduser() / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"no global model in {path.parent} ({MODEL_FILE} missing)",
                         remediation="pass the node's --state_dir; a node writes it after its first window")
    state, meta = load_checkpoint(path)
    with torch.device("meta"):  # shapes only: nothing allocated
        expected = {k: tuple(v.shape) for k, v in LlamaForCausalLM(build_config(preset)).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        diff = sorted(set(got) ^ set(expected)) or sorted(k for k in got if got[k] != expected[k])
        raise ModelError(f"{path} is not a {preset!r} model (differs at {diff[:3]})",
                         remediation="pass the node's --model.preset")
    return state, meta


def hf_tokenizer(preset: str, cache_dir: str | os.PathLike[str] | None = None) -> tuple[Any, str, str]:
    """(transformers tokenizer, name, fingerprint) the preset's pages are tokenized with."""
    from subnet.data.config import default_cache_dir
    from subnet.data.tokenizer import EOS, load_hub_tokenizer, load_tokenizer
    from subnet.model.presets import get_preset

    p = get_preset(preset)
    if p.tokenizer != "embedded":
        tok = load_hub_tokenizer(p.tokenizer)
        return tok._backend, tok.name, tok.fingerprint
    from transformers import PreTrainedTokenizerFast

    tok = load_tokenizer(Path(cache_dir).expanduser() if cache_dir else default_cache_dir(), p.vocab_size)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok._backend, eos_token=EOS, pad_token=EOS,
                                   model_max_length=p.max_seq_len, clean_up_tokenization_spaces=False)
    return fast, tok.name, tok.fingerprint


def export_hf(state_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], preset: str, *,
              cache_dir: str | os.PathLike[str] | None = None, dtype: str = "float32") -> ExportResult:
    """Write the HF folder of the node's current global model (see the module docstring).

    The folder is built beside `out_dir` and renamed into place, so a failed
    export leaves no half-written model; an existing `out_dir` is replaced only
    if it is empty or an earlier export (it holds `tessera.json`).
    """
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    from subnet.model.presets import build_config
    from subnet.model.state import model_hash

    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}", remediation=f"choose one of {sorted(DTYPES)}")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / PROVENANCE).is_file())):
        raise ModelError(f"{out} exists and is not an earlier export", remediation="pick a new or empty --hf directory")
    state, meta = load_node_state(state_dir, preset)
    digest = model_hash(state)  # of the weights as the nodes hold them, before any cast
    tokenizer, tok_name, tok_fp = hf_tokenizer(preset, cache_dir)
    cfg = build_config(preset)
    # Generation settings only: none of these changes a logit.
    cfg.use_cache = True
    cfg.eos_token_id = tokenizer.eos_token_id
    cfg.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    cfg.architectures = ["LlamaForCausalLM"]
    cfg.dtype = DTYPES[dtype]
    tensors = {k: v.to(DTYPES[dtype]).contiguous() for k, v in state.items()}
    result = ExportResult(dir=str(out), preset=preset, version=_opt_int(meta.get("version")),
                          last_manifest_window=_opt_int(meta.get("last_manifest_window")), model_hash=digest,
                          dtype=dtype, tokenizer=tok_name, tokenizer_fingerprint=tok_fp, files=())
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        cfg.save_pretrained(tmp)
        GenerationConfig.from_model_config(cfg).save_pretrained(tmp)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        _portable_tokenizer_config(tmp)
        _model_card(tmp, result)
        files = tuple(sorted([p.name for p in tmp.iterdir() if p.is_file()] + [PROVENANCE]))
        result = dataclasses.replace(result, files=files)
        (tmp / PROVENANCE).write_text(json.dumps({**asdict(result), "files": list(files)}, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported {} version {} ({}) to {}", preset, result.version, digest[:12], out)
    return result


def _portable_tokenizer_config(out: Path) -> None:
    """Name the class PreTrainedTokenizerFast: transformers 5 writes its new alias, which 4.x cannot load."""
    path = out / "tokenizer_config.json"
    if not path.is_file():
        return
    conf = json.loads(path.read_text())
    if conf.get("tokenizer_class") == "TokenizersBackend":
        conf["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")


def _model_card(out: Path, r: ExportResult) -> None:
    if (out / "README.md").exists():
        return
    (out / "README.md").write_text(
        f"---\nlibrary_name: transformers\ntags: [tessera, bittensor, llama]\n---\n\n"
        f"# Tessera global model ({r.preset}, version {r.version})\n\n"
        f"Trained on the Tessera Bittensor subnet. Model hash `{r.model_hash}` (sha256 over names and bytes "
        f"of every tensor, as the nodes compare it); tokenizer `{r.tokenizer}`.\n\n"
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(PATH)\nmodel = AutoModelForCausalLM.from_pretrained(PATH)\n"
        "ids = tok(\"To be, or not\", return_tensors=\"pt\").input_ids\n"
        "print(tok.decode(model.generate(ids, max_new_tokens=40, do_sample=True, top_k=40)[0]))\n```\n")


def push_to_hub(out_dir: str | os.PathLike[str], repo_id: str, *, private: bool = False) -> str:
    """Upload the exported folder to a Hub model repo (token from HF_TOKEN or `hf auth login`); returns its URL."""
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:  # pragma: no cover - transformers depends on it
        raise ModelError("huggingface_hub is not installed", remediation="pip install huggingface_hub") from exc
    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(out_dir), repo_id=repo_id, repo_type="model",
                      commit_message="Tessera global model export")
    return f"https://huggingface.co/{repo_id}"


def _opt_int(x: Any) -> int | None:
    try:
        return None if x is None else int(x)
    except (TypeError, ValueError):
        return None
