"""Start-up shared by both neurons: wallet, chain, registration, data, model, window clock.

A `NodeRuntime` is built once from a neuron config and handed to the miner or
validator loop. It refuses to start, with a message that says what to do, when
the hotkey is not registered on the netuid or the chain cannot be reached.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bittensor as bt
import torch
from loguru import logger

from subnet.chain import make_subtensor
from subnet.codec.config import CodecConfig
from subnet.data.config import DataConfig
from subnet.data.pages import TokenPages, load_pages
from subnet.errors import ConfigError
from subnet.model.presets import get_preset
from subnet.node.chain import ChainView, parse_commitment
from subnet.node.globalmodel import build_global_model
from subnet.protocol.assignment import AssignmentParams
from subnet.protocol.windows import WindowParams, window_of, window_start
from subnet.sync.apply import GlobalModel


class NotRegistered(ConfigError):
    pass


def load_data(preset: str, source: str = "embedded", cache_dir: str | None = None) -> TokenPages:
    """Token pages of `source` with the tokenizer the model preset names (vocab must match)."""
    p = get_preset(preset)
    kwargs: dict[str, Any] = {"vocab_size": p.vocab_size, "tokenizer": p.tokenizer, "source": source}
    if cache_dir:
        kwargs["cache_dir"] = Path(cache_dir).expanduser()
    return load_pages(DataConfig(**kwargs))


@dataclass
class NodeRuntime:
    cfg: Any
    role: str  # "miner" | "validator"
    wallet: Any
    sub: Any
    chain: ChainView
    uid: int
    hotkey: str
    gm: GlobalModel
    pages: TokenPages
    window_params: WindowParams
    assignment_params: AssignmentParams
    codec: CodecConfig
    state_dir: Path
    events_dir: Path | None
    identity: dict = field(default_factory=dict)

    @property
    def netuid(self) -> int:
        return self.cfg.netuid

    @property
    def allow_local_stores(self) -> bool:
        """Peers' file:// locations are readable only on a single-machine devnet (or when allowed)."""
        return self.cfg.store.allow_local_peers or self.cfg.subtensor.network.startswith("devnet")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def build(cls, cfg: Any, role: str) -> "NodeRuntime":
        torch.set_num_threads(max(1, int(os.environ.get("TESSERA_TORCH_THREADS", "1"))))
        wallet = bt.Wallet(name=cfg.wallet.name, hotkey=cfg.wallet.hotkey, path=os.path.expanduser(cfg.wallet.path))
        try:
            hotkey = wallet.hotkey.ss58_address
        except Exception as exc:
            raise ConfigError(f"cannot open hotkey {cfg.wallet.hotkey!r} of wallet {cfg.wallet.name!r} under "
                              f"{cfg.wallet.path}: {exc}", remediation="create it with btcli wallet new_hotkey, "
                              "or `tessera devnet bootstrap` on the devnet") from exc
        sub = make_subtensor(cfg.subtensor.network)
        wp = WindowParams(window_blocks=cfg.protocol.window_blocks, start_block=cfg.protocol.start_block)
        chain = ChainView(sub, cfg.netuid, wp)
        mg = chain.metagraph()
        me = mg.by_hotkey(hotkey)
        if me is None:
            raise NotRegistered(
                f"hotkey {hotkey} ({cfg.wallet.name}/{cfg.wallet.hotkey}) is not registered on netuid {cfg.netuid} "
                f"of {cfg.subtensor.network}",
                remediation=f"register it first: btcli subnets register --netuid {cfg.netuid} "
                f"(on the devnet: tessera devnet bootstrap)")
        pages = load_data(cfg.model.preset, cfg.data.source, cfg.data.cache_dir)
        gm = build_global_model(cfg.model.preset, cfg.model.n_fragments, cfg.model.seed)
        ap = AssignmentParams(n_fragments=cfg.model.n_fragments, pages_per_miner=cfg.protocol.pages_per_miner,
                              n_train_pages=pages.n_train, n_heldout_pages=pages.n_heldout,
                              heldout_per_window=cfg.protocol.heldout_per_window)
        state_dir = Path(cfg.state_dir).expanduser()
        state_dir.mkdir(parents=True, exist_ok=True)
        events_dir = Path(cfg.telemetry.dir).expanduser() if cfg.telemetry.dir else None
        identity = {"netuid": cfg.netuid, "hotkey": hotkey, "preset": cfg.model.preset,
                    "n_fragments": cfg.model.n_fragments, "seed": cfg.model.seed}
        logger.info("{} uid {} hotkey {} on netuid {} ({}), model {} F={}", role, me.uid, hotkey, cfg.netuid,
                    cfg.subtensor.network, cfg.model.preset, cfg.model.n_fragments)
        return cls(cfg=cfg, role=role, wallet=wallet, sub=sub, chain=chain, uid=me.uid, hotkey=hotkey, gm=gm,
                   pages=pages, window_params=wp, assignment_params=ap, codec=cfg.codec, state_dir=state_dir,
                   events_dir=events_dir, identity=identity)

    def events_path(self, component: str) -> Path:
        assert self.events_dir is not None
        return self.events_dir / f"{component}-{self.uid}.jsonl"

    # -- commitments ----------------------------------------------------------------------------
    def ensure_commitment(self, location: str) -> None:
        """Commit the store location once, and again only if it changed."""
        mg = self.chain.metagraph()
        me = mg.by_hotkey(self.hotkey)
        current = parse_commitment(me.commitment.data) if me is not None and me.commitment is not None else None
        if current == location:
            logger.info("store location already committed: {}", location)
            return
        self.chain.commit_location(self.wallet, location)

    # -- window clock ---------------------------------------------------------------------------
    def wait_until_block(self, block: int, stop: Callable[[], bool], poll: float = 0.25) -> int | None:
        while not stop():
            now = self.chain.block()
            if now >= block:
                return now
            time.sleep(poll)
        return None

    def wait_for_new_window(self, last_done: int, stop: Callable[[], bool], max_late_fraction: float = 0.5) -> int | None:
        """The next window after `last_done` that is not already too far along to work in."""
        while not stop():
            now = self.chain.block()
            w = window_of(now, self.window_params)
            into = now - window_start(w, self.window_params)
            if w > last_done and into <= max_late_fraction * self.window_params.window_blocks:
                return w
            nxt = window_start(w + 1, self.window_params)
            if self.wait_until_block(nxt, stop) is None:
                return None
        return None
