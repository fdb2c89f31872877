"""One window of the validator's pipeline in one process: a real tiny model, real training, real signed files.

Used by validator_tests/test_validator_pipeline*.py. Nothing here is a stand-in
for the code under test: the global model is `build_global_model("tiny")`
briefly pre-trained, miners' updates come from the miner's own `inner_train`
(AdamW on their assigned pages) or from the attack recipes of
subnet/adversary (noise at a plausible norm, zeros, scaled or re-signed
updates), every artifact is encoded by the real codec and signed with a real
sr25519 key, and the pipeline stages get exactly what the loop hands them: the
pinned bytes and watcher statuses per hotkey and a `ChainSnapshot`.
The chain is the one thing this world plays: peers, assignments and seeds are
plain values (the point of the pipeline is that they are).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from bittensor.sp_core import Keypair

from subnet.codec import ArtifactHeader, CodecConfig, Encoder, write_artifact
from subnet.codec.sparseloco import EncodedUpdate
from subnet.codec.wire import expected_max_bytes
from subnet.data.config import DataConfig
from subnet.data.pages import TokenPages, load_pages
from subnet.miner.config import TrainConfig
from subnet.miner.train import inner_train, lm_loss
from subnet.node.chain import Peer
from subnet.node.config import NETWORK_SCORE, ValidatorOptions
from subnet.node.globalmodel import build_global_model
from subnet.protocol.assignment import Assignment, AssignmentParams
from subnet.sync.apply import GlobalModel
from subnet.validator.competition import CompetitionConfig, CompetitionState
from subnet.validator.evidence import Sighting
from subnet.validator.intake import IntakeRules, Pinned, Status, Verify
from subnet.validator.pipeline import (
    ChainSnapshot,
    EvalContext,
    SamplingPlan,
    Scorer,
    Verdict,
    artifact_verifier,
    judge,
    prepare_eval,
    verify_all,
)
from subnet.validator.powevidence import Credits
from subnet.validator.scoring import score_contribution
from subnet.validator.submission import Submission

NETUID, WINDOW = 3, 4
DEADLINE = 100  # first block after the window
VALIDATOR_UID = 0
PAGES_PER_MINER = 64
TRAIN = TrainConfig(inner_steps=4, lr=4e-3, warmup_steps=0, batch_size=8)
NOISE_STD = 1e-3  # subnet/adversary/behaviours.py's noise miner: the element scale of an honest update


@dataclass(frozen=True, kw_only=True)
class Upload:
    """One miner's signed artifact and when the validator first had it."""

    uid: int
    data: bytes
    block: int = 50
    first_seen: float = 1000.0
    seen_after: float | None = 990.0


