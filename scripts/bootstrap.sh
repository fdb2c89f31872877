#!/usr/bin/env bash
# Create (or refresh) the project virtualenv and install Tessera with its test
# extras. Idempotent: reinstalls only when pyproject.toml changed.
#
#   scripts/bootstrap.sh            venv + tessera + corpus, and headless Chromium for the dashboard test
#   scripts/bootstrap.sh chromium   only headless Chromium (what validator_tests/test_dashboard_browser.py runs)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Headless Chromium and chromium-driver from Debian's packages, for the dashboard's browser test only (the neurons
# never need them). Installed only when missing and we are root on a Debian-like system with apt-get; otherwise a
# notice, and that one test fails saying how to install. Fast when already installed (two `command -v`).
ensure_chromium() {
  # The dashboard browser test (validator_tests/test_dashboard_browser.py) drives Debian's chromium through
  # Selenium and chromium-driver; it fails, not skips, without them.
  pkgs=""
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || pkgs=" chromium"
  command -v chromedriver >/dev/null 2>&1 || pkgs="$pkgs chromium-driver"
  if [ -z "$pkgs" ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "[bootstrap] missing$pkgs and cannot install here (not root or no apt-get): the dashboard browser test" \
      "will fail; as root: apt-get install -y chromium chromium-driver" >&2
    return 0
  fi
  echo "[bootstrap] installing$pkgs (Debian packages) for the dashboard browser test" >&2
  # shellcheck disable=SC2086 # word splitting of the package list is wanted
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >&2; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >&2 \
      || echo "[bootstrap] installing$pkgs failed: the dashboard browser test will fail" >&2
  fi
}

if [ "${1:-}" = chromium ]; then
  ensure_chromium
  exit 0
fi
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating virtualenv .venv" >&2
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >&2
fi
stamp=".venv/.tessera-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[bootstrap] installing tessera and dependencies (torch==2.13.0 CPU wheel)" >&2
  # torch first, pinned, so no other requirement can drag in a CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0 >&2
  .venv/bin/python -m pip install -q -e ".[test]" >&2
  echo "$want" > "$stamp"
fi
# Fetch and verify the embedded corpus and train the tokenizer (cached).
.venv/bin/tessera data prepare >&2
ensure_chromium
