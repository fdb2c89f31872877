"""Start-up shared by both neurons: wallet, chain, registration, data, model, window clock.

A `NodeRuntime` is built once from a neuron config and handed to the miner or
validator loop. It refuses to start, with a message that says what to do, when
the hotkey is not registered on the netuid or the chain cannot be reached.

Registration is checked again every window (`require_registered`): a node
whose hotkey was pruned, or re-registered under another uid, raises
`Deregistered` and the neuron exits with status 3 rather than work on under a
uid that now names someone else. It does not wait for a re-registration:
registering costs TAO and is the operator's decision, the new uid may differ,
and the process supervisor (systemd, pm2) shows the stop; restarting after
`btcli subnets register` resumes.
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
from subnet.data.pages import load_pages
from subnet.data.source import PageSource
from subnet.device.select import DeviceChoice, select_device
from subnet.errors import ConfigError
from subnet.model.presets import get_preset
from subnet.node.chain import ChainView, parse_commitment
from subnet.node.config import DataFlags
from subnet.node.globalmodel import build_global_model
from subnet.node.peerstores import PeerStores, StoreRefusal
from subnet.protocol.assignment import AssignmentParams
from subnet.protocol.registration import RegistrationCheck, check_registration
from subnet.protocol.windows import WindowParams, window_end, window_of, window_start
from subnet.sync.apply import GlobalModel
from subnet.version import VersionGuard, start_guard


class NotRegistered(ConfigError):
    pass


class Deregistered(NotRegistered):
    """The hotkey lost its uid while the neuron was running (pruned, or re-registered elsewhere)."""

    exit_status = 3


def load_data(preset: str, source: str = "embedded", cache_dir: str | None = None, *,
              flags: DataFlags | None = None, readers: PeerStores | None = None) -> PageSource:
    """Token pages for the model preset: the local array of `source`, or the subnet's pinned shard store.

    With `flags.shards` set, pages come on demand from that store (read through `readers`: anonymous and
    bounded, it is the subnet owner's bucket), verified against `flags.manifest_sha256`, whose tokenizer
    and vocab must be the preset's. Otherwise the node tokenizes `source` itself (the embedded default).
    """
    p = get_preset(preset)
    if flags is not None and flags.shards:
        from subnet.data.cache import CacheLimits
        from subnet.data.shards import check_model, open_shard_pages

        if not flags.manifest_sha256:
            raise ConfigError("--data.shards needs --data.manifest_sha256 (the subnet's pinned manifest hash)",
                              remediation="use the manifest_sha256 the subnet owner published")
        reader = (readers or PeerStores(allow_local=False)).open(flags.shards)
        if isinstance(reader, StoreRefusal):
            raise ConfigError(f"cannot read the shard store {flags.shards!r}: {reader.reason}")
        limits = CacheLimits(memory_bytes=flags.shard_memory_mb << 20, disk_bytes=flags.shard_cache_mb << 20)
        root = Path(cache_dir).expanduser() if cache_dir else DataConfig().cache_dir
        pages = open_shard_pages(reader, flags.manifest_sha256, root, limits=limits, workers=flags.fetch_workers)
        check_model(pages.manifest, p.tokenizer, p.vocab_size)
        return pages
    kwargs: dict[str, Any] = {"vocab_size": p.vocab_size, "tokenizer": p.tokenizer, "source": source}
    if cache_dir:
        kwargs["cache_dir"] = Path(cache_dir).expanduser()
    return load_pages(DataConfig(**kwargs))


def data_readers(cfg: Any) -> PeerStores:
    """How this node reads the shard store: the peer-store policy and budget (file:// only on the devnet)."""
    allow_local = cfg.store.allow_local_peers or cfg.subtensor.network.startswith("devnet")
    return PeerStores.from_config(cfg.store, allow_local=allow_local)


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
    pages: PageSource
    window_params: WindowParams
    assignment_params: AssignmentParams
    codec: CodecConfig
    state_dir: Path
    events_dir: Path | None
    identity: dict = field(default_factory=dict)
    device: DeviceChoice | None = None
    version_guard: VersionGuard | None = None  # WeightsVersionKey checks (subnet/version.py), ticked per window
    """Where this node trains and scores (subnet.device.select); the global model itself stays fp32 on the host."""
    _head_poll_s: float | None = None

    @property
    def netuid(self) -> int:
        return self.cfg.netuid

    @property
    def allow_local_stores(self) -> bool:
        """Peers' file:// locations are readable only on a single-machine devnet (or when allowed)."""
        return self.cfg.store.allow_local_peers or self.cfg.subtensor.network.startswith("devnet")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def build(cls, cfg: Any, role: str) -> NodeRuntime:
        torch.set_num_threads(max(1, int(getattr(cfg, "torch_threads", 1))))
        # first: a node asked to run on a GPU it cannot use refuses before touching wallet or chain
        device = select_device(getattr(cfg, "device", "auto"), getattr(cfg, "compute", None),
                               local_rank=int(os.environ.get("LOCAL_RANK", "0")))
        wallet = bt.Wallet(name=cfg.wallet.name, hotkey=cfg.wallet.hotkey, path=os.path.expanduser(cfg.wallet.path))
        try:
            hotkey = wallet.hotkey.ss58_address
        except Exception as exc:
            raise ConfigError(f"cannot open hotkey {cfg.wallet.hotkey!r} of wallet {cfg.wallet.name!r} under "
                              f"{cfg.wallet.path}: {exc}", remediation="create it with btcli wallet new_hotkey, "
                              "or `tessera devnet bootstrap` on the devnet") from exc
        sub = make_subtensor(cfg.subtensor.target, timeout_s=cfg.subtensor.devnet_timeout_s,
                             transport=cfg.subtensor.devnet_transport)
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
        guard = start_guard(cfg, chain, role)  # our SPEC_VERSION against WeightsVersionKey, before the heavy work
        pages = load_data(cfg.model.preset, cfg.data.source, cfg.data.cache_dir, flags=cfg.data,
                          readers=data_readers(cfg))
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
                   events_dir=events_dir, identity=identity, device=device, version_guard=guard)

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

    # -- registration -----------------------------------------------------------------------------
    def require_registered(self, peers: list[Any]) -> RegistrationCheck:
        """Raise `Deregistered` unless this hotkey still holds the uid it started with (peers: this window's)."""
        check = check_registration(self.hotkey, self.uid, {p.uid: p.hotkey for p in peers})
        if check.ok:
            if self.version_guard is not None:
                self.version_guard.tick()  # once per window; may raise VersionOutdated / UpdatedRestart
            return check
        where = (f"it is registered again as uid {check.now_uid}" if check.now_uid is not None
                 else "it is no longer registered")
        holder = f"; uid {self.uid} now belongs to {check.holder}" if check.holder else ""
        raise Deregistered(
            f"hotkey {self.hotkey} lost uid {self.uid} on netuid {self.netuid}: {where}{holder}; "
            f"the {self.role} stops", remediation=f"register again (btcli subnets register --netuid {self.netuid}) "
            f"and restart the {self.role}")

    # -- window clock ---------------------------------------------------------------------------
    @property
    def head_poll_s(self) -> float:
        """How often to read the head while waiting: a quarter block (from the chain), 0.05..3 s."""
        if self._head_poll_s is None:
            try:
                block_s = self.chain.block_time()
            except Exception as exc:  # a chain that does not report it: assume subtensor's 12 s
                logger.debug("block time unreadable ({}); assuming 12 s", exc)
                block_s = 12.0
            self._head_poll_s = min(3.0, max(0.05, block_s / 4))
        return self._head_poll_s

    def wait_until_block(self, block: int, stop: Callable[[], bool], poll: float | None = None) -> int | None:
        poll = self.head_poll_s if poll is None else poll
        while not stop():
            now = self.chain.block()
            if now >= block:
                return now
            time.sleep(poll)
        return None

    def wait_for_seed(self, w: int, stop: Callable[[], bool]) -> int | None:
        """Window `w`'s seed once its first block is finalised; None if `w` ends (or stop) first."""
        while not stop():
            seed = self.chain.window_seed(w)
            if seed is not None:
                return seed
            if self.chain.block() >= window_end(w, self.window_params):
                return None
            time.sleep(self.head_poll_s)
        return None

    def wait_for_new_window(self, last_done: int, stop: Callable[[], bool],
                            max_late_fraction: float = 0.5) -> int | None:
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
