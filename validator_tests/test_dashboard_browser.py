"""The dashboard in a real browser: headless Chromium renders a recorded run's page, and its screenshot is checked.

Chromium comes from Debian's packages (`scripts/bootstrap.sh` installs it when missing and we are root; this
test asks bootstrap once more before giving up). It skips only when no chromium can be had. Two runs of the
browser on the same server: `--dump-dom` for what the script rendered (the leaderboard rows in rank order, the
window), `--screenshot` for what a person sees (a PNG of the asked size, not blank, with the charts' colours).
Set TESSERA_DASHBOARD_PNG=path to keep the screenshot (docs/dashboard.png is made that way).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from harness.dashboard_run import write_run
from PIL import Image, ImageStat

from subnet.telemetry.dashboard import DashboardFeed
from subnet.telemetry.dashboard_http import DashboardServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SIZE = (1280, 1400)
# The script's colours (dashboard.js): loss before / weight bars, loss after / `scored` cells, `copy` cells.
BLUE, GREEN, PURPLE = (0x1F, 0x77, 0xB4), (0x2C, 0xA0, 0x2C), (0x94, 0x67, 0xBD)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    subprocess.run(["bash", str(ROOT / "scripts" / "bootstrap.sh"), "chromium"], check=False, timeout=900)
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("headless chromium is not installed and cannot be installed here (scripts/bootstrap.sh chromium)")


def browse(binary: str, url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
           f"--window-size={SIZE[0]},{SIZE[1]}", "--virtual-time-budget=8000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def short(hotkey: str) -> str:
    return hotkey[:6] + "\u2026" + hotkey[-5:]  # dashboard.js shortKey


def test_chromium_renders_the_leaderboard_and_a_non_blank_screenshot(tmp_path: Path):
    binary = chromium()
    run = write_run(tmp_path / "events")
    with (run.events_dir / "validator-0.jsonl").open("ab") as fh:  # what a crash mid-write leaves
        fh.write(b'{"event": "window_scored", "window": 99, "scores": {"1": {"sco')
    server = DashboardServer(DashboardFeed(run.events_dir), "127.0.0.1", 0)
    try:
        dom = browse(binary, server.url, tmp_path / "profile-dom", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        page = dom.stdout
        assert 'data-rendered="1"' in page and f'data-window="{run.last_window}"' in page, page[:2000]
        body = re.search(r'<table id="leaderboard">.*?<tbody>(.*?)</tbody>', page, re.S)
        assert body, page[:3000]
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
        cells = [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
                 for r in rows]
        ranked = sorted(run.ordinals, key=lambda u: -run.ordinals[u])
        assert [int(c[1]) for c in cells] == ranked
        assert [c[2] for c in cells] == [short(run.hotkeys[u]) for u in ranked]
        assert f"uid {run.leader}" in page and run.model_hash[:12] in page
        assert page.count("<rect") > 6 * len(run.fragments)  # the timeline drew a cell per uid and window

        shot = tmp_path / "dashboard.png"
        res = browse(binary, server.url, tmp_path / "profile-shot", f"--screenshot={shot}")
        assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    finally:
        server.close()
    img = Image.open(shot)
    img.load()  # decodes the whole PNG
    assert img.format == "PNG" and img.size == SIZE
    rgb = img.convert("RGB")
    stdev = ImageStat.Stat(rgb).stddev
    assert min(stdev) > 20, stdev  # a blank or one-colour page is ~0
    counts = {colour: n for n, colour in rgb.getcolors(maxcolors=1 << 20)}
    assert len(counts) > 200  # text, charts, tables: many colours
    for name, colour, least in (("loss line / weight bars", BLUE, 2000), ("loss after / scored cells", GREEN, 2000),
                                ("copy cells", PURPLE, 500)):
        assert counts.get(colour, 0) >= least, (name, counts.get(colour, 0))
    if out := os.environ.get("TESSERA_DASHBOARD_PNG"):
        shutil.copyfile(shot, out)
