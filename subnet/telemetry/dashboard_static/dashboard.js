// Tessera dashboard: fetch /api/state, draw it. No libraries, no network beyond this origin.
// Every value from the event log goes through textContent (never innerHTML): reasons and
// hotkeys can carry text a peer chose.
"use strict";

const OUTCOME_COLOURS = {
  scored: "#2ca02c", no_improvement: "#bcbd22", absent: "#c7c7c7", late: "#ff7f0e", rejected: "#d62728",
  stale: "#8c564b", copy: "#9467bd", copy_tie: "#c5b0d5", shared_store: "#e377c2", norm_outlier: "#17becf",
  below_floor: "#dbdb8d", not_scored: "#7f7f7f", no_store: "#aec7e8", no_proof_of_work: "#ff9896",
  store_failing: "#f7b6d2", other: "#525252",
};
const LOSS_BEFORE = "#1f77b4";
const LOSS_AFTER = "#2ca02c";
const WEIGHT_BAR = "#1f77b4";
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = String(text);
  return e;
}
function fmt(x, digits) {
  if (x == null || Number.isNaN(x)) return "-";
  if (typeof x !== "number") return String(x);
  if (digits == null) return String(x);
  return Math.abs(x) !== 0 && Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toFixed(digits);
}
function shortKey(k) { return k ? (k.length > 14 ? k.slice(0, 6) + "\u2026" + k.slice(-5) : k) : "-"; }
function ago(ts) {
  if (ts == null) return "-";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s >= 86400) return (s / 86400).toFixed(1) + "d ago";
  if (s >= 3600) return (s / 3600).toFixed(1) + "h ago";
  if (s >= 60) return (s / 60).toFixed(1) + "m ago";
  return s.toFixed(0) + "s ago";
}

function card(key, value, sub, cls) {
  return el("div", { class: "card " + (cls || ""), title: String(value == null ? "" : value) },
    el("div", { class: "k" }, key), el("div", { class: "v" }, value == null ? "-" : value), el("div", { class: "s" }, sub || ""));
}

function renderCards(st) {
  const s = st.summary, h = st.health;
  const chainErr = Object.values(h.chain_errors).reduce((a, b) => a + b, 0);
  const storeErr = Object.values(h.store_errors).reduce((a, b) => a + b, 0);
  const lastCall = st.weights.calls.length ? st.weights.calls[st.weights.calls.length - 1] : null;
  const lead = s.lead ? "uid " + fmt(s.lead.uid) : "-";
  const cards = [
    card("window scored", s.window, s.windows_scored + " windows, round " + fmt(s.round)),
    card("model version", s.version, s.manifests + " manifests"),
    card("model hash", s.model_hash ? s.model_hash.slice(0, 12) : "-", s.model_hash ? s.model_hash.slice(12, 40) : ""),
    card("held-out loss", fmt(s.heldout_loss, 4), "before window " + fmt(s.window) + "'s update"),
    card("competition leader", s.leader == null ? "-" : "uid " + s.leader, s.miners + " uids seen"),
    card("lead validator", lead, s.lead ? shortKey(s.lead.hotkey) + ", " + s.lead.source : "no manifest in this log"),
    card("weights", lastCall ? lastCall.outcome : "-", s.weights_ok + " ok, " + s.weights_failed + " failed" +
      (st.weights.pending ? ", reveal pending" : ""), lastCall && !lastCall.success ? "bad" : (lastCall ? "good" : "")),
    card("chain", chainErr ? chainErr + (chainErr === 1 ? " error" : " errors") : "ok", h.last_chain_error ? h.last_chain_error.kind + " " + ago(h.last_chain_error.ts) : "no chain errors logged", chainErr ? "bad" : "good"),
    card("stores", storeErr ? storeErr + (storeErr === 1 ? " error" : " errors") : "ok", h.last_store_error ? h.last_store_error.kind + " " + ago(h.last_store_error.ts) : h.late_uploads + " late uploads", storeErr ? "bad" : "good"),
  ];
  document.getElementById("cards").replaceChildren(...cards);
}