@dataclass
class Window:
    """Who is registered, what each was assigned, what was pinned: the loop's inputs to the pipeline."""

    world: World
    peers: list[Peer] = field(default_factory=list)
    assignments: dict[int, Assignment] = field(default_factory=dict)
    pinned: dict[str, Pinned] = field(default_factory=dict)
    statuses: dict[str, Status] = field(default_factory=dict)

    def add(self, uid: int, upload: Upload | None = None, *, location: str | None = None,
            status: Status | None = None, commit_block: int = 10, fragment: int = 0) -> None:
        hotkey = self.world.hotkey(uid)
        self.peers.append(Peer(uid=uid, hotkey=hotkey, stake=0.0, validator_permit=False, last_update=0,
                               location=location or f"file:///stores/miner-{uid}", commit_block=commit_block,
                               registered_at=0))
        self.assignments[uid] = self.world.assignment(uid, fragment)
        if upload is not None:
            self.pinned[hotkey] = (self.world.sighting(uid, upload), upload.data)
        if status is not None:
            self.statuses[hotkey] = status

    def snapshot(self) -> ChainSnapshot:
        w = self.world
        validator = Peer(uid=VALIDATOR_UID, hotkey=w.hotkey(VALIDATOR_UID), stake=1000.0, validator_permit=True,
                         last_update=0, location="file:///stores/validator", commit_block=1, registered_at=0)
        return ChainSnapshot(netuid=NETUID, window=WINDOW, peers=(validator, *self.peers),
                             assignments={VALIDATOR_UID: w.assignment(VALIDATOR_UID), **self.assignments},
                             seed=w.seed, seed_next=w.seed_next, deadline_block=DEADLINE, self_uid=VALIDATOR_UID)

    def verified(self, verifier: Callable[[Peer, int], Verify] | None = None) -> list[Submission]:
        snap = self.snapshot()
        return verify_all(snap, self.pinned, self.statuses, self.world.rules(), verifier or self.world.verifier(snap))

    def judge(self, *, ref_norms: Mapping[int, float] | None = None, competition: CompetitionState | None = None,
              scorer: Scorer = score_contribution, verifier: Callable[[Peer, int], Verify] | None = None,
              subs: Sequence[Submission] | None = None, sampling: SamplingPlan | None = None,
              pow_evidence: Mapping[str, float] | None = None, pow_credits: Mapping[str, Credits] | None = None
              ) -> Verdict:
        """The pipeline over this window; ``pow_evidence`` None: every proof-of-work account starts empty (as a
        validator's first window with the network's sequential rule), ``self.proven()``: everyone banked."""
        snap = self.snapshot()
        subs = list(subs) if subs is not None else self.verified(verifier)
        return judge(subs, snap, self.world.ctx(snap), ref_norms=dict(ref_norms or {}),
                     competition=competition or CompetitionState(), opts=self.world.opts,
                     comp_cfg=self.world.comp_cfg, scorer=scorer, sampling=sampling, pow_evidence=pow_evidence,
                     pow_credits=pow_credits)

    def proven(self, uids: Sequence[int] | None = None) -> dict[str, float]:
        """Proof-of-work accounts at the cap for ``uids`` (default: every registered miner of the window).

        Why: a test of another rule (copy ties, norms, griefing) about miners with a record of proven work;
        with everyone banked the sequential rule gates no one this window, the strongest case for an attacker.
        """
        cap = self.world.score_cfg.pow_cap
        return {self.world.hotkey(u): cap for u in (self.assignments if uids is None else uids)}


