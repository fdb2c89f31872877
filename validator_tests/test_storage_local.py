"""LocalDirStore and open_store: round trips, key safety, atomic writes, size limits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from subnet.errors import ConfigError
from subnet.storage import BadKey, LocalDirStore, open_store


def test_round_trip_list_delete(tmp_path) -> None:
    s = LocalDirStore(tmp_path / "store")
    s.put("1/5/hk.0.safetensors", b"abc")
    s.put("1/5/hk.1.safetensors", b"defg")
    s.put("1/6/hk.0.safetensors", b"x")
    assert s.get("1/5/hk.0.safetensors", max_bytes=10) == b"abc"
    assert s.exists("1/5/hk.1.safetensors") and not s.exists("1/5/nope")
    assert s.list("1/5/") == ["1/5/hk.0.safetensors", "1/5/hk.1.safetensors"]
    assert len(s.list()) == 3
    s.put("1/5/hk.0.safetensors", b"replaced")
    assert s.get("1/5/hk.0.safetensors", max_bytes=10) == b"replaced"
    s.delete("1/5/hk.0.safetensors")
    s.delete("1/5/hk.0.safetensors")  # idempotent
    assert s.get("1/5/hk.0.safetensors", max_bytes=10) is None
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "store").rglob("*"))


def test_missing_and_oversized_are_absent(tmp_path) -> None:
    s = LocalDirStore(tmp_path)
    assert s.get("a/b", max_bytes=10) is None
    s.put("big", b"x" * 11)
    assert s.get("big", max_bytes=10) is None
    assert s.get("big", max_bytes=11) == b"x" * 11


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a//b", "", ".hidden", "a/./b", "a\\b", "a b",
                                 "a/" + "x" * 600, "~/x", "a/"])
def test_keys_cannot_escape(tmp_path, key: str) -> None:
    s = LocalDirStore(tmp_path / "root")
    with pytest.raises(BadKey):
        s.put(key, b"x")
    with pytest.raises(BadKey):
        s.get(key, max_bytes=1)
    assert not (tmp_path / "x").exists()


def test_symlink_out_of_root_refused(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    s = LocalDirStore(tmp_path / "root")
    os.symlink(outside, tmp_path / "root" / "link")
    with pytest.raises(BadKey):
        s.put("link/f", b"x")
    assert not (outside / "f").exists()


def test_kill_during_writes_leaves_old_or_new(tmp_path) -> None:
    """A writer killed with SIGKILL mid-loop never leaves a torn object."""
    root = tmp_path / "root"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from subnet.storage import LocalDirStore
        s = LocalDirStore({str(root)!r})
        i = 0
        while True:
            s.put("k", bytes([i % 256]) * 200_000)
            i += 1
            if i == 3:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    proc.kill()
    proc.wait()
    data = LocalDirStore(root).get("k", max_bytes=1 << 20)
    assert data is not None and len(data) == 200_000 and len(set(data)) == 1


def test_open_store_locations(tmp_path) -> None:
    a = open_store(f"file://{tmp_path}/a")
    b = open_store(str(tmp_path / "b"))
    assert isinstance(a, LocalDirStore) and isinstance(b, LocalDirStore)
    assert a.location == (tmp_path / "a").resolve().as_uri()
    assert open_store(a.location).root == a.root
    for bad in ("", "ftp://host/x", "file://remotehost/x", "s3://bucket/p?secret_access_key=abc",
                "s3://key:secret@bucket/p", "s3://bucket/p?bogus=1", "s3:///p", "s3://Bad_Bucket/p",
                "s3://bucket/../x"):
        with pytest.raises(ConfigError):
            open_store(bad)


def test_modified_time_or_absent(tmp_path) -> None:
    store = LocalDirStore(tmp_path)
    assert store.modified("1/0/hk.0.safetensors") is None
    before = time.time()
    store.put("1/0/hk.0.safetensors", b"x")
    stamp = store.modified("1/0/hk.0.safetensors")
    assert stamp is not None and before - 2 <= stamp <= time.time() + 2
