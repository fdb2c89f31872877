"""Adversarial miner behaviours, selectable with `--miner.behaviour` (tests and the demo only).

Each produces a real, signed artifact through the same codec and store path
as an honest miner, so the validator is tested against files, not flags:

- honest: train on the assigned pages (the default; not handled here)
- noise:  random values with the norm of a plausible update (a lazy miner)
- zero:   an all-zero update
- wrong_pages: honest training, but on pages other than the assignment
- scaled: an honest update multiplied by --miner.poison_scale (poison)
- sign_flip: an honest update with its sign flipped
- copier: re-sign another miner's artifact of the same fragment as its own
- late:   an honest artifact uploaded after the window's deadline
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from loguru import logger

from subnet.codec.wire import ArtifactHeader, read_artifact, write_artifact
from subnet.model.fragments import Fragment, fragment_shapes
from subnet.protocol.assignment import Assignment, random_pages
from subnet.protocol.keys import artifact_key
from subnet.protocol.windows import window_end
from subnet.storage.base import open_store

BEHAVIOURS = ("honest", "noise", "zero", "wrong_pages", "scaled", "sign_flip", "copier", "late")

# Typical norm of an honest pseudo-gradient element (H~10 AdamW steps at lr~1e-3);
# the noise miner matches it so a norm check alone cannot catch it.
_NOISE_STD = 1e-3


def fake_pseudo_grad(behaviour: str, rt: Any, fragment: Fragment, mine: Assignment, w: int,
                     train: Callable[[tuple[int, ...]], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    shapes = fragment_shapes(rt.gm.model, fragment)
    if behaviour == "noise":
        g = torch.Generator().manual_seed(hash((rt.uid, w)) & 0x7FFFFFFF)
        return {n: torch.randn(tuple(s), generator=g) * _NOISE_STD for n, s in shapes.items()}
    if behaviour == "zero":
        return {n: torch.zeros(tuple(s)) for n, s in shapes.items()}
    if behaviour == "wrong_pages":
        seed = rt.chain.window_seed(w)
        other = random_pages(seed, rt.uid, rt.assignment_params, len(mine.pages))
        return train(other)
    if behaviour in ("scaled", "sign_flip"):
        pg = train(mine.pages)
        factor = -1.0 if behaviour == "sign_flip" else float(rt.cfg.miner.poison_scale)
        return {n: t * factor for n, t in pg.items()}
    raise ValueError(f"unknown miner behaviour {behaviour!r}; expected one of {BEHAVIOURS}")


def copy_peer(rt: Any, w: int, mine: Assignment, peers: list, assignments: dict[int, Assignment],
              header: ArtifactHeader) -> tuple[bytes | None, dict]:
    """Wait for another miner's artifact of our fragment in window `w`, re-sign it as ours."""
    victims = [p for p in peers if p.uid != rt.uid and p.location and not p.validator_permit
               and assignments.get(p.uid) is not None and assignments[p.uid].fragment == mine.fragment]
    if not victims:
        return None, {"reason": "no peer with the same fragment to copy"}
    deadline = window_end(w, rt.window_params) - 1
    shapes = fragment_shapes(rt.gm.model, rt.gm.fragment(mine.fragment))
    while rt.chain.block() < deadline:
        for v in victims:
            key = artifact_key(rt.netuid, w, v.hotkey, mine.fragment)
            try:
                data = open_store(v.location).get(key, rt.cfg.store.max_artifact_bytes)
            except Exception as exc:  # a victim's broken store is not our problem
                logger.debug("copier: cannot read {}: {}", key, exc)
                continue
            if data is None:
                continue
            art = read_artifact(data, expected_hotkey=v.hotkey, max_bytes=rt.cfg.store.max_artifact_bytes,
                                shapes=shapes)
            logger.info("copier: re-signing uid {}'s artifact for window {}", v.uid, w)
            return write_artifact(art.encoded, header, rt.wallet.hotkey), {"copied_from": v.uid}
        time.sleep(0.5)
    return None, {"reason": "nothing to copy before the deadline"}
