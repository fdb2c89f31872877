#!/usr/bin/env bash
# Create (or refresh) the project virtualenv and install Tessera with its test
# extras. Idempotent: reinstalls only when pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
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
