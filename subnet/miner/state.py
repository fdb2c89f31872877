"""The miner's persistent state: one safetensors file, replaced atomically.

What survives a restart: the global model version it holds, the last window
it uploaded, the inner-step count (lr warm-up), the error-feedback buffers of
the codec and the AdamW moments, the latter two keyed by parameter name so
they cover every fragment the miner has trained.

Format: `<state_dir>/miner_state.safetensors`. Tensors are named
`ef/<param>`, `adam.exp_avg/<param>`, `adam.exp_avg_sq/<param>`; scalars
(counters, AdamW step counts, identity) are JSON in the safetensors header
under `tessera_miner_state`, so tensors and scalars change together in one
file. Never pickle: a state file is just tensors and JSON.

Atomicity: write to a temp file in the same directory, fsync it, os.replace
it over the old file, fsync the directory. A kill -9 at any instant leaves
either the complete old file or the complete new one; stray temp files are
ignored and cleaned on the next save.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from subnet.atomic import write_bytes_atomic
from subnet.errors import ErrorCode, SubnetError
from subnet.miner.train import AdamState
from subnet.model.fragments import Fragment

STATE_FILE = "miner_state.safetensors"
META_KEY = "tessera_miner_state"
SCHEMA = 1
_TMP_PREFIX = f".{STATE_FILE}."
_PREFIXES = ("ef/", "adam.exp_avg/", "adam.exp_avg_sq/")


class MinerStateError(SubnetError):
    """The state file exists but cannot be read as a miner state."""

    code = ErrorCode.CONFIG


@dataclass(kw_only=True)
class MinerState:
    """Everything a miner must not lose across restarts.

    version: global model version the miner holds (after the last manifest applied).
    last_window_uploaded: last window whose artifact was uploaded (-1: none), so a
        restart inside a window does not upload twice.
    step: inner AdamW steps taken so far (drives the lr warm-up).
    ef: codec error-feedback buffers by parameter name (Encoder.state_dict of each fragment).
    adam: AdamW moments by parameter name.
    identity: who/what this state belongs to (netuid, hotkey, preset...), checked on load.
    """

    version: int = 0
    last_manifest_window: int = -1
    last_window_uploaded: int = -1
    step: int = 0
    ef: dict[str, torch.Tensor] = field(default_factory=dict)
    adam: AdamState = field(default_factory=AdamState)
    identity: dict[str, Any] = field(default_factory=dict)

    # -- codec error feedback -------------------------------------------------------------------

    def encoder_state(self, fragment: Fragment) -> dict[str, torch.Tensor] | None:
        """EF buffers for `fragment` (for Encoder.load_state_dict), None if never trained."""
        if not all(n in self.ef for n in fragment.param_names):
            return None
        return {n: self.ef[n] for n in fragment.param_names}

    def update_encoder_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Keep the Encoder.state_dict() of the fragment just encoded."""
        for name, t in state.items():
            self.ef[name] = t.detach().to("cpu", torch.float32).contiguous()

    # -- persistence ----------------------------------------------------------------------------

    def _tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, t in self.ef.items():
            out[f"ef/{name}"] = t.detach().to("cpu").contiguous()
        for name in self.adam.step:
            out[f"adam.exp_avg/{name}"] = self.adam.exp_avg[name].detach().to("cpu").contiguous()
            out[f"adam.exp_avg_sq/{name}"] = self.adam.exp_avg_sq[name].detach().to("cpu").contiguous()
        return out

    def _scalars(self, n_tensors: int) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": self.version,
            "last_manifest_window": self.last_manifest_window,
            "last_window_uploaded": self.last_window_uploaded,
            "step": self.step,
            "adam_step": dict(sorted(self.adam.step.items())),
            "identity": self.identity,
            "n_tensors": n_tensors,
        }

    def save(self, state_dir: str | os.PathLike[str]) -> Path:
        """Write the whole state atomically; returns the file path."""
        directory = Path(state_dir).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / STATE_FILE
        tensors = self._tensors()
        try:
            meta = json.dumps(self._scalars(len(tensors)), sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise MinerStateError(f"miner state identity must be JSON scalars: {exc}") from exc
        _remove_stale_tmp(directory)
        write_bytes_atomic(path, save(tensors, metadata={META_KEY: meta}), tmp_prefix=_TMP_PREFIX)
        logger.debug("saved miner state to {} (step {}, {} tensors)", path, self.step, len(tensors))
        return path

    @classmethod
    def load(cls, state_dir: str | os.PathLike[str], *, identity: Mapping[str, Any] | None = None) -> MinerState:
        """Read the state in `state_dir`; a fresh state if there is none.

        With `identity`, a state saved for a different identity (another
        hotkey, netuid or preset) is not reused: a fresh state is returned and
        the mismatch logged, since foreign optimizer/EF state would be wrong.
        """
        path = Path(state_dir).expanduser() / STATE_FILE
        if not path.exists():
            return cls(identity=dict(identity or {}))
        try:
            with safe_open(str(path), framework="pt") as fh:
                header = fh.metadata() or {}
            tensors = load_file(str(path))
            scalars = json.loads(header[META_KEY])
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise MinerStateError(f"cannot read miner state {path}: {exc}",
                                  remediation="move the file away to start fresh") from exc
        state = cls._from_parts(path, scalars, tensors)
        if identity is not None and state.identity != dict(identity):
            logger.warning("miner state in {} belongs to {}, not {}; starting fresh", path, state.identity,
                           dict(identity))
            return cls(identity=dict(identity))
        return state

    @classmethod
    def _from_parts(cls, path: Path, scalars: Any, tensors: dict[str, torch.Tensor]) -> MinerState:
        if not isinstance(scalars, dict) or scalars.get("schema") != SCHEMA:
            raise MinerStateError(f"miner state {path} has an unknown schema")
        if scalars.get("n_tensors") != len(tensors):
            raise MinerStateError(f"miner state {path} holds {len(tensors)} tensors, "
                                  f"header says {scalars.get('n_tensors')}")
        ef: dict[str, torch.Tensor] = {}
        adam = AdamState()
        for key, t in tensors.items():
            if key.startswith("ef/"):
                ef[key[3:]] = t
            elif key.startswith("adam.exp_avg/"):
                adam.exp_avg[key[len("adam.exp_avg/"):]] = t
            elif key.startswith("adam.exp_avg_sq/"):
                adam.exp_avg_sq[key[len("adam.exp_avg_sq/"):]] = t
            else:
                raise MinerStateError(f"miner state {path}: unexpected tensor {key!r}")
        steps = scalars.get("adam_step")
        if not isinstance(steps, dict) or set(steps) != set(adam.exp_avg) or set(steps) != set(adam.exp_avg_sq):
            raise MinerStateError(f"miner state {path}: AdamW moments and step counts disagree")
        adam.step = {k: int(v) for k, v in steps.items()}
        try:
            return cls(
                version=int(scalars["version"]),
                last_manifest_window=int(scalars["last_manifest_window"]),
                last_window_uploaded=int(scalars["last_window_uploaded"]),
                step=int(scalars["step"]),
                ef=ef,
                adam=adam,
                identity=dict(scalars.get("identity") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MinerStateError(f"miner state {path}: bad scalar fields: {exc}") from exc


def _remove_stale_tmp(directory: Path) -> None:
    """Temp files left by a save that was killed; never a valid state."""
    for p in directory.glob(f"{_TMP_PREFIX}*.tmp"):
        try:
            p.unlink()
        except OSError:
            pass