function axes(g, x0, y0, w, h, xs, ys, xlab) {
  g.append(svg("line", { x1: x0, y1: y0 + h, x2: x0 + w, y2: y0 + h, stroke: "#8b949e" }));
  g.append(svg("line", { x1: x0, y1: y0, x2: x0, y2: y0 + h, stroke: "#8b949e" }));
  for (const [v, y] of ys) {
    g.append(svg("line", { x1: x0, y1: y, x2: x0 + w, y2: y, stroke: "#eaeef2" }));
    g.append(svg("text", { x: x0 - 6, y: y + 4, "text-anchor": "end" }, v));
  }
  for (const [v, x] of xs) g.append(svg("text", { x: x, y: y0 + h + 14, "text-anchor": "middle" }, v));
  g.append(svg("text", { x: x0 + w / 2, y: y0 + h + 28, "text-anchor": "middle" }, xlab));
}

function renderLoss(st) {
  const box = document.getElementById("loss");
  const before = st.loss.before, after = st.loss.after;
  if (!before.length && !after.length) { box.replaceChildren(el("div", { class: "empty" }, "no window scored yet")); return; }
  const W = 720, H = 260, L = 56, R = 12, T = 10, B = 36, w = W - L - R, h = H - T - B;
  const all = before.concat(after);
  let xmin = Math.min(...all.map(p => p[0])), xmax = Math.max(...all.map(p => p[0]));
  let ymin = Math.min(...all.map(p => p[1])), ymax = Math.max(...all.map(p => p[1]));
  if (xmax === xmin) { xmin -= 1; xmax += 1; }
  if (ymax - ymin < 1e-9) { ymin -= 0.5; ymax += 0.5; }
  const pad = (ymax - ymin) * 0.08; ymin -= pad; ymax += pad;
  const X = v => L + (v - xmin) / (xmax - xmin) * w, Y = v => T + (1 - (v - ymin) / (ymax - ymin)) * h;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "held-out loss per window" });
  const ticks = n => Array.from({ length: n + 1 }, (_, i) => i / n);
  axes(root, L, T, w, h,
    ticks(Math.min(6, Math.round(xmax - xmin))).map(f => { const v = Math.round(xmin + f * (xmax - xmin)); return [v, X(v)]; }),
    ticks(4).map(f => { const v = ymin + f * (ymax - ymin); return [v.toFixed(3), Y(v)]; }), "window");
  for (const [series, colour, dash] of [[before, LOSS_BEFORE, ""], [after, LOSS_AFTER, "6 4"]]) {
    if (!series.length) continue;
    const pts = series.slice().sort((a, b) => a[0] - b[0]);
    root.append(svg("polyline", { points: pts.map(p => X(p[0]) + "," + Y(p[1])).join(" "), fill: "none",
      stroke: colour, "stroke-width": 3, "stroke-dasharray": dash }));
    for (const p of pts.slice(-200)) {
      const c = svg("circle", { cx: X(p[0]), cy: Y(p[1]), r: 4, fill: colour });
      c.append(svg("title", {}, `window ${p[0]}: ${p[1].toFixed(4)}`));
      root.append(c);
    }
  }
  const lg = svg("g", { transform: `translate(${L + w - 250},${T + 6})` });
  lg.append(svg("rect", { x: 0, y: 0, width: 12, height: 4, fill: LOSS_BEFORE }), svg("text", { x: 18, y: 6 }, "before the window's update"));
  lg.append(svg("rect", { x: 0, y: 14, width: 12, height: 4, fill: LOSS_AFTER }), svg("text", { x: 18, y: 20 }, "after the manifest (lead)"));
  root.append(lg);
  box.replaceChildren(root);
}

function renderWeights(st) {
  const box = document.getElementById("weights");
  const cur = Object.entries(st.weights.current).map(([u, v]) => [Number(u), v]).sort((a, b) => b[1] - a[1]).slice(0, 16);
  document.getElementById("weights-note").textContent = "(what the competition gives; top " + cur.length + ")";
  if (!cur.length) { box.replaceChildren(el("div", { class: "empty" }, "no weights yet")); return; }
  const W = 420, rowH = 18, L = 60, R = 50, H = cur.length * rowH + 8, w = W - L - R;
  const max = Math.max(...cur.map(c => c[1]), 1e-9);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "weights per uid" });
  cur.forEach(([uid, v], i) => {
    const y = 4 + i * rowH;
    root.append(svg("text", { x: L - 6, y: y + 12, "text-anchor": "end" }, "uid " + uid));
    root.append(svg("rect", { x: L, y: y + 2, width: Math.max(1, v / max * w), height: rowH - 6, fill: WEIGHT_BAR }));
    root.append(svg("text", { x: L + v / max * w + 4, y: y + 12 }, v.toFixed(3)));
  });
  box.replaceChildren(root);
}

