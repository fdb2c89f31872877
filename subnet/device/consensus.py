"""The global model stays fp32 on the host; devices train and score replicas of it.

Why: every node must hold the same bytes whatever GPU it has. Kernels differ
across devices (and bf16 rounds), so the consensus copy (the one manifests are
applied to, persisted and hashed) lives in fp32 on the CPU, where the outer
step is elementwise fp32 (subnet.sync.aggregate.combine) and therefore the same
bits on every machine. A `DeviceReplica` is a copy of it on the node's device
that training and scoring use; it is refreshed from the host copy before each
use and never written back. On a CPU node the replica is the host model itself
(no second copy of the weights); inner training puts its fragment back to the
start bytes when it ends (subnet.miner.train), so the host model moves only
through manifests.

`host_apply()` wraps consensus work: it refuses a host model that is not fp32
on the CPU (`ConsensusError`) and disables autocast, so a manifest applied
from inside a bf16 training or scoring region still gets fp32 arithmetic.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

from subnet.device.precision import no_autocast
from subnet.errors import ModelError


class ConsensusError(ModelError):
    """The consensus copy of the model is not fp32 on the host; applying to it would fork the node."""


def check_host_fp32(model: nn.Module) -> None:
    """ConsensusError naming the first parameter or buffer that is off the CPU or not fp32."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.device.type != "cpu":
            raise ConsensusError(f"global model tensor {name} is on {t.device}, not the host CPU")
        if t.is_floating_point() and t.dtype != torch.float32:
            raise ConsensusError(f"global model tensor {name} is {t.dtype}, not float32")


@contextlib.contextmanager
def host_apply(model: nn.Module) -> Iterator[None]:
    """Consensus work on `model` (apply a manifest, load a checkpoint, hash): fp32, host, no autocast."""
    check_host_fp32(model)
    with no_autocast(), torch.no_grad():
        yield
    check_host_fp32(model)


class DeviceReplica:
    """A copy of the host global model on `device` for training and scoring (the host copy itself on CPU)."""

    def __init__(self, host: nn.Module, device: torch.device | str, *, separate: bool | None = None) -> None:
        """`separate`: keep a second copy even on the CPU (None: only on an accelerator)."""
        self.host = host
        self.device = torch.device(device)
        self.shared = self.device.type == "cpu" if separate is None else not separate
        self.model: nn.Module = host if self.shared else copy.deepcopy(host).to(self.device)
        self._host_tensors = dict(host.state_dict(keep_vars=True))
        self._dev_tensors = dict(self.model.state_dict(keep_vars=True))

    def refresh(self) -> nn.Module:
        """Copy the host model's current bytes onto the device copy (a no-op on CPU); returns it."""
        if self.shared:
            return self.model
        with torch.no_grad():
            for name, t in self._host_tensors.items():
                self._dev_tensors[name].copy_(t, non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return self.model