class World:
    """The tiny model after a short pre-training, the embedded corpus, the network's scoring settings."""

    def __init__(self, n_fragments: int = 1) -> None:
        torch.set_num_threads(1)
        self.pages: TokenPages = load_pages(DataConfig(vocab_size=2048))
        self.gm: GlobalModel = build_global_model("tiny", n_fragments, seed=0)
        self._pretrain(steps=12)
        self.codec = CodecConfig()
        self.score_cfg = NETWORK_SCORE
        self.opts = ValidatorOptions()
        self.comp_cfg = CompetitionConfig()
        self.params = AssignmentParams(n_fragments=n_fragments, pages_per_miner=PAGES_PER_MINER,
                                       n_train_pages=self.pages.n_train, n_heldout_pages=self.pages.n_heldout,
                                       heldout_per_window=self.score_cfg.batch_size * self.score_cfg.n_heldout_batches)
        self.seed, self.seed_next = 0x5EED_0004, 0x5EED_0005
        self._ctx: dict[tuple[int, ...], EvalContext] = {}

    def _pretrain(self, steps: int) -> None:
        """A few full-model AdamW steps so updates have something to improve and pages tell miners apart."""
        model = self.gm.model
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for s in range(steps):
            loss = lm_loss(model, self.pages.batch(range(s * 8, s * 8 + 8)))
            opt.zero_grad()
            loss.backward()
            opt.step()
        for p in model.parameters():
            p.grad = None
        model.eval()

    # -- identities and assignments ---------------------------------------------------------------
    @functools.cache  # noqa: B019 -- one World per process (world() below), so the cache leaks nothing
    def keypair(self, uid: int) -> Keypair:
        return Keypair.create_from_uri(f"//PipelineWorld{uid}")

    def hotkey(self, uid: int) -> str:
        return self.keypair(uid).ss58_address

    def assignment(self, uid: int, fragment: int = 0) -> Assignment:
        start = 1000 + 300 * (uid % 40)  # disjoint for uids of one window below 40 apart
        return Assignment(fragment=fragment, pages=tuple(range(start, start + PAGES_PER_MINER)))

    # -- updates ----------------------------------------------------------------------------------
    @functools.cache  # noqa: B019 -- one World per process (world() below), so the cache leaks nothing
    def trained(self, pages: tuple[int, ...], fragment: int = 0, steps: int = TRAIN.inner_steps,
                lr: float = TRAIN.lr) -> dict[str, torch.Tensor]:
        """The miner's real inner loop on `pages` from the global model: the pseudo-gradient start - end."""
        cfg = TrainConfig(inner_steps=steps, lr=lr, warmup_steps=0, batch_size=TRAIN.batch_size)
        b = TRAIN.batch_size
        batches = iter([self.pages.batch([pages[(h * b + i) % len(pages)] for i in range(b)]) for h in range(steps)])
        return inner_train(self.gm.model, self.gm.fragment(fragment), batches, cfg).pseudo_grad

    def honest(self, uid: int, fragment: int = 0) -> dict[str, torch.Tensor]:
        return self.trained(self.assignment(uid, fragment).pages, fragment)

    def noise(self, seed: int, scale: float = 1.0, fragment: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return {n: torch.randn(s, generator=g) * NOISE_STD * scale for n, s in self.gm.shapes(fragment).items()}

    def zero(self, fragment: int = 0) -> dict[str, torch.Tensor]:
        return {n: torch.zeros(s) for n, s in self.gm.shapes(fragment).items()}

    def encode(self, pseudo_grad: Mapping[str, torch.Tensor], fragment: int = 0) -> EncodedUpdate:
        return Encoder(self.gm.shapes(fragment), self.codec).encode(dict(pseudo_grad))

    def sign(self, uid: int, update: Mapping[str, torch.Tensor] | EncodedUpdate, *, fragment: int = 0,
             base_version: int | None = None, window: int = WINDOW, signer: int | None = None) -> bytes:
        enc = update if isinstance(update, EncodedUpdate) else self.encode(update, fragment)
        header = ArtifactHeader(netuid=NETUID, window=window, uid=uid, hotkey=self.hotkey(uid), fragment=fragment,
                                base_version=self.gm.version if base_version is None else base_version)
        return write_artifact(enc, header, self.keypair(uid if signer is None else signer))

    # -- what the validator reads -----------------------------------------------------------------
    def sighting(self, uid: int, up: Upload) -> Sighting:
        return Sighting(window=WINDOW, hotkey=self.hotkey(uid), fragment=0, first_seen=up.first_seen, block=up.block,
                        seen_after=up.seen_after, sha256=hashlib.sha256(up.data).hexdigest(), nbytes=len(up.data))

    def rules(self) -> IntakeRules:
        return IntakeRules(deadline_block=DEADLINE, model_version=self.gm.version,
                           max_staleness=self.opts.max_staleness)

    def verifier(self, snap: ChainSnapshot) -> Callable[[Peer, int], Verify]:
        max_bytes = {f: expected_max_bytes(self.gm.shapes(f), self.codec) for f in range(len(self.gm.fragments))}
        return artifact_verifier(snap, self.gm.shapes, max_bytes.__getitem__, self.codec)

    def ctx(self, snap: ChainSnapshot) -> EvalContext:
        """The window's evaluation context (held-out and control batches, baseline), per set of taking part."""
        key = tuple(sorted(snap.assignments))
        if key not in self._ctx:
            self._ctx[key] = prepare_eval(self.gm, self.pages, snap, self.score_cfg, self.params)
        return self._ctx[key]

    def window(self) -> Window:
        return Window(world=self)


@functools.cache
def world() -> World:
    """One world per test process (loading the corpus and pre-training take seconds)."""
    return World()