function table(id, cols, rows, rowClass) {
  const t = document.getElementById(id);
  t.tHead.replaceChildren(el("tr", {}, ...cols.map(c => el("th", { class: c.l ? "l" : "" }, c.h))));
  if (!rows.length) {
    t.tBodies[0].replaceChildren(el("tr", {}, el("td", { class: "l muted", colspan: cols.length }, "nothing yet")));
    return;
  }
  t.tBodies[0].replaceChildren(...rows.map(r => el("tr", { class: rowClass ? rowClass(r) : "" },
    ...cols.map(c => { const v = c.f(r); const td = el("td", { class: (c.l ? "l " : "") + (c.cls || "") }, v);
      if (c.title) td.title = c.title(r) || ""; return td; }))));
}

function outcomeChip(o) {
  return o ? el("span", { class: "chip", style: "background:" + (OUTCOME_COLOURS[o] || "#525252") }, o) : "-";
}

function renderLeaderboard(st) {
  const maxW = Math.max(1e-9, ...st.leaderboard.map(r => r.weight));
  table("leaderboard", [
    { h: "#", f: r => r.rank }, { h: "uid", f: r => r.uid }, { h: "hotkey", l: 1, f: r => shortKey(r.hotkey), title: r => r.hotkey },
    { h: "behaviour", l: 1, f: r => r.behaviour || "-" }, { h: "frag", f: r => fmt(r.fragment) },
    { h: "score", f: r => fmt(r.score, 4) }, { h: "norm", f: r => fmt(r.norm_score, 3) },
    { h: "mean", f: r => fmt(r.mean_score, 4) }, { h: "rounds", f: r => r.rounds },
    { h: "mu", f: r => fmt(r.mu, 2) }, { h: "sigma", f: r => fmt(r.sigma, 2) }, { h: "ordinal", f: r => fmt(r.ordinal, 2) },
    { h: "weight", l: 1, f: r => { const s = el("span"); s.append(el("span", { class: "bar", style: "width:" + Math.round(r.weight / maxW * 80) + "px" }), fmt(r.weight, 3)); return s; } },
    { h: "picked", f: r => r.selected }, { h: "uploads", f: r => r.uploads },
    { h: "outcome", l: 1, f: r => outcomeChip(r.outcome) },
    { h: "last reason", l: 1, f: r => el("span", { class: "reason" }, r.reason || ""), title: r => r.reason },
  ], st.leaderboard, r => r.leader ? "leader" : "");
}

function renderTimeline(st) {
  const box = document.getElementById("timeline");
  const rows = st.windows;
  if (!rows.length) { box.replaceChildren(el("div", { class: "empty" }, "no window scored yet")); return; }
  const uids = [...new Set(rows.flatMap(r => Object.keys(r.peers).map(Number)))].sort((a, b) => a - b);
  const cw = 26, ch = 18, L = 60, T = 22, B = 4;
  const W = L + rows.length * cw + 8, H = T + uids.length * ch + 2 * ch + B;
  const root = svg("svg", { width: W, height: H, role: "img", "aria-label": "outcome per uid and window" });
  rows.forEach((r, j) => {
    const x = L + j * cw;
    root.append(svg("text", { x: x + cw / 2, y: 14, "text-anchor": "middle" }, r.window));
    uids.forEach((u, i) => {
      const p = r.peers[String(u)];
      const y = T + i * ch;
      if (!p) return;
      const picked = r.selected.includes(u);
      const cell = svg("rect", { x: x + 1, y: y + 1, width: cw - 2, height: ch - 2, rx: 2,
        fill: OUTCOME_COLOURS[p.outcome] || "#525252", stroke: picked ? "#24292f" : "none", "stroke-width": picked ? 2 : 0 });
      cell.append(svg("title", {}, `window ${r.window}, uid ${u}: ${p.outcome}` + (p.score != null ? ` (score ${p.score.toPrecision(3)})` : "") +
        (p.reason ? ` \u2014 ${p.reason}` : "") + (picked ? " [aggregated]" : "")));
      root.append(cell);
      if (p.fragment != null) root.append(svg("text", { x: x + cw / 2, y: y + 13, "text-anchor": "middle", class: "on" }, p.fragment));
    });
    const n = Object.values(r.counts).reduce((a, b) => a + b, 0), ok = r.counts.scored || 0;
    root.append(svg("text", { x: x + cw / 2, y: T + uids.length * ch + 14, "text-anchor": "middle" }, ok + "/" + n));
  });
  uids.forEach((u, i) => root.append(svg("text", { x: L - 6, y: T + i * ch + 13, "text-anchor": "end" }, "uid " + u)));
  root.append(svg("text", { x: L - 6, y: T + uids.length * ch + 14, "text-anchor": "end" }, "scored"));
  box.replaceChildren(root);
  const seen = new Set(rows.flatMap(r => Object.keys(r.counts)));
  document.getElementById("legend").replaceChildren(...st.outcomes.filter(o => seen.has(o)).map(o =>
    el("span", {}, el("i", { style: "background:" + (OUTCOME_COLOURS[o] || "#525252") }), o)));
}

