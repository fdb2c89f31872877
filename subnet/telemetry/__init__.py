"""Tessera telemetry: what the neurons report and how a run is shown.

- `events`: append-only JSONL event logs (`EventLog`, `open_event_log`, `read_events`, `EventTail`).
- `state`: folds events into the run's standing (`RunState`, `fold`); shared by the views below.
- `scoreboard`: live terminal scoreboard (rich Live on a TTY, plain text otherwise).
- `plots`, `report`: end-of-run report folder (loss_curve.png, leaderboard.md/.csv, summary.json, chain.json).
- `chainsnap`: on-chain metagraph + weights snapshot through the SDK client.

Events the neurons emit (fields beyond ts/component/uid/hotkey/event):
  validator `window_scored` {window, version, heldout_loss, scores: {uid: {score, norm_score,
      heldout_improvement, proof_of_work, reason, fragment}}, ratings: {uid: {mu, sigma, ordinal}},
      leader, weights: {uid: weight}}
  validator `weights_set` {block, weights, success, error}
  validator `manifest_published` {window, new_version, model_hash, heldout_loss_after,
      selected: [{uid, fragment, coef}]}
  miner `uploaded` {window, fragment, bytes, base_version, loss_first, loss_last, behaviour}
  miner/validator `synced` {version, model_hash}; optional `started` {behaviour}
"""
