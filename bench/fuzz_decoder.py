"""Mutation fuzzer for `read_artifact`: hostile bytes must end in a typed refusal, fast.

Run: `.venv/bin/python bench/fuzz_decoder.py --n 100000` (flags: `--help`).

Why a seeded mutation fuzzer rather than coverage-guided (atheris): the
interesting inputs are near-valid signed artifacts, which random bytes almost
never reach; mutating real signed files (and re-signing some mutations with a
registered key, as a hostile miner can) gets past the signature check and
exercises the shape, index and scale checks behind it. Every run is seeded,
so a failure reproduces from `--seed` and the input is saved to `--crash_dir`.

Properties checked per input: `read_artifact` either returns an Artifact that
`decode` turns into finite tensors of the expected shapes, or raises a subclass
of `ArtifactError`; anything else is a crash; taking longer than
`--per_input_s` (enforced by SIGALRM) is a hang. The test suite runs the same
loop with a small count (validator_tests/test_fuzz_decoder.py).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import math
import pickle
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from bittensor.sp_core import Keypair

from subnet.codec import ArtifactError, ArtifactHeader, CodecConfig, Encoder, decode, read_artifact, write_artifact
from subnet.codec.wire import sign_and_pack

SHAPES = {"blk.w": (24, 40), "blk.norm": (40,), "tail": (300,)}
CFG = CodecConfig(chunk=256, topk=16, value_bits=2)
MAX_BYTES = 64 << 10
SIGNER = Keypair.create_from_uri("//FuzzMiner")  # a registered but hostile miner: its signatures verify
OTHER = Keypair.create_from_uri("//FuzzOther")
HEADER = dict(netuid=7, window=42, uid=3, fragment=1, base_version=9)


@dataclass(frozen=True, kw_only=True)
class FuzzConfig:
    n: int = 100_000
    seed: int = 0
    per_input_s: float = 2.0  # SIGALRM bound per read_artifact + decode
    crash_dir: Path | None = None


@dataclass(kw_only=True)
class FuzzReport:
    n: int = 0
    seconds: float = 0.0
    outcomes: collections.Counter = field(default_factory=collections.Counter)  # "ok" or error class name
    by_mutator: dict[str, collections.Counter] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    crashes: list[tuple[str, str]] = field(default_factory=list)  # (mutator, repr of exception)
    hangs: list[str] = field(default_factory=list)
    max_input_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0


class _Hang(BaseException):
    """Raised by SIGALRM; a BaseException so no `except Exception` in the decoder swallows it."""


def _on_alarm(signum, frame):  # noqa: ANN001
    raise _Hang()


# -- seeds ----------------------------------------------------------------------------------------


def _encoded(seed: int):
    g = torch.Generator().manual_seed(seed)
    return Encoder(SHAPES, CFG).encode({n: torch.randn(s, generator=g) for n, s in SHAPES.items()})


def _header(kp: Keypair = SIGNER) -> ArtifactHeader:
    return ArtifactHeader(hotkey=kp.ss58_address, **HEADER)


def seeds(k: int = 4) -> list[bytes]:
    """Valid signed artifacts (different contents) that the mutators start from."""
    return [write_artifact(_encoded(s), _header(), SIGNER) for s in range(k)]


def read_kwargs(pin_codec: bool) -> dict:
    return dict(expected_hotkey=SIGNER.ss58_address, max_bytes=MAX_BYTES, shapes=SHAPES,
                codec=CFG if pin_codec else None, **HEADER)


# -- container-level helpers ------------------------------------------------------------------------


def split(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(header: dict | str | bytes, body: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else (header if isinstance(header, str) else json.dumps(header)).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def _tensors_of(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    header, body = split(data)
    meta = header.pop("__metadata__")
    dt = {"U8": torch.uint8, "BF16": torch.bfloat16}
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        out[name] = (torch.frombuffer(bytearray(body[a:b]) or bytearray(1), dtype=dt[e["dtype"]])
                     [: (b - a) // dt[e["dtype"]].itemsize].reshape(e["shape"]).clone())
    return out, meta


# -- mutators: each takes (rng, valid artifact) and returns bytes -------------------------------------


def m_bitflip(rng: random.Random, d: bytes) -> bytes:
    b = bytearray(d)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def m_byteset(rng: random.Random, d: bytes) -> bytes:
    b = bytearray(d)
    for _ in range(rng.randint(1, 16)):
        b[rng.randrange(len(b))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    return bytes(b)


def m_truncate(rng: random.Random, d: bytes) -> bytes:
    return d[: rng.randrange(len(d))]


def m_extend(rng: random.Random, d: bytes) -> bytes:
    return d + rng.randbytes(rng.choice((1, 2, 7, 100, rng.randrange(1, 5000))))


def m_length_prefix(rng: random.Random, d: bytes) -> bytes:
    n = int.from_bytes(d[:8], "little")
    new = rng.choice((0, 1, n - 1, n + 1, n * 2, 2**31, 2**63 - 1, 2**64 - 1, rng.randrange(2**64)))
    return (new % 2**64).to_bytes(8, "little") + d[8:]


def m_tensor_entry(rng: random.Random, d: bytes) -> bytes:
    """dtype / shape / data_offsets edits in the safetensors header (signature untouched)."""
    header, body = split(d)
    name = rng.choice([k for k in header if k != "__metadata__"])
    e = header[name]
    choice = rng.randrange(9)
    if choice == 0:
        e["dtype"] = rng.choice(("F32", "I64", "U8", "BF16", "F64", "BOOL", "XX", 5, None))
    elif choice == 1:
        e["shape"] = rng.choice(([], [0], [2**62], [-1], [1.5], ["3"], [True], [2] * 9,
                                 [e["shape"][0] + 1] if e["shape"] else [1]))
    elif choice == 2:
        a, b = e["data_offsets"]
        e["data_offsets"] = rng.choice(([b, a], [a, b + 1], [a - 1, b], [0, 2**64], [-5, b], [a, 10**30], [a], "x",
                                        [a, b, 0]))
    elif choice == 3:
        del e[rng.choice(list(e))]
    elif choice == 4:
        e["extra"] = 1
    elif choice == 5:
        header[name] = rng.choice(([], "x", None, 3))
    elif choice == 6:
        header[name + "_copy"] = dict(e)
    elif choice == 7:
        header.pop(name)
    else:
        e["shape"] = [int(x) for x in e["shape"]][::-1] + [1]
    return join(header, body)


def m_metadata_unsigned(rng: random.Random, d: bytes) -> bytes:
    """Edit __metadata__ without re-signing: must fail the signature (or an earlier) check."""
    header, body = split(d)
    meta = header["__metadata__"]
    k = rng.choice(list(meta))
    meta[k] = rng.choice(("", "0", "1", "-1", "99999999999999999999999", meta[k] + "x", "\u00e9", "null"))
    if rng.random() < 0.2:
        header["__metadata__"] = rng.choice(([], "x", {"a": 1}, None))
    return join(header, body)


def m_header_text(rng: random.Random, d: bytes) -> bytes:
    """Textual JSON edits: duplicate keys, deep nesting, invalid UTF-8, NaN, truncation."""
    n = int.from_bytes(d[:8], "little")
    raw, body = d[8 : 8 + n].decode(), d[8 + n :]
    choice = rng.randrange(7)
    if choice == 0:  # duplicated key (the second would silently win in a lax parser)
        i = raw.index('"idx"')
        raw = raw[:1] + raw[i : raw.index("}", i) + 1] + "," + raw[1:]
    elif choice == 1:
        depth = rng.choice((30_000, 100_000))  # under and over the header size limit
        raw = "[" * depth + "]" * depth
    elif choice == 2:
        return join(raw.encode()[:-5] + b"\xff\xfe" + raw.encode()[-5:], body)
    elif choice == 3:
        raw = raw.replace('"shape":[', '"shape":[NaN,', 1)
    elif choice == 4:
        raw = raw[: rng.randrange(len(raw))]
    elif choice == 5:
        raw = raw + " " * rng.randrange(1, 64)
    else:
        raw = '{"__metadata__":' + raw + "}"
    return join(raw, body)


def m_foreign(rng: random.Random, d: bytes) -> bytes:
    """Not safetensors at all: pickle, torch.save (zip), random bytes, empty."""
    choice = rng.randrange(5)
    if choice == 0:
        return pickle.dumps({"idx": list(range(rng.randrange(100)))}, protocol=rng.choice((2, 3, 4, 5)))
    if choice == 1:
        buf = io.BytesIO()
        torch.save({"x": torch.zeros(rng.randrange(1, 10))}, buf)
        return buf.getvalue()
    if choice == 2:
        return rng.randbytes(rng.randrange(0, 4096))
    if choice == 3:
        return b""
    return b"\x80\x04" + rng.randbytes(rng.randrange(64))


def m_splice(rng: random.Random, d: bytes) -> bytes:
    other = _SEEDS[rng.randrange(len(_SEEDS))]
    i = rng.randrange(len(d))
    return d[:i] + other[i:]


def m_huge(rng: random.Random, d: bytes) -> bytes:
    """Claims of enormous sizes; and a file simply over max_bytes."""
    if rng.random() < 0.5:
        return d + b"\0" * (MAX_BYTES + 1 - len(d))
    header, body = split(d)
    e = header[rng.choice(("idx", "val", "occ", "scale"))]
    e["shape"] = [2**40]
    e["data_offsets"] = [0, 2**40]
    return join(header, body)


# mutations that keep a valid signature: a hostile registered miner signs whatever it wants


def _resign(tensors: dict[str, torch.Tensor], meta: dict[str, str], kp: Keypair = SIGNER) -> bytes:
    return sign_and_pack(tensors, meta, kp)


def s_payload(rng: random.Random, d: bytes) -> bytes:
    """Random idx / occ / val bytes, correctly sized and signed: index checks must catch them."""
    t, meta = _tensors_of(d)
    name = rng.choice(("idx", "occ", "val"))
    x = t[name]
    if x.numel():
        flat = x.view(-1)
        for _ in range(rng.randint(1, max(1, flat.numel() // rng.choice((1, 4, 50))))):
            flat[rng.randrange(flat.numel())] = rng.randrange(256)
    return _resign(t, meta)


def s_scales(rng: random.Random, d: bytes) -> bytes:
    t, meta = _tensors_of(d)
    s = t["scale"].view(-1)
    v = rng.choice((math.nan, math.inf, -math.inf, -1.0, 1e30, 17.0, 0.0, -0.0, 3e-41))
    for _ in range(rng.randint(1, 3)):
        s[rng.randrange(s.numel())] = v
    if rng.random() < 0.3:  # swap low/high of a chunk
        s2 = t["scale"]
        r = rng.randrange(s2.shape[0])
        s2[r, 0], s2[r, 1] = s2[r, 1].item() + 1.0, s2[r, 0].item()
    return _resign(t, meta)


def s_meta(rng: random.Random, d: bytes) -> bytes:
    """Signed header edits: codec params, layout, ints, schema, identity."""
    t, meta = _tensors_of(d)
    k = rng.choice(("netuid", "window", "uid", "fragment", "base_version", "chunk", "topk", "value_bits",
                    "min_tail_k", "layout", "schema", "hotkey", "extra", "drop"))
    if k == "layout":
        items = json.loads(meta["layout"])
        choice = rng.randrange(7)
        if choice == 0:
            items[0][1] = [d + 1 for d in items[0][1]]
        elif choice == 1:
            items.append(items[0])
        elif choice == 2:
            items = items[::-1]
        elif choice == 3:
            items[0][0] = "nope"
        elif choice == 4:
            items = {"a": 1}
        elif choice == 5:
            items[0][1] = [True, 1.5]
        else:
            items = items[:-1]
        meta["layout"] = json.dumps(items)
    elif k == "schema":
        meta["schema"] = rng.choice(("tessera.artifact.v0", "", "x" * 500))
    elif k == "hotkey":
        meta["hotkey"] = OTHER.ss58_address
    elif k == "extra":
        meta["x-extra"] = "1"
    elif k == "drop":
        del meta[rng.choice(list(meta))]
    else:
        meta[k] = rng.choice(("0", "1", "2", "3", "8", "9", "64", "255", "4096", str(2**20), str(2**20 + 1), str(2**63),
                              "9" * 19, "-1", "01", "1e3", " 1", "", "x"))
    return _resign(t, meta)


def s_sizes(rng: random.Random, d: bytes) -> bytes:
    """Signed tensors of the wrong size or dtype (safetensors-valid, layout-invalid)."""
    t, meta = _tensors_of(d)
    name = rng.choice(("idx", "occ", "val", "scale"))
    choice = rng.randrange(4)
    if choice == 0:
        t[name] = (torch.cat([t[name].view(-1), t[name].view(-1)[:1]]) if t[name].numel()
                   else torch.zeros(1, dtype=t[name].dtype))
    elif choice == 1:
        t[name] = t[name].view(-1)[:-1].clone()
    elif choice == 2:
        t[name] = t[name].to(rng.choice((torch.float32, torch.int64, torch.float16, torch.uint8, torch.bfloat16)))
    else:
        t[name] = t[name].reshape(1, -1).clone() if t[name].dim() == 1 else t[name].reshape(-1).clone()
    return _resign(t, meta)


def s_other_signer(rng: random.Random, d: bytes) -> bytes:
    """Signed by another key while claiming the expected hotkey, or honestly by another hotkey."""
    t, meta = _tensors_of(d)
    if rng.random() < 0.5:
        return _resign(t, meta, OTHER)
    meta["hotkey"] = OTHER.ss58_address
    return _resign(t, meta, OTHER)


def valid(rng: random.Random, d: bytes) -> bytes:
    return d


MUTATORS: dict[str, tuple[Callable[[random.Random, bytes], bytes], int]] = {
    "bitflip": (m_bitflip, 12), "byteset": (m_byteset, 8), "truncate": (m_truncate, 8), "extend": (m_extend, 4),
    "length_prefix": (m_length_prefix, 4), "tensor_entry": (m_tensor_entry, 8),
    "meta_unsigned": (m_metadata_unsigned, 6),
    "header_text": (m_header_text, 4), "foreign": (m_foreign, 5), "splice": (m_splice, 3), "huge": (m_huge, 2),
    "signed_payload": (s_payload, 12), "signed_scales": (s_scales, 8), "signed_meta": (s_meta, 10),
    "signed_sizes": (s_sizes, 6), "other_signer": (s_other_signer, 3), "valid": (valid, 2),
}
_SEEDS: list[bytes] = []


# -- the loop -----------------------------------------------------------------------------------------


def check_one(data: bytes, pin_codec: bool) -> str:
    """'ok' or the ArtifactError class name; raises anything else (a crash)."""
    try:
        art = read_artifact(data, **read_kwargs(pin_codec))
    except ArtifactError as e:
        return type(e).__name__
    dense = decode(art.encoded, SHAPES)
    assert set(dense) == set(SHAPES), "decoded tensor names differ from the layout"
    for name, x in dense.items():
        assert tuple(x.shape) == SHAPES[name], f"decoded {name} has shape {tuple(x.shape)}"
        assert bool(torch.isfinite(x).all()), f"decoded {name} is not finite"
    return "ok"


def run(cfg: FuzzConfig, progress: Callable[[int, FuzzReport], None] | None = None) -> FuzzReport:
    torch.set_num_threads(1)
    rng = random.Random(cfg.seed)
    if not _SEEDS:
        _SEEDS.extend(seeds())
    names = list(MUTATORS)
    weights = [MUTATORS[n][1] for n in names]
    report = FuzzReport()
    old = signal.signal(signal.SIGALRM, _on_alarm)
    t_start = time.perf_counter()
    try:
        for i in range(cfg.n):
            mname = rng.choices(names, weights)[0]
            base = _SEEDS[rng.randrange(len(_SEEDS))]
            data = MUTATORS[mname][0](rng, base)
            if rng.random() < 0.1:  # stack a second mutation
                data = m_bitflip(rng, data) if data else data
            pin = rng.random() < 0.7
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, cfg.per_input_s)
            try:
                outcome = check_one(data, pin)
            except _Hang:
                outcome = "HANG"
                report.hangs.append(mname)
                _save(cfg, i, "hang", data)
            except Exception as e:  # noqa: BLE001 - the point is to find these
                outcome = "CRASH:" + type(e).__name__
                report.crashes.append((mname, repr(e)[:300]))
                _save(cfg, i, "crash", data)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            report.max_input_s = max(report.max_input_s, time.perf_counter() - t0)
            report.outcomes[outcome] += 1
            report.by_mutator[mname][outcome] += 1
            report.n += 1
            if progress and (i + 1) % 10_000 == 0:
                report.seconds = time.perf_counter() - t_start
                progress(i + 1, report)
    finally:
        signal.signal(signal.SIGALRM, old)
    report.seconds = time.perf_counter() - t_start
    return report


def _save(cfg: FuzzConfig, i: int, kind: str, data: bytes) -> None:
    if cfg.crash_dir is not None:
        cfg.crash_dir.mkdir(parents=True, exist_ok=True)
        (cfg.crash_dir / f"{kind}-{cfg.seed}-{i}.bin").write_bytes(data)


def print_report(r: FuzzReport, out=sys.stdout) -> None:
    print(f"\n{r.n} inputs in {r.seconds:.1f} s = {r.rate:.0f} inputs/s; slowest input {r.max_input_s * 1000:.1f} ms",
          file=out)
    print(f"crashes: {len(r.crashes)}   hangs: {len(r.hangs)}", file=out)
    print("\noutcome                  count", file=out)
    for k, v in r.outcomes.most_common():
        print(f"  {k:<22} {v:>7}", file=out)
    print("\nmutator          inputs  ok   top refusals", file=out)
    for m in MUTATORS:
        c = r.by_mutator.get(m, collections.Counter())
        top = ", ".join(f"{k} {v}" for k, v in c.most_common() if k != "ok")
        print(f"  {m:<15} {sum(c.values()):>6} {c.get('ok', 0):>4}   {top[:90]}", file=out)
    for m, e in r.crashes[:10]:
        print(f"CRASH via {m}: {e}", file=out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per_input_s", type=float, default=2.0)
    p.add_argument("--crash_dir", type=Path, default=Path("bench/fuzz_crashes"))
    a = p.parse_args(argv)
    cfg = FuzzConfig(n=a.n, seed=a.seed, per_input_s=a.per_input_s, crash_dir=a.crash_dir)
    r = run(cfg, progress=lambda i, rep: print(f"  {i} inputs, {rep.rate:.0f}/s, crashes {len(rep.crashes)}",
                                               flush=True))
    print_report(r)
    return 1 if r.crashes or r.hangs else 0


if __name__ == "__main__":
    sys.exit(main())