function renderCalls(st) {
  table("calls", [
    { h: "when", l: 1, f: r => ago(r.ts) }, { h: "event", l: 1, f: r => r.event }, { h: "block", f: r => fmt(r.block) },
    { h: "outcome", l: 1, f: r => r.outcome }, { h: "error / detail", l: 1, f: r => el("span", { class: "reason" }, r.error || r.detail || ""), title: r => r.error || r.detail },
  ], st.weights.calls.slice().reverse());
}

function kv(pairs) {
  return el("div", { class: "kv" }, ...pairs.flatMap(([k, v]) => [el("span", { class: "k" }, k), el("span", {}, v == null ? "-" : v)]));
}
function bytes(n) {
  if (n == null) return "-";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0, x = n;
  while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
  return (i ? x.toFixed(1) : x) + " " + u[i];
}

function renderHealth(st) {
  const h = st.health, pairs = [];
  const list = m => Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, n]) => k + " \u00d7" + n).join(", ") || "none";
  pairs.push(["chain errors", list(h.chain_errors)]);
  if (h.last_chain_error) pairs.push(["last chain error", `${ago(h.last_chain_error.ts)} (${h.last_chain_error.component} uid ${fmt(h.last_chain_error.uid)}): ${h.last_chain_error.error || h.last_chain_error.kind}`]);
  pairs.push(["store errors", list(h.store_errors)]);
  if (h.last_store_error) pairs.push(["last store error", `${ago(h.last_store_error.ts)}: ${h.last_store_error.error || h.last_store_error.kind}`]);
  pairs.push(["late uploads", h.late_uploads]);
  if (st.weights.pending) pairs.push(["pending reveal", `commit at block ${fmt(st.weights.pending.commit_block)}, deadline ${fmt(st.weights.pending.deadline_block)}`]);
  const sd = h.state_dir;
  if (sd && sd.model) pairs.push(["model file", sd.model.present ? `version ${fmt(sd.model.version)}, ${bytes(sd.model.bytes)}` : "not persisted yet"]);
  if (sd && sd.usage) pairs.push(["state dir", `${bytes(sd.usage.state_dir_bytes)}; evidence ${sd.usage.evidence_pins} pins over ${sd.usage.evidence_windows} windows; events ${bytes(sd.usage.events_bytes)}`]);
  if (sd && sd.error) pairs.push(["state dir", sd.error]);
  const f = st.fragments;
  if (f.window != null) pairs.push(["fragments, window " + f.window, Object.entries(f.uids).map(([k, us]) => "frag " + k + ": uid " + us.join(", ")).join("; ")]);
  document.getElementById("health").replaceChildren(kv(pairs));
}

function render(st) {
  renderCards(st); renderLoss(st); renderWeights(st); renderLeaderboard(st); renderTimeline(st); renderCalls(st); renderHealth(st);
  const src = st.source;
  document.getElementById("source").textContent = `events from ${src.events_dir}: ${src.events} records in ${src.files} files` +
    (src.rejected ? `, ${src.rejected} malformed records dropped` : "") + `; last event ${ago(src.last_event_ts)}`;
  document.getElementById("updated").textContent = "updated " + new Date(st.generated_at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  document.title = `Tessera \u00b7 window ${fmt(st.summary.window)}`;
  document.body.dataset.window = st.summary.window == null ? "" : String(st.summary.window);
  document.body.dataset.rendered = "1";
}

async function refresh() {
  try {
    const r = await fetch("/api/state", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
  } catch (e) {
    document.getElementById("updated").textContent = "cannot reach the node: " + e.message;
  }
}

async function start() {
  let every = 5;
  try { every = (await (await fetch("/api/config")).json()).refresh_s || every; } catch (e) { /* default */ }
  await refresh();
  setInterval(refresh, every * 1000);
}
start();
