#!/usr/bin/env bash
# Update the checkout in place (git pull --ff-only + pip install -e .) and, when it moved, run a
# restart command: for cron, a systemd timer or pm2's cron_restart. Never touches a diverged checkout.
#
#   scripts/autoupdate.sh                                  # update only (exit 0 either way)
#   scripts/autoupdate.sh pm2 restart tessera-miner        # update, restart the pm2 app if it moved
#   scripts/autoupdate.sh systemctl restart tessera-miner  # the same under systemd
#
# The neurons can do this themselves: --version.autoupdate (subnet/version.py) updates when the
# subnet's WeightsVersionKey is above this code's spec version, then exits 75 so pm2/systemd restart it.
# TESSERA_REPO (default: this checkout) and PYTHON (default: its .venv) override the paths.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="${TESSERA_REPO:-$root}"
python="${PYTHON:-$repo/.venv/bin/python}"
set +e
"$python" -m subnet.cli version update --repo "$repo"
rc=$?
set -e
case "$rc" in
  0) exit 0 ;;                      # already up to date
  75) [ "$#" -gt 0 ] && exec "$@"   # updated: restart what runs the old code
      exit 0 ;;
  *) echo "[autoupdate] update failed (exit $rc); the checkout is unchanged or needs a look" >&2
     exit "$rc" ;;
esac
