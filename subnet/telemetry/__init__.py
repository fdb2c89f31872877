"""Tessera telemetry: what the neurons report and how a run is shown.

- `events`: append-only JSONL event logs (`EventLog`, `open_event_log`, `read_events`, `EventTail`).
- `state`: folds events into the run's standing (`RunState`, `fold`); shared by the views below.
- `scoreboard`: live terminal scoreboard (rich Live on a TTY, plain text otherwise).
- `plots`, `report`: end-of-run report folder (loss_curve.png, leaderboard.md/.csv, summary.json, chain.json).
- `chainsnap`: on-chain metagraph + weights snapshot through the SDK client.
- `metrics`, `wandb_sink`: Prometheus `/metrics` and optional W&B, both EventLog sinks (same records as the
  files); `observe` starts them for a neuron (`--metrics.port`, `--wandb.project`; `config`).
- `status`, `status_cli`: `tessera status` (state dir + event log + optional chain); `outcomes` names peer outcomes.
- `dashboard`, `dashboard_http`, `dashboard_cli`: the read-only web dashboard (`--dashboard.port` on the
  validator, `tessera dashboard`), folded incrementally from the event log; page assets in `dashboard_static/`.

Events the neurons emit (fields beyond ts/component/uid/hotkey/event):
  validator `window_scored` {window, version, heldout_loss, scores: {uid: {score, norm_score,
      heldout_improvement, proof_of_work, reason, fragment}}, ratings: {uid: {mu, sigma, ordinal}},
      leader, round, weights: {uid: weight}, seconds}
  validator `weights_set` {block, weights, success, error, outcome, detail, pending} (outcome: set,
      committed_pending, refused, impossible, ...; pending: the timelocked commit awaiting its reveal)
  validator `weights_revealed` {same fields; outcome revealed | reveal_failed}
  validator `manifest_published` {window, new_version, model_hash, heldout_loss_after,
      selected: [{uid, fragment, coef}]}
  miner `uploaded` {window, fragment, bytes, base_version, loss_first, loss_last, behaviour}
  miner/validator `synced` {version, model_hash}; optional `started` {behaviour}
  either, read by the metrics when present: `chain_error` {kind, error}, `store_error` {store, kind, error};
      on `uploaded`: tokens, train_seconds, encode_seconds, upload_seconds, tokens_per_s; on any event:
      gpu {memory_allocated_bytes, memory_reserved_bytes, max_memory_allocated_bytes, memory_total_bytes,
      utilization} (or a list of those, each with `device`)
"""
