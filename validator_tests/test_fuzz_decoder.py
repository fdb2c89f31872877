"""A few seconds of the read_artifact mutation fuzzer (bench/fuzz_decoder.py runs 100,000+).

Properties: no input crashes the decoder (anything but an ArtifactError),
none takes over the per-input bound, accepted inputs decode to finite tensors
of the expected shapes; and the generator really reaches the deep checks
(index, scale, shape and header refusals behind a valid signature), so a
decoder that refused everything at the first byte would not pass unnoticed.
"""

from __future__ import annotations

import pytest
import torch
from harness.bench import load_bench

from subnet.codec import ArtifactError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fuzz():
    return load_bench("fuzz_decoder")


def test_3000_mutated_artifacts_refused_with_typed_errors(fuzz, tmp_path) -> None:
    report = fuzz.run(fuzz.FuzzConfig(n=3000, seed=1234, per_input_s=2.0, crash_dir=tmp_path))
    fuzz.print_report(report)
    assert report.n == 3000
    assert not report.crashes, report.crashes[:5]
    assert not report.hangs
    assert report.max_input_s < 2.0
    # Every refusal the validator scores is reached, most of them behind a valid signature.
    for kind in ("ok", "Malformed", "Truncated", "TooLarge", "BadSignature", "BadPayloadHash", "WrongHotkey",
                 "HeaderMismatch", "BadShape", "BadIndex", "NonFinite", "ValueOutOfRange"):
        assert report.outcomes[kind] > 0, f"the fuzzer never produced {kind}: {dict(report.outcomes)}"
    assert report.by_mutator["signed_payload"]["BadIndex"] > 0
    assert report.by_mutator["signed_scales"]["NonFinite"] > 0
    assert report.by_mutator["valid"]["ok"] > 0


def test_every_outcome_class_is_an_artifact_error(fuzz) -> None:
    import subnet.codec as codec

    report = fuzz.run(fuzz.FuzzConfig(n=300, seed=7))
    for name in report.outcomes:
        if name != "ok":
            assert issubclass(getattr(codec, name), ArtifactError), name


def test_a_crash_is_reported_not_swallowed(fuzz, monkeypatch) -> None:
    """The harness itself can fail: a decoder bug (a non-typed exception) shows up as a crash."""
    def broken(data, **kw):
        if len(data) % 3 == 0:
            raise IndexError("decoder bug")
        raise codec_errors.Malformed("x")

    from subnet.codec import errors as codec_errors

    monkeypatch.setattr(fuzz, "read_artifact", broken)
    report = fuzz.run(fuzz.FuzzConfig(n=60, seed=3))
    assert report.crashes and all("IndexError" in e for _, e in report.crashes)
