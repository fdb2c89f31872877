"""Adversarial miner behaviours, selectable with `--adversary.behaviour` of neurons/adversary_miner.py
(tests, benches and the demo only; the production miner never imports this module).

Each produces a real, signed (or deliberately mis-signed) file through the
same codec and store path as an honest miner, so the validator is tested
against files, not flags. `EXPECTED_OUTCOME` says how the validator is meant
to answer each one (validator_tests/test_adversaries.py checks it).

Quality attacks (a well-formed file with a bad update):

- honest: train on the assigned pages (the default; not handled here)
- noise:  random values with the norm of a plausible update (a lazy miner)
- zero:   an all-zero update
- wrong_pages: honest training, but on pages other than the assignment
- scaled: an honest update multiplied by --adversary.poison_scale (poison; 10..1000)
- sign_flip: an honest update with its sign flipped

Free-riders:

- copier: re-sign another miner's artifact of the same fragment as its own
- copier_noisy: decode another miner's artifact, add small Gaussian noise
  (5% of the update's RMS), re-encode with a fresh encoder and sign it
- sybil: one operator, several hotkeys. The sybils of a group commit the SAME
  store location (that is how they find each other, no extra flag). Each
  window every sybil trains, from the global model with a fresh AdamW state
  and no error feedback, on the pages assigned to the lowest-uid sybil of
  its fragment cohort, so sybils that share a fragment derive the same
  pseudo-gradient deterministically (bit-identical when they hold the same
  model version; near-identical when one synced a manifest the other had not)
  and upload it under each hotkey at about the same time.
- late:   an honest artifact uploaded after the window's deadline

Broken or forged files (refused before any scoring):

- nan:          validly signed, a chunk's bf16 scales are NaN or +Inf
- truncated:    a valid artifact cut short (the tail of the payload missing)
- oversized:    a valid artifact padded past --store.max_artifact_bytes
                (set it to the validators' value: the store refuses to fetch it)
- wrong_shape:  validly signed, encoded for tensors of the wrong shape
- bad_index:    validly signed, a chunk repeats an index (it would count twice)
- pickle:       a Python pickle named .safetensors; its __reduce__ would create
                `<state_dir>/PICKLE_WAS_LOADED` if anyone ever unpickled it
- lying_header: an honest update validly signed by our hotkey whose header
                names another window, fragment or uid (rotating per window)
- impersonate:  signed by a fresh keypair, not our hotkey, written to our own
                key: even windows claim our hotkey (bad signature), odd windows
                claim the fresh key's hotkey (wrong hotkey)
- steal_key:    writes an artifact under ANOTHER miner's key in our own store
                (and nothing under our key), hoping a validator reads keys from
                the wrong store or blames the victim
- replay:       a peer's valid artifact of window w-2 (or older) re-uploaded as
                ours for window w, re-signed (an unsigned replay would fail the
                signature) but keeping its original base model version
"""

from __future__ import annotations

import hashlib
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bittensor.sp_core import Keypair
from loguru import logger

from subnet.codec.sparseloco import EncodedUpdate, Encoder, decode, pack_indices, unpack_indices
from subnet.codec.wire import ArtifactHeader, header_metadata, read_artifact, sign_and_pack, write_artifact
from subnet.miner.train import inner_train
from subnet.model.fragments import Fragment, fragment_shapes
from subnet.protocol.assignment import Assignment, assign_all, random_pages
from subnet.protocol.keys import artifact_key
from subnet.protocol.windows import window_end
from subnet.storage.base import open_store

QUALITY = ("noise", "zero", "wrong_pages", "scaled", "sign_flip")
FREE_RIDERS = ("copier", "copier_noisy", "sybil", "late")
BROKEN = ("nan", "truncated", "oversized", "wrong_shape", "bad_index", "pickle", "lying_header", "impersonate",
          "steal_key", "replay")
BEHAVIOURS = ("honest", *QUALITY, *FREE_RIDERS, *BROKEN)

