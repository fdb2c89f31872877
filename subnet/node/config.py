"""The two neuron configs, composed from each component's own config dataclass.

Flags and environment variables are derived by `subnet.config` (e.g.
`--train.inner_steps` <- `TESSERA_TRAIN_INNER_STEPS`). Everything under `model`,
`protocol`, `codec`, `score` and `sync` must agree across the network: those
are the subnet's hyperparameters, not per-node tuning.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Self

from subnet.chain.config import SubtensorConfig, WalletConfig
from subnet.codec.config import CodecConfig
from subnet.device.config import DEVICE_HELP, DeviceConfig
from subnet.errors import ConfigError
from subnet.miner.config import TrainConfig
from subnet.miner.rebase_config import RebaseConfig
from subnet.model.config import ModelConfig
from subnet.protocol.config import ProtocolConfig
from subnet.storage.config import StoreConfig
from subnet.sync.config import SyncConfig
from subnet.telemetry.config import DashboardConfig, MetricsConfig, WandbConfig
from subnet.telemetry.logs import LoggingConfig
from subnet.validator.batched_eval import BatchedEvalConfig
from subnet.validator.competition import CompetitionConfig
from subnet.validator.sampling import SamplingConfig
from subnet.validator.scoring import ScoreConfig
from subnet.version import VersionConfig

STATE_ROOT = "~/.tessera"
DEVNET_NETUID = 1  # what `tessera devnet bootstrap` creates first


def default_state_dir(wallet: WalletConfig, netuid: int, role: str) -> str:
    """~/.tessera/<wallet>/<hotkey>/netuid<N>/<role>: two neurons on one machine never share state."""
    return f"{STATE_ROOT}/{wallet.name}/{wallet.hotkey}/netuid{netuid}/{role}"


class _NeuronFinalize:
    """`finalize` shared by the neuron configs (the flag engine calls it after parsing)."""

    ROLE: ClassVar[str]
    netuid: int | None
    state_dir: str | None
    wallet: WalletConfig
    subtensor: SubtensorConfig

    def finalize(self) -> Self:
        """Refuse a missing --netuid on a real network; key the default state dir by wallet, hotkey, netuid."""
        netuid = self.netuid
        if netuid is None:
            if not self.subtensor.is_devnet:
                raise ConfigError(
                    f"--netuid is required on {self.subtensor.chain_endpoint or self.subtensor.network} "
                    "(it defaults only on the devnet); set --netuid N or TESSERA_NETUID")
            netuid = DEVNET_NETUID
        if netuid < 0:
            raise ConfigError(f"--netuid must be >= 0, got {netuid}")
        state_dir = self.state_dir or default_state_dir(self.wallet, netuid, self.ROLE)
        return dataclasses.replace(self, netuid=netuid, state_dir=state_dir)  # type: ignore[type-var]


# Scoring as the network runs it (issue 10, docs/BENCHMARKS.md): shape A8 H8 R0, i.e. 8 assigned pages
# (2 x pow_batch_size 4), 8 held-out pages (1 x batch_size 8) and no extra control pages (the held-out pages
# are the proof-of-work control): 24 page-forwards per contribution instead of 40. Proof of work is the
# sequential rule (validator/powevidence.py: drift 1.5, bar 3, cap 6, one-window deferred credit); the
# replayed tries paid 0/300 free-rider tries and 198/200 honest ones on this shape. pow_ratio (the old
# per-window ratio test, a margin measured on live devnet runs) no longer gates with pow_sequential on.
NETWORK_SCORE = ScoreConfig(n_assigned_batches=2, n_heldout_batches=1, n_random_batches=0, pow_ratio=0.1,
                            pow_sequential=True)


@dataclass(frozen=True, kw_only=True)
class TelemetryConfig:
    """Where the neuron writes its JSONL event log (the scoreboard and reports read it)."""

    dir: str | None = None
    """Directory for `<component>-<uid>.jsonl` event files (none: no event log)."""
    max_mb: int = 256
    """Size in MiB at which the event log is rotated to `<component>-<uid>.<UTC stamp>.jsonl` (0: never)."""
    keep_files: int = 8
    """Rotated event-log segments kept per neuron (the oldest are deleted): at most (keep_files + 1) x max_mb."""

    def __post_init__(self) -> None:
        if self.max_mb < 0 or self.keep_files < 1:
            raise ConfigError(f"telemetry: max_mb >= 0 (0 = never rotate) and keep_files >= 1, "
                              f"got {self.max_mb}, {self.keep_files}")

    @property
    def rotation(self) -> dict[str, int]:
        """The `EventLog` keyword arguments these settings give."""
        return {"max_bytes": self.max_mb * 2**20, "keep": self.keep_files}


@dataclass(frozen=True, kw_only=True)
class DataFlags:
    """Which corpus the token pages come from."""

    source: str = "embedded"
    """'embedded' (the public-domain corpus fetched at set-up), local text files, or a hub dataset name."""
    cache_dir: str | None = None
    """Cache for the corpus, tokenizer and token pages (default $TESSERA_CACHE_DIR or ~/.cache/tessera)."""
    shards: str | None = None
    """Public location of the subnet's pre-tokenized shards (s3://bucket/prefix?endpoint=URL; file:// on the devnet),
    read anonymously; none: tokenize `source` locally. With it, `source` is ignored."""
    manifest_sha256: str | None = None
    """sha256 of the shard manifest: a subnet parameter every node must agree on (published by the subnet owner);
    required with --data.shards."""
    shard_cache_mb: int = 4096
    """Disk bound of the local shard cache under <cache_dir>/shards, in MiB (least recently used evicted first)."""
    shard_memory_mb: int = 512
    """Memory bound of the in-process shard cache, in MiB."""
    fetch_workers: int = 8
    """Shard downloads in flight at once (prefetch and on demand)."""


@dataclass(frozen=True, kw_only=True)
class ValidatorOptions:
    """Validator cadence and judgement knobs."""

    poll_interval: float = 6.0
    """Seconds between polls of the miners' stores (upload evidence): half a 12 s block (devnet: 0.5-1)."""
    watch_interval: float = 2.0
    """Seconds between the upload watcher's passes over miners' stores not yet seen this window."""
    poll_workers: int = 32
    """Peer store requests in flight at once (one slow store holds one worker, nobody else)."""
    per_endpoint_requests: int = 2
    """Requests in flight to one endpoint (host:port) at once: sybils behind one server share them."""
    peer_window_budget_s: float = 60.0
    """Store time one peer may use per window; then it is not polled again that window."""
    peer_retry_after_s: float = 3.0
    """Pause before retrying a peer store that failed or timed out."""
    copy_threshold: float = 0.5
    """Similarity (index overlap x value cosine) at which the later of two uploads is charged as a copy."""
    cohort_method: Literal["median", "max", "rank"] = "median"
    """Per-fragment score normalisation."""
    max_staleness: int = 1
    """Versions an artifact's base model may lag the validator's before it scores zero."""
    weights_interval: int = 1
    """Windows between weight settings (also bounded by the chain's rate limit)."""
    norm_outlier: float = 4.0
    """An update whose norm exceeds this many times its fragment cohort's median scores zero (poison guard)."""
    min_score: float = 1e-3
    """Noise floor: a held-out improvement below this (relative, 1e-3 = 0.1%) counts as none."""
    aggregate_z: float = 3.0
    """Aggregate (unpaid) an evaluated update that passed proof of work and every gate when its held-out change
    is at most this many standard errors below zero (pipeline.within_noise); 0: only paid updates are
    aggregated. Why 3: on the deployed defaults (tiny, 1,000 steps, seed 0) z = 0 / 1 / 2 / 3 / keep-all gave
    1.115 / 1.108 / 1.098 / 1.093 / 1.095 of centralized AdamW's held-out loss (docs/BENCHMARKS.md): most
    honest uploads that measure below zero alone still help in the mean, and z = 3 keeps what keeping
    everything gains while an update more than 3 standard errors below zero stays out."""

    def __post_init__(self) -> None:
        if self.norm_outlier <= 1:
            raise ConfigError("validator.norm_outlier must be > 1")
        if self.watch_interval <= 0 or self.per_endpoint_requests < 1:
            raise ConfigError("validator: watch_interval > 0, per_endpoint_requests >= 1")
        if self.poll_workers < 1 or self.peer_window_budget_s <= 0 or self.peer_retry_after_s < 0:
            raise ConfigError("validator: poll_workers >= 1, peer_window_budget_s > 0, peer_retry_after_s >= 0")
        if self.poll_interval <= 0 or self.weights_interval < 1 or self.max_staleness < 0:
            raise ConfigError("validator: poll_interval > 0, weights_interval >= 1, max_staleness >= 0")
        if not (math.isfinite(self.aggregate_z) and self.aggregate_z >= 0):
            raise ConfigError("validator.aggregate_z must be a finite number >= 0")
        if not 0 < self.copy_threshold <= 1:
            raise ConfigError("validator.copy_threshold must be in (0, 1]")


