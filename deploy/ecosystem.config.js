// pm2 process file for a Tessera validator and miner on this host (run from anywhere):
//   bash scripts/bootstrap.sh                      # the checkout's .venv
//   cp deploy/validator.env.example deploy/validator.env && cp deploy/miner.env.example deploy/miner.env  # edit
//   pm2 start deploy/ecosystem.config.js && pm2 save
// Settings: the TESSERA_* variables of deploy/<role>.env (every neuron flag is one), loaded below, then `env`.
// Exit status 0 (clean stop), 3 (hotkey deregistered) and 4 (refused: this version is older than the subnet's
// WeightsVersionKey) are not restarted; anything else is, with backoff (75 = auto-updated, restart me).
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");

// KEY=VALUE lines (comments and blanks skipped), the same file docker compose and systemd read.
function envFile(name) {
  const file = path.join(__dirname, name);
  if (!fs.existsSync(file)) return {};
  const out = {};
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = line.match(/^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/);
    if (m) out[m[1]] = m[2].trim();
  }
  return out;
}

function neuron(role, extraEnv) {
  return {
    name: `tessera-${role}`,
    cwd: root,
    script: `neurons/${role}.py`,
    interpreter: path.join(root, ".venv", "bin", "python"),
    env: { ...envFile(`${role}.env`), ...extraEnv },
    autorestart: true,
    stop_exit_codes: [0, 3, 4],
    exp_backoff_restart_delay: 2000,
    max_restarts: 50,
    min_uptime: "60s",
    kill_timeout: 60000,
    merge_logs: true,
    time: true,
  };
}

module.exports = {
  apps: [
    neuron("validator", {
      TESSERA_STATE_DIR: path.join(process.env.HOME || root, ".tessera", "validator"),
      TESSERA_METRICS_PORT: "9500",
      TESSERA_DASHBOARD_PORT: "9510",
    }),
    neuron("miner", {
      TESSERA_STATE_DIR: path.join(process.env.HOME || root, ".tessera", "miner"),
      TESSERA_METRICS_PORT: "9501",
    }),
  ],
};
