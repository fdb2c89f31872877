"""Apply a manifest to this node's copy of the global model, exactly as the lead did.

For each selected artifact: fetch the bytes (from the miner's store), check
their sha256 against the manifest, verify and decode them (subnet.codec, with
this node's pinned codec parameters), and only when every artifact is in
hand, apply per fragment

    delta = sum_i weight_i * d_i   (manifest order)   ;   p = p - outer_lr * delta

with elementwise fp32 ops under the manifest's aggregation rule (see
aggregate.combine; an unknown rule is refused). A missing or mismatching
artifact, or any failure to decode one, raises a `SyncError` before any
parameter is touched: a node that cannot reproduce the lead's step must not
guess, it catches up from a checkpoint instead (checkpoints.catch_up).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from loguru import logger
from torch import nn

from subnet.codec.config import CodecConfig
from subnet.errors import SubnetError
from subnet.model.fragments import Fragment, fragment_shapes, trainable_parameters
from subnet.model.state import model_hash
from subnet.protocol.keys import parse_artifact_key
from subnet.protocol.manifest import Manifest, ManifestEntry
from subnet.sync.aggregate import RULE, RULES, combine

if TYPE_CHECKING:
    from subnet.sync.bounds import ManifestPolicy
from subnet.sync.errors import (
    ArtifactHashMismatch,
    ArtifactRefused,
    ArtifactUnavailable,
    ModelHashMismatch,
    SyncError,
    VersionMismatch,
)

Shapes = Mapping[str, Sequence[int]]
FetchArtifact = Callable[[ManifestEntry], "bytes | None"]
DecodeArtifact = Callable[[bytes, ManifestEntry, Shapes], dict[str, torch.Tensor]]


def artifact_sha256(data: bytes) -> str:
    """What `ManifestEntry.sha256` pins: hex sha256 of the artifact file bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(kw_only=True)
class GlobalModel:
    """This node's copy of the shared model and the version it holds.

    version: number of manifests applied since the seeded init (version 0).
    last_manifest_window: window of the last manifest applied (-1: none yet).
    init_model: builds the seeded version-0 model again (same preset and seed), so a
        node that holds a state off the lead's signed history can return to version 0
        and replay (see checkpoints.catch_up); None: no reset possible.
    """

    model: nn.Module
    fragments: list[Fragment]
    version: int = 0
    last_manifest_window: int = -1
    init_model: Callable[[], nn.Module] | None = None

    @property
    def model_hash(self) -> str:
        return model_hash(self.model)

    def fragment(self, index: int) -> Fragment:
        if not 0 <= index < len(self.fragments):
            raise SyncError(f"manifest names fragment {index} but the model has {len(self.fragments)}")
        return self.fragments[index]

    def shapes(self, index: int) -> dict[str, tuple[int, ...]]:
        return {n: tuple(s) for n, s in fragment_shapes(self.model, self.fragment(index)).items()}

    def reset_to_init(self) -> None:
        """Back to the seeded version 0 (tensors, version, window); SyncError if there is no init."""
        if self.init_model is None:
            raise SyncError("this model has no seeded init to reset to")
        fresh = self.init_model().state_dict()
        local = self.model.state_dict()
        if set(fresh) != set(local):
            raise SyncError("the seeded init does not have this model's tensors")
        with torch.no_grad():
            for name, t in local.items():
                t.copy_(fresh[name])
        self.version = 0
        self.last_manifest_window = -1
        logger.warning("reset the global model to the seeded init (version 0)")


def default_decode(max_bytes: int, codec: CodecConfig) -> DecodeArtifact:
    """Verify (signature, hotkey, shapes, ranges, pinned codec) and densely decode with subnet.codec.

    The codec is this node's: an artifact with any other chunk/topk/value_bits
    is refused (HeaderMismatch) before a byte of it is unpacked.
    """
    from subnet.codec.sparseloco import decode
    from subnet.codec.wire import read_artifact

    def _decode(data: bytes, entry: ManifestEntry, shapes: Shapes) -> dict[str, torch.Tensor]:
        netuid, window, _, _ = parse_artifact_key(entry.key)
        artifact = read_artifact(data, expected_hotkey=entry.hotkey, max_bytes=max_bytes, shapes=shapes,
                                 netuid=netuid, window=window, fragment=entry.fragment, uid=entry.uid,
                                 codec=codec)
        return decode(artifact.encoded, shapes)

    return _decode


def fetch_and_decode(
    gm: GlobalModel, manifest: Manifest, fetch_artifact: FetchArtifact, decode: DecodeArtifact
) -> list[dict[str, torch.Tensor]]:
    """Decoded deltas for every manifest entry (manifest order), or SyncError.

    Bytes and manifests here are peer input: any exception while fetching or
    decoding them becomes a SyncError (typed errors keep their message, others
    their type name), so a hostile file can refuse a step but never end a loop.
    """
    deltas = []
    for entry in manifest.entries:
        shapes = gm.shapes(entry.fragment)
        try:
            data = fetch_artifact(entry)
        except Exception as exc:  # noqa: BLE001 - a store's failure is an unavailable artifact
            raise ArtifactUnavailable(f"window {manifest.window}: cannot fetch {entry.key}: "
                                      f"{_describe(exc)}") from exc
        if data is None:
            raise ArtifactUnavailable(
                f"window {manifest.window}: artifact {entry.key} (uid {entry.uid}) is unavailable",
                remediation="catch up from the lead's checkpoint",
            )
        got = artifact_sha256(data)
        if got != entry.sha256:
            raise ArtifactHashMismatch(
                f"window {manifest.window}: artifact {entry.key} hashes to {got[:16]}..., "
                f"manifest pins {entry.sha256[:16]}..."
            )
        try:
            delta = decode(data, entry, shapes)
        except Exception as exc:  # noqa: BLE001 - peer bytes: whatever the decoder raises is a refusal
            if not isinstance(exc, SubnetError):
                logger.warning("window {}: decoding {} raised untyped {}", manifest.window, entry.key,
                               type(exc).__name__)
            raise ArtifactRefused(f"window {manifest.window}: artifact {entry.key} does not decode: "
                                  f"{_describe(exc)}") from exc
        if not isinstance(delta, Mapping) or set(delta) != set(shapes):
            raise ArtifactRefused(f"window {manifest.window}: artifact {entry.key} decodes to the wrong tensors")
        deltas.append(delta)
    return deltas


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SubnetError) else f"{type(exc).__name__}: {exc}"