@dataclass(frozen=True, kw_only=True)
class MinerNeuronConfig(_NeuronFinalize):
    """Tessera miner: trains its assigned fragment each window and uploads a signed, compressed pseudo-gradient."""

    ROLE: ClassVar[str] = "miner"
    netuid: int | None = None
    """Subnet id; required on a real network, 1 by default on the devnet."""
    state_dir: str | None = None
    """Persistent state (model copy, optimizer, error feedback, counters); default
    ~/.tessera/<wallet.name>/<wallet.hotkey>/netuid<N>/miner."""
    torch_threads: int = 1
    """Threads torch may use for compute on the CPU (torch.set_num_threads)."""
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    compute: DeviceConfig = field(default_factory=DeviceConfig)
    """How the device is used (precision, micro-batches, compile, checkpointing, GPU health limits); never consensus."""
    wallet: WalletConfig = field(default_factory=WalletConfig)
    subtensor: SubtensorConfig = field(default_factory=SubtensorConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rebase: RebaseConfig = field(default_factory=RebaseConfig)
    """Moving the local weights onto the lead's newest manifest when it lands mid-window (not consensus)."""
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    data: DataFlags = field(default_factory=DataFlags)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """Prometheus /metrics endpoint (off unless --metrics.port), fed by the event log."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    """Consensus settings of the outer step: a miner refuses lead manifests that break them."""
    version: VersionConfig = field(default_factory=VersionConfig)
    """This code's SPEC_VERSION against the subnet's WeightsVersionKey, at start-up and every N windows."""


@dataclass(frozen=True, kw_only=True)
class ValidatorNeuronConfig(_NeuronFinalize):
    """Tessera validator: scores contributions, runs the competition, aggregates and sets weights."""

    ROLE: ClassVar[str] = "validator"
    netuid: int | None = None
    """Subnet id; required on a real network, 1 by default on the devnet."""
    state_dir: str | None = None
    """Persistent state (ratings, model copy, last weights block); default
    ~/.tessera/<wallet.name>/<wallet.hotkey>/netuid<N>/validator."""
    torch_threads: int = 1
    """Threads torch may use for compute on the CPU (torch.set_num_threads)."""
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    compute: DeviceConfig = field(default_factory=DeviceConfig)
    """How the device is used (precision, micro-batches, compile, checkpointing, GPU health limits); never consensus."""
    wallet: WalletConfig = field(default_factory=WalletConfig)
    subtensor: SubtensorConfig = field(default_factory=SubtensorConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    data: DataFlags = field(default_factory=DataFlags)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """Prometheus /metrics endpoint (off unless --metrics.port), fed by the event log."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    """Read-only web dashboard (off unless --dashboard.port; loopback by default), fed by the event log."""
    sync: SyncConfig = field(default_factory=SyncConfig)
    score: ScoreConfig = field(default_factory=lambda: NETWORK_SCORE)
    competition: CompetitionConfig = field(default_factory=CompetitionConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Who gets the full loss evaluation per window (cheap checks run on everyone); validator/sampling.py."""
    eval: BatchedEvalConfig = field(default_factory=BatchedEvalConfig)
    """How many contributions share one evaluation pass (validator/batched_eval.py); scores are the same either way."""
    version: VersionConfig = field(default_factory=VersionConfig)
    """This code's SPEC_VERSION against the subnet's WeightsVersionKey, at start-up and every N windows."""
    validator: ValidatorOptions = field(default_factory=ValidatorOptions)
