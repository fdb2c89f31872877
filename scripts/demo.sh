#!/usr/bin/env bash
# The main job on a fresh machine: installs what it needs, then starts the
# devnet, bootstraps a subnet, runs a validator and miners with a live
# scoreboard, and writes a report folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
exec .venv/bin/tessera demo "$@"