def apply_decoded(gm: GlobalModel, manifest: Manifest, deltas: Sequence[Mapping[str, torch.Tensor]], *,
                  verify_hash: bool = True) -> int:
    """Apply already-decoded deltas (one per manifest entry, manifest order); return the new version.

    The lead calls this with the deltas it scored; followers get here through
    `apply_manifest`. With `verify_hash` and a manifest `model_hash`, a
    mismatch restores the touched parameters and raises ModelHashMismatch.
    """
    if manifest.base_version != gm.version:
        raise VersionMismatch(
            f"manifest window {manifest.window} applies to version {manifest.base_version}, "
            f"this node holds {gm.version}"
        )
    if len(deltas) != len(manifest.entries):
        raise SyncError(f"{len(deltas)} deltas for {len(manifest.entries)} manifest entries")
    rule = manifest.aggregation.get("rule", RULE)
    if rule not in RULES:  # a rule this node cannot reproduce: refuse before touching anything
        raise SyncError(f"manifest window {manifest.window} names aggregation rule {rule!r}; "
                        f"this node knows {', '.join(RULES)}")
    check = verify_hash and manifest.model_hash is not None
    by_fragment: dict[int, tuple[list[Mapping[str, torch.Tensor]], list[float]]] = {}
    for entry, delta in zip(manifest.entries, deltas):
        ds, cs = by_fragment.setdefault(entry.fragment, ([], []))
        ds.append(delta)
        cs.append(entry.weight)
    backup: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for fragment_index, (ds, cs) in sorted(by_fragment.items()):
            params = trainable_parameters(gm.model, gm.fragment(fragment_index))
            step = combine(ds, cs, names=list(params), rule=str(rule))
            for name, p in params.items():
                if check:
                    backup[name] = p.detach().clone()
                update = torch.mul(step[name].to(p.dtype), manifest.outer_lr)
                p.copy_(torch.sub(p, update))
    if check:
        got = gm.model_hash
        if got != manifest.model_hash:
            with torch.no_grad():
                params = dict(gm.model.named_parameters())
                for name, old in backup.items():
                    params[name].copy_(old)
            raise ModelHashMismatch(
                f"window {manifest.window}: model hash {got[:16]}... after applying, lead published "
                f"{manifest.model_hash[:16]}...",
                remediation="catch up from the lead's checkpoint",
            )
    gm.version = manifest.new_version
    gm.last_manifest_window = manifest.window
    logger.info("applied manifest window {} -> version {} ({} entries)", manifest.window, gm.version,
                len(manifest.entries))
    return gm.version


def apply_manifest(
    gm: GlobalModel,
    manifest: Manifest,
    fetch_artifact: FetchArtifact,
    *,
    codec: CodecConfig,
    decode: DecodeArtifact | None = None,
    max_artifact_bytes: int = 64 * 1024 * 1024,
    verify_hash: bool = True,
    policy: ManifestPolicy | None = None,
) -> int:
    """Fetch, verify, decode and apply `manifest`; return the new version.

    With `policy`, a manifest no honest lead would publish (bounds.ManifestPolicy)
    is refused before any download.

    `codec` is this node's codec config: the default decoder pins it. Raises
    SyncError (the model is unchanged) when any artifact is missing, does not
    match its pinned sha256, fails to decode, or the resulting model hash
    differs from the lead's. The manifest's signature is checked by the
    caller (checkpoints.read_manifest).
    """
    if manifest.base_version != gm.version:  # fail before any download
        raise VersionMismatch(
            f"manifest window {manifest.window} applies to version {manifest.base_version}, "
            f"this node holds {gm.version}"
        )
    if policy is not None:
        from subnet.sync.bounds import check_manifest_policy

        check_manifest_policy(manifest, policy)
    deltas = fetch_and_decode(gm, manifest, fetch_artifact, decode or default_decode(max_artifact_bytes, codec))
    return apply_decoded(gm, manifest, deltas, verify_hash=verify_hash)


def fetch_from_stores(stores: Mapping[str, object], max_bytes: int) -> FetchArtifact:
    """A FetchArtifact reading each entry from its miner's store (hotkey -> ArtifactStore).

    An unknown hotkey or an absent object yields None (-> ArtifactUnavailable).
    """

    def fetch(entry: ManifestEntry) -> bytes | None:
        store = stores.get(entry.hotkey)
        return None if store is None else store.get(entry.key, max_bytes)  # type: ignore[attr-defined]

    return fetch