EXPECTED_OUTCOME: dict[str, tuple[str, ...]] = {
    # reason prefixes the validator is expected to record for the behaviour's submissions
    "nan": ("rejected: NonFinite",),
    "truncated": ("rejected: Truncated",),
    "oversized": ("absent",),  # the watcher refuses to download past the byte bound: never pinned
    "wrong_shape": ("rejected: BadShape",),
    "bad_index": ("rejected: BadIndex",),
    "pickle": ("rejected: Malformed",),
    "lying_header": ("rejected: HeaderMismatch",),
    "impersonate": ("rejected: BadSignature", "rejected: WrongHotkey"),
    "steal_key": ("absent",),
    "replay": ("stale base version",),
    "late": ("late", "absent"),
    "copier": ("copy of uid", "copy tie uid"),
    "copier_noisy": ("copy of uid", "copy tie uid"),
}
"""Reason prefixes expected for each behaviour's scored submissions (besides plain "absent" windows)."""

PICKLE_MARKER = "PICKLE_WAS_LOADED"

# Typical norm of an honest pseudo-gradient element (H~10 AdamW steps at lr~1e-3);
# the noise miner matches it so a norm check alone cannot catch it.
_NOISE_STD = 1e-3
_COPY_NOISE = 0.05  # copier_noisy: noise std as a fraction of the copied update's RMS


# -- quality attacks (called by the loop with a train callback) ----------------------------------


