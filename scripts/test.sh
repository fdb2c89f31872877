#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs
# pytest (unit, integration, adversarial, and the slow end-to-end tests).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest validator_tests "$@"
