#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, lints with
# ruff ([tool.ruff] in pyproject.toml), then runs pytest (unit, integration,
# adversarial, and the slow end-to-end tests).
#
# TESSERA_LINT=strict (the default) fails the run on a ruff finding; warn prints
# the findings and goes on; off skips the lint.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
lint="${TESSERA_LINT:-strict}"
if [ "$lint" != "off" ]; then
  echo "[test] ruff check ." >&2
  if ! .venv/bin/ruff check .; then
    if [ "$lint" = "strict" ]; then
      echo "[test] ruff found problems (TESSERA_LINT=strict)" >&2
      exit 1
    fi
    echo "[test] ruff found problems; not failing (TESSERA_LINT=warn; strict fails)" >&2
  fi
fi
exec .venv/bin/python -m pytest validator_tests "$@"