def fake_pseudo_grad(behaviour: str, rt: Any, fragment: Fragment, mine: Assignment, w: int,
                     train: Callable[[tuple[int, ...]], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    shapes = fragment_shapes(rt.gm.model, fragment)
    if behaviour == "noise":
        return _noise(shapes, rt.uid, w)
    if behaviour == "zero":
        return {n: torch.zeros(tuple(s)) for n, s in shapes.items()}
    if behaviour == "wrong_pages":
        seed = rt.chain.window_seed(w)
        other = random_pages(seed, rt.uid, rt.assignment_params, len(mine.pages))
        return train(other)
    if behaviour in ("scaled", "sign_flip"):
        pg = train(mine.pages)
        factor = -1.0 if behaviour == "sign_flip" else float(rt.cfg.adversary.poison_scale)
        return {n: t * factor for n, t in pg.items()}
    raise ValueError(f"unknown miner behaviour {behaviour!r}; expected one of {BEHAVIOURS}")


def _noise(shapes: dict, uid: int, w: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(hash((uid, w)) & 0x7FFFFFFF)
    return {n: torch.randn(tuple(s), generator=g) * _NOISE_STD for n, s in shapes.items()}


# -- free-riders ---------------------------------------------------------------------------------


def _victims(rt: Any, mine: Assignment, peers: list, assignments: dict[int, Assignment]) -> list:
    return [p for p in peers if p.uid != rt.uid and p.location and not p.validator_permit
            and assignments.get(p.uid) is not None and assignments[p.uid].fragment == mine.fragment]


def _read_peer_artifact(rt: Any, peer: Any, key: str, shapes: Any) -> Any:
    """A peer's verified artifact at `key`, or None (a peer's broken store or file is not our problem)."""
    try:
        data = open_store(peer.location).get(key, rt.cfg.store.max_artifact_bytes)
        if data is None:
            return None
        return read_artifact(data, expected_hotkey=peer.hotkey, max_bytes=rt.cfg.store.max_artifact_bytes,
                             shapes=shapes)
    except Exception as exc:  # noqa: BLE001 - adversary tooling: any failure means "nothing to steal"
        logger.debug("cannot use {} of uid {}: {}", key, peer.uid, exc)
        return None


def _wait_for_peer_artifact(rt: Any, w: int, mine: Assignment, victims: list, stop: Callable[[], bool]):
    """Poll the victims' stores until one holds a readable window-`w` artifact; (victim, Artifact) or None."""
    deadline = window_end(w, rt.window_params) - 1
    shapes = fragment_shapes(rt.gm.model, rt.gm.fragment(mine.fragment))
    while rt.chain.block() < deadline and not stop():
        for v in victims:
            art = _read_peer_artifact(rt, v, artifact_key(rt.netuid, w, v.hotkey, mine.fragment), shapes)
            if art is not None:
                return v, art
        time.sleep(0.5)
    return None


def _victim_artifact(rt: Any, w: int, mine: Assignment, peers: list, assignments: dict[int, Assignment],
                     stop: Callable[[], bool]) -> tuple[Any, Any] | dict:
    """(victim, its verified artifact) for window `w`, or a {"reason": ...} saying why there is none."""
    victims = _victims(rt, mine, peers, assignments)
    if not victims:
        return {"reason": "no peer with the same fragment to copy"}
    found = _wait_for_peer_artifact(rt, w, mine, victims, stop)
    return found if found is not None else {"reason": "nothing to copy before the deadline"}


def copy_peer(rt: Any, w: int, mine: Assignment, peers: list, assignments: dict[int, Assignment],
              header: ArtifactHeader, stop: Callable[[], bool] = lambda: False) -> tuple[bytes | None, dict]:
    """Wait for another miner's artifact of our fragment in window `w`, re-sign it as ours."""
    found = _victim_artifact(rt, w, mine, peers, assignments, stop)
    if isinstance(found, dict):
        return None, found
    v, art = found
    logger.info("copier: re-signing uid {}'s artifact for window {}", v.uid, w)
    return write_artifact(art.encoded, header, rt.wallet.hotkey), {"copied_from": v.uid}


def copy_peer_noisy(rt: Any, w: int, mine: Assignment, peers: list, assignments: dict[int, Assignment],
                    header: ArtifactHeader, stop: Callable[[], bool] = lambda: False) -> tuple[bytes | None, dict]:
    """Copy a peer's update through decode -> + small noise -> fresh encode, so the bytes differ."""
    found = _victim_artifact(rt, w, mine, peers, assignments, stop)
    if isinstance(found, dict):
        return None, found
    v, art = found
    shapes = fragment_shapes(rt.gm.model, rt.gm.fragment(mine.fragment))
    encoded = noisy_copy(art.encoded, shapes, rt.codec, seed=(rt.uid << 20) + w)
    logger.info("copier_noisy: re-encoded uid {}'s artifact for window {} with {:.0%} noise", v.uid, w, _COPY_NOISE)
    return write_artifact(encoded, header, rt.wallet.hotkey), {"copied_from": v.uid}


def noisy_copy(encoded: EncodedUpdate, shapes: dict, codec: Any, *, seed: int) -> EncodedUpdate:
    """Decode, add Gaussian noise (_COPY_NOISE x the RMS of the sent values), re-encode with a fresh encoder."""
    dense = decode(encoded, shapes)
    g = torch.Generator().manual_seed(seed)
    noisy = {}
    for n, t in dense.items():
        nz = t[t != 0]
        rms = float(nz.pow(2).mean().sqrt()) if nz.numel() else 0.0
        noisy[n] = t + torch.randn(t.shape, generator=g) * (_COPY_NOISE * rms)
    return Encoder(shapes, codec).encode(noisy)  # fresh: no error feedback to betray us


def sybil_update(rt: Any, w: int, mine: Assignment, fragment: Fragment, header: ArtifactHeader, peers: list,
                 assignments: dict[int, Assignment]) -> tuple[bytes, dict]:
    """The group's shared pseudo-gradient for our fragment (see the module docstring)."""
    my_location = next((p.location for p in peers if p.uid == rt.uid), None)
    group = sorted(p.uid for p in peers if p.location and p.location == my_location and not p.validator_permit
                   and assignments.get(p.uid) is not None and assignments[p.uid].fragment == mine.fragment)
    source = group[0] if group else rt.uid
    pages = assignments[source].pages
    batches = _batches(rt, pages)
    # fresh optimizer, fixed post-warm-up step, no EF: a pure function of (model, pages)
    res = inner_train(rt.gm.model, fragment, batches, rt.cfg.train, None, start_step=rt.cfg.train.warmup_steps)
    encoded = Encoder(fragment_shapes(rt.gm.model, fragment), rt.codec).encode(res.pseudo_grad)
    digest = hashlib.sha256(b"".join(bytes(t.contiguous().view(torch.uint8).numpy())
                                     for t in (encoded.idx, encoded.occ, encoded.val, encoded.scales))).hexdigest()
    logger.info("sybil: window {} fragment {} trained on uid {}'s pages (group {}), payload {}", w,
                mine.fragment, source, group, digest[:12])
    return write_artifact(encoded, header, rt.wallet.hotkey), {"sybil_source": source, "payload": digest[:16]}


def _batches(rt: Any, pages: tuple[int, ...]):
    bs, steps = rt.cfg.train.batch_size, rt.cfg.train.inner_steps
    idx = list(pages)
    for s in range(steps):
        yield rt.pages.batch([idx[(s * bs + j) % len(idx)] for j in range(bs)], "train")


# -- broken and forged files ---------------------------------------------------------------------


def _cheap_encoded(rt: Any, fragment: Fragment, w: int, shapes: dict | None = None) -> EncodedUpdate:
    """A plausible-looking encoded update without training (the file is refused anyway)."""
    shapes = shapes or fragment_shapes(rt.gm.model, fragment)
    return Encoder(shapes, rt.codec).encode(_noise(shapes, rt.uid, w))


def _tensors(enc: EncodedUpdate) -> dict[str, torch.Tensor]:
    return {"idx": enc.idx.clone(), "occ": enc.occ.clone(), "val": enc.val.clone(),
            "scale": enc.scales.to(torch.bfloat16).clone()}


class _PickleBomb:
    """Unpickling this creates a marker file: proof that someone loaded peer data with pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def broken_artifact(behaviour: str, rt: Any, w: int, fragment: Fragment, header: ArtifactHeader,
                    train_encoded: Callable[[], EncodedUpdate], peers: list) -> bytes:
    """The bytes a broken-file behaviour uploads under its own key for window `w`."""
    kp = rt.wallet.hotkey
    if behaviour == "nan":
        enc = _cheap_encoded(rt, fragment, w)
        t = _tensors(enc)
        t["scale"][0, :] = float("nan") if w % 2 == 0 else float("inf")
        return sign_and_pack(t, header_metadata(enc, header), kp)
    if behaviour == "truncated":
        data = write_artifact(_cheap_encoded(rt, fragment, w), header, kp)
        return data[: len(data) - max(1, len(data) // 10)]  # the tail of the payload is missing
    if behaviour == "oversized":
        data = write_artifact(_cheap_encoded(rt, fragment, w), header, kp)
        return data + b"\0" * (rt.cfg.store.max_artifact_bytes + 1 - len(data))
    if behaviour == "wrong_shape":
        shapes = {n: tuple(s) for n, s in fragment_shapes(rt.gm.model, fragment).items()}
        name = next(iter(shapes))
        shapes[name] = (shapes[name][0] + 1, *shapes[name][1:])
        return write_artifact(_cheap_encoded(rt, fragment, w, shapes), header, kp)
    if behaviour == "bad_index":
        return _bad_index(_cheap_encoded(rt, fragment, w), header, kp)
    if behaviour == "pickle":
        marker = str(Path(rt.state_dir) / PICKLE_MARKER)
        return pickle.dumps({"idx": _PickleBomb(marker), "window": w}, protocol=2)
    if behaviour == "lying_header":
        lie = _lie(rt, w, header, peers)
        return write_artifact(train_encoded(), lie, kp)
    if behaviour == "impersonate":
        impostor = Keypair.create_from_uri(f"//tessera-impostor-{rt.uid}")
        enc = _cheap_encoded(rt, fragment, w)
        if w % 2 == 0:  # claims our hotkey, signed by another key
            return sign_and_pack(_tensors(enc), header_metadata(enc, header), impostor)
        forged = ArtifactHeader(**{**_fields(header), "hotkey": impostor.ss58_address})
        return write_artifact(enc, forged, impostor)
    raise ValueError(f"{behaviour!r} is not a broken-file behaviour; expected one of {BROKEN}")


def _fields(h: ArtifactHeader) -> dict:
    return {"netuid": h.netuid, "window": h.window, "uid": h.uid, "hotkey": h.hotkey, "fragment": h.fragment,
            "base_version": h.base_version}


def _lie(rt: Any, w: int, header: ArtifactHeader, peers: list) -> ArtifactHeader:
    """Rotate over the header fields a validator must pin: window, fragment, uid."""
    n_frag = len(rt.gm.fragments)
    kind = w % 3
    if kind == 1 and n_frag > 1:
        return ArtifactHeader(**{**_fields(header), "fragment": (header.fragment + 1) % n_frag})
    if kind == 2:
        other = next((p.uid for p in peers if p.uid != rt.uid), rt.uid + 1)
        return ArtifactHeader(**{**_fields(header), "uid": other})
    return ArtifactHeader(**{**_fields(header), "window": header.window + 1})


def _bad_index(enc: EncodedUpdate, header: ArtifactHeader, kp: Any) -> bytes:
    """Repeat the first index of the first chunk (a position counted twice), then repack and sign."""
    blocks = unpack_indices(enc)
    first = blocks[0][0]
    if first.shape[1] >= 2:
        first[0, 1] = first[0, 0]
    else:  # k == 1: point past the end of the chunk instead
        first[0, 0] = (1 << enc.cfg.offset_bits) - 1
    tensors = _tensors(enc)
    tensors["idx"], tensors["occ"] = pack_indices(enc, blocks)
    return sign_and_pack(tensors, header_metadata(enc, header), kp)


def steal_key(rt: Any, store: Any, w: int, fragment: Fragment, header: ArtifactHeader, peers: list,
              assignments: dict[int, Assignment]) -> dict:
    """Write a harmful update under a victim's key in OUR store; nothing under our own key."""
    victims = [p for p in peers if p.uid != rt.uid and not p.validator_permit and p.uid in assignments]
    if not victims:
        return {"reason": "no victim"}
    v = victims[w % len(victims)]
    vfrag = assignments[v.uid].fragment
    shapes = fragment_shapes(rt.gm.model, rt.gm.fragment(vfrag))
    harmful = {n: -100.0 * t for n, t in _noise(shapes, rt.uid, w).items()}
    enc = Encoder(shapes, rt.codec).encode(harmful)
    lie = ArtifactHeader(netuid=rt.netuid, window=w, uid=v.uid, hotkey=v.hotkey, fragment=vfrag,
                         base_version=header.base_version)
    key = artifact_key(rt.netuid, w, v.hotkey, vfrag)
    store.put(key, sign_and_pack(_tensors(enc), header_metadata(enc, lie), rt.wallet.hotkey))
    logger.info("steal_key: wrote under uid {}'s key {} in our own store", v.uid, key)
    return {"reason": f"wrote under uid {v.uid}'s key instead of ours", "victim": v.uid}


def replay(rt: Any, w: int, mine: Assignment, header: ArtifactHeader, peers: list,
           min_age: int = 2, max_age: int = 4) -> tuple[bytes | None, dict]:
    """A peer's window-(w-age) artifact of our fragment, re-signed as ours for `w`, base version kept."""
    shapes = fragment_shapes(rt.gm.model, rt.gm.fragment(mine.fragment))
    for age in range(min_age, max_age + 1):
        old = w - age
        seed = rt.chain.window_seed(old) if old >= 0 else None
        if seed is None:
            continue
        past = assign_all(seed, [p.uid for p in peers], rt.assignment_params)
        for p in peers:
            a = past.get(p.uid)
            if p.uid == rt.uid or not p.location or p.validator_permit or a is None or a.fragment != mine.fragment:
                continue
            art = _read_peer_artifact(rt, p, artifact_key(rt.netuid, old, p.hotkey, a.fragment), shapes)
            if art is None:
                continue
            forged = ArtifactHeader(**{**_fields(header), "base_version": art.header.base_version})
            logger.info("replay: uid {}'s window-{} artifact (base version {}) re-signed for window {}",
                        p.uid, old, art.header.base_version, w)
            return write_artifact(art.encoded, forged, rt.wallet.hotkey), {"replayed": [p.uid, old]}
    return None, {"reason": "no earlier artifact of our fragment to replay"}
