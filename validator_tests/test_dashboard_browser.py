"""The dashboard in a real browser: Selenium drives headless Chromium over a recorded run served by the real server.

Chromium and its driver come from Debian's packages (`chromium`, `chromium-driver`; `scripts/bootstrap.sh`
installs both when missing and run as root, and this test asks it once more); Selenium is in the `test` extra.
CI runs bootstrap as root, so a missing browser, driver or Selenium FAILS this test with the command that installs
it, never skips it. Selenium is pointed at /usr/bin/chromedriver explicitly: Selenium Manager never downloads one.

The page must render the leaderboard rows in the order the event log's latest ratings give (folded here from
the JSONL files, a torn last line included), then a screenshot of what a person sees is checked: a PNG of the
viewport asked for, not blank, with the charts' colours. Set TESSERA_DASHBOARD_PNG=path to keep the screenshot
(docs/dashboard.png is made that way). The Chromium CLI (`--dump-dom`/`--screenshot`) test this replaces added
nothing Selenium does not check.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness.dashboard_run import write_run
from PIL import Image, ImageStat

from subnet.telemetry.dashboard import DashboardFeed
from subnet.telemetry.dashboard_http import DashboardServer
from subnet.telemetry.events import read_events

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
VIEWPORT = (1280, 1400)
# The script's colours (dashboard.js): loss before / weight bars, loss after / `scored` cells, `copy` cells.
BLUE, GREEN, PURPLE = (0x1F, 0x77, 0xB4), (0x2C, 0xA0, 0x2C), (0x94, 0x67, 0xBD)
INSTALL = ("install them as root: `bash scripts/bootstrap.sh chromium` (apt-get install -y chromium "
           "chromium-driver) and `.venv/bin/pip install -e '.[test]'` (selenium)")


def _which(*names: str) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


def browser_and_driver() -> tuple[str, str]:
    """Paths of chromium and chromedriver; asks bootstrap once, then fails (not skips) with how to install."""
    found = _which("chromium", "chromium-browser"), _which("chromedriver")
    if None in found:
        subprocess.run(["bash", str(ROOT / "scripts" / "bootstrap.sh"), "chromium"], check=False, timeout=900)
        found = _which("chromium", "chromium-browser"), _which("chromedriver")
    if None in found:
        missing = [n for n, p in zip(("chromium", "chromedriver"), found) if p is None]
        pytest.fail(f"the dashboard browser test needs {' and '.join(missing)}: {INSTALL}", pytrace=False)
    return found[0], found[1]  # type: ignore[return-value]


def start_browser(binary: str, driver_path: str, profile: Path) -> Any:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.fail(f"the dashboard browser test needs selenium ({exc}): {INSTALL}", pytrace=False)
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


def expected_order(events_dir: Path) -> list[int]:
    """Uids by descending rating ordinal, folded from the event log's `window_scored` records (newest wins)."""
    ordinals: dict[int, float] = {}
    for ev in read_events(events_dir):
        if ev.get("event") == "window_scored":
            for uid, rating in (ev.get("ratings") or {}).items():
                ordinals[int(uid)] = float(rating["ordinal"])
    return sorted(ordinals, key=lambda u: -ordinals[u])


def short(hotkey: str) -> str:
    return hotkey[:6] + "\u2026" + hotkey[-5:]  # dashboard.js shortKey


def test_selenium_renders_the_leaderboard_in_event_log_order_and_a_non_blank_screenshot(tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    binary, driver_path = browser_and_driver()
    run = write_run(tmp_path / "events")
    with (run.events_dir / "validator-0.jsonl").open("ab") as fh:  # what a crash mid-write leaves
        fh.write(b'{"event": "window_scored", "window": 99, "scores": {"1": {"sco')
    ranked = expected_order(run.events_dir)
    assert ranked and ranked == sorted(run.ordinals, key=lambda u: -run.ordinals[u])
    server = DashboardServer(DashboardFeed(run.events_dir), "127.0.0.1", 0)
    driver = start_browser(binary, driver_path, tmp_path / "profile")
    try:
        driver.get(server.url)
        rows_css = "#leaderboard tbody tr"
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.body.dataset.rendered") == "1"
            and len(d.find_elements(By.CSS_SELECTOR, rows_css)) == len(ranked))
        assert driver.execute_script("return document.body.dataset.window") == str(run.last_window)
        cells = [[td.text.strip() for td in tr.find_elements(By.TAG_NAME, "td")]
                 for tr in driver.find_elements(By.CSS_SELECTOR, rows_css)]
        assert [int(c[1]) for c in cells] == ranked
        assert [c[2] for c in cells] == [short(run.hotkeys[u]) for u in ranked]
        text = driver.find_element(By.TAG_NAME, "body").text
        assert f"uid {run.leader}" in text and run.model_hash[:12] in text
        assert len(driver.find_elements(By.CSS_SELECTOR, "rect")) > 6 * len(run.fragments)  # timeline cells
        width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
        server.close()
    img = Image.open(io.BytesIO(png))
    img.load()  # decodes the whole PNG
    assert img.format == "PNG" and img.size == (width, height) and width >= 1000 and height >= 1000, img.size
    rgb = img.convert("RGB")
    stdev = ImageStat.Stat(rgb).stddev
    assert min(stdev) > 20, stdev  # a blank or one-colour page is ~0
    counts = {colour: n for n, colour in rgb.getcolors(maxcolors=1 << 21)}
    assert len(counts) > 200  # text, charts, tables: many colours
    for name, colour, least in (("loss line / weight bars", BLUE, 2000), ("loss after / scored cells", GREEN, 2000),
                                ("copy cells", PURPLE, 500)):
        assert counts.get(colour, 0) >= least, (name, counts.get(colour, 0))
    if out := os.environ.get("TESSERA_DASHBOARD_PNG"):
        Path(out).write_bytes(png)
