// The reward observatory's page: live (polls /ui/data), or an offline report (its data embedded
// in a <script id="harmo-data"> element). Everything from the server is drawn with textContent
// and SVG attributes, never as HTML: prompts and responses are untrusted text.
"use strict";

const EMBEDDED = document.getElementById("harmo-data");
const REPORT = EMBEDDED ? JSON.parse(EMBEDDED.textContent) : null;
const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 2000;
let selected = null; // the series shown: "profile\u0000data_source"
let last = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en");
  return v.toFixed(digits);
}
const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");
const $ = (id) => document.getElementById(id);
// From the origin, never the page's own URL: a page opened with user:key@ in its address holds
// credentials, which fetch() refuses in a URL (the browser sends them for the origin anyway).
const api = (path) => location.origin + path;

// -- tabs ---------------------------------------------------------------------------------
for (const b of document.querySelectorAll(".tab")) {
  b.addEventListener("click", () => show(b.dataset.tab));
}
function show(tab) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const p of document.querySelectorAll(".panel")) p.classList.toggle("active", p.id === tab);
}

// -- charts -------------------------------------------------------------------------------
function histogram(name, h, caption) {
  const W = 300, H = 120, P = 18;
  const fig = el("figure", {class: "chart", "data-name": name, "data-n": String(h.n)});
  fig.append(el("figcaption", {}, el("span", {text: name}),
                el("span", {class: "note", text: `n ${fmt(h.n)} · mean ${fmt(h.mean)}${caption || ""}`})));
  const s = svg("svg", {width: "100%", viewBox: `0 0 ${W} ${H + P}`, role: "img"});
  s.append(svg("line", {class: "axis", x1: 0, y1: H, x2: W, y2: H}));
  if (h.n > 0) {
    const top = Math.max(...h.counts), bw = W / h.counts.length;
    h.counts.forEach((c, i) => {
      const bh = top ? (c / top) * (H - 4) : 0;
      const r = svg("rect", {class: "bar", x: i * bw + 1, y: H - bh, width: Math.max(bw - 2, 1), height: bh});
      const lo = h.lo + (i * (h.hi - h.lo)) / h.counts.length, hi = lo + (h.hi - h.lo) / h.counts.length;
      const t = svg("title", {}); t.textContent = `[${fmt(lo)}, ${fmt(hi)}): ${c}`; r.append(t);
      s.append(r);
    });
    const x = ((h.mean - h.lo) / (h.hi - h.lo || 1)) * W;
    s.append(svg("line", {class: "mean", x1: x, y1: 0, x2: x, y2: H}));
    const lo = svg("text", {x: 0, y: H + 13}); lo.textContent = fmt(h.lo);
    const hi = svg("text", {x: W, y: H + 13, "text-anchor": "end"}); hi.textContent = fmt(h.hi);
    s.append(lo, hi);
  } else {
    const t = svg("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}); t.textContent = "no values yet";
    s.append(t);
  }
  fig.append(s);
  return fig;
}

function table(id, head, rows) {
  const t = $(id);
  t.replaceChildren();
  const tr = el("tr");
  head.forEach((h, i) => tr.append(el("th", {class: i ? "num" : "", text: h})));
  t.append(tr);
  if (!rows.length) t.append(el("tr", {}, el("td", {class: "note", text: "none", colspan: String(head.length)})));
  for (const r of rows) {
    const row = el("tr");
    r.forEach((v, i) => row.append(el("td", {class: i ? "num" : "", text: typeof v === "number" ? fmt(v) : v})));
    t.append(row);
  }
}

function card(key, label, value) {
  return el("div", {class: "card", id: `card-${key}`}, el("div", {class: "label", text: label}),
            el("div", {class: "value", text: value}));
}

// -- live ---------------------------------------------------------------------------------
function render(data) {
  last = data;
  const obs = data.observatory;
  if (!obs) {
    $("status").textContent = "the observatory is off on this server (HARMO_OBSERVATORY=false)";
    return;
  }
  const series = obs.series;
  const sel = $("series");
  const keys = series.map((s) => s.profile + "\u0000" + s.data_source);
  if (selected === null || !keys.includes(selected)) selected = keys[0] || null;
  if (sel.options.length !== keys.length || [...sel.options].some((o, i) => o.value !== keys[i])) {
    sel.replaceChildren(...series.map((s, i) => el("option", {value: keys[i],
      text: `${s.profile} / ${s.data_source}`})));
  }
  if (selected !== null) sel.value = selected;
  const s = series[keys.indexOf(selected)];
  const when = new Date(obs.time * 1000).toLocaleTimeString();
  $("status").textContent = REPORT ? `offline report · ${fmt(series.reduce((a, x) => a + x.total, 0))} items`
    : `live · updated ${when}`;
  // alerts: every series', the page's first concern
  const alerts = $("alerts");
  alerts.replaceChildren(...(obs.alerts.length ? obs.alerts.map((a) => el("div", {class: "alert",
    "data-alert": a.alert, text: `${a.profile} / ${a.data_source}: ${a.alert}: ${a.message}`}))
    : [el("div", {class: "none", text: "no alerts"})]));
  if (!s) {
    $("cards").replaceChildren(el("p", {class: "note", text: "no items scored yet"}));
    $("charts").replaceChildren();
    return;
  }
  $("window-note").textContent = REPORT ? `the whole run: ${fmt(s.items)} items` :
    `current window: the latest ${fmt(s.items)} items (window ${fmt(obs.window)}); compared with the ` +
    `${fmt(s.previous_items)} before`;
  $("cards").replaceChildren(
    card("total", "items scored", fmt(s.total)),
    card("window", "in window", fmt(s.items)),
    card("reward-mean", "mean reward", fmt(s.reward.mean)),
    card("null-rate", "null rewards", pct(s.null_rate)),
    card("error-rate", "items with errors", pct(s.error_rate)),
    card("unjudged-rate", "unjudged", pct(s.unjudged_rate)),
    card("cache", "cache hits", pct(s.cache.ratio)),
    card("length", "median length", fmt(s.length.p50)));
  const charts = [histogram("reward", s.reward)];
  for (const [name, h] of Object.entries(s.components)) {
    const before = s.previous_means[name];
    charts.push(histogram(name, h, before === null || before === undefined ? "" : ` · before ${fmt(before)}`));
  }
  charts.push(histogram("response length", s.length,
    s.previous_length_mean === null ? "" : ` · before ${fmt(s.previous_length_mean, 1)}`));
  $("charts").replaceChildren(...charts);
  table("sources", ["source", "items", "share"], Object.entries(s.sources).map(([k, v]) => [k, v, pct(v / s.items)]));
  table("errors", ["component/code", "items"], Object.entries(s.errors));
  table("groups", ["status", "items"], Object.entries(s.groups));
  table("flags", ["detector", "items"], Object.entries(s.paid_flags));
  table("latency", ["what", "n", "p50 ms", "p95 ms"],
        obs.latency.map((l) => [`${l.kind}: ${l.name}`, l.n, l.p50_ms, l.p95_ms]));
  renderInspector(data);
}

function renderInspector(data) {
  const on = data.inspected !== null && data.inspected !== undefined;
  $("inspector-off").hidden = on;
  const t = $("inspected");
  t.replaceChildren();
  if (!on) return;
  t.append(el("tr", {}, ...["when", "item", "response", "reward", "why"].map((h) => el("th", {text: h}))));
  for (const row of data.inspected) {
    const r = row.result;
    const why = el("td");
    why.append(explainBlock(r));
    t.append(el("tr", {class: "inspected", "data-id": row.id || ""},
      el("td", {text: new Date(row.time * 1000).toLocaleTimeString()}),
      el("td", {}, el("div", {text: `${row.id || "(no id)"} · ${row.task} · ${row.data_source}`}),
         el("pre", {text: row.prompt || ""}), el("div", {class: "note", text: "reference: " + row.reference.join(" | ")})),
      el("td", {}, el("pre", {text: row.response})),
      el("td", {class: "num", text: fmt(r.reward)}),
      why));
  }
}

// One result as the page shows it: reward, components, accuracy, errors and each part's explanation.
function explainBlock(r) {
  const box = el("div", {class: "result"});
  box.append(el("div", {class: "reward", "data-reward": String(r.reward), text: `reward ${fmt(r.reward)}`}));
  const comps = el("table", {class: "components"});
  comps.append(el("tr", {}, el("th", {text: "component"}), el("th", {class: "num", text: "value"})));
  for (const [k, v] of Object.entries(r.components)) {
    comps.append(el("tr", {"data-component": k}, el("td", {text: k}), el("td", {class: "num", text: fmt(v)})));
  }
  box.append(comps);
  if (r.accuracy) {
    box.append(el("div", {class: "note", text: `accuracy: ${r.accuracy.source} · ${r.accuracy.verdict} · ` +
      `confidence ${fmt(r.accuracy.confidence)} · extracted ${JSON.stringify(r.accuracy.extracted)}`}));
  }
  for (const e of r.errors || []) box.append(el("div", {class: "error", text: `${e.component}/${e.code}: ${e.message}`}));
  for (const [part, info] of Object.entries(r.explain || {})) {
    box.append(el("h3", {text: part}));
    if (info && info.why) box.append(el("div", {text: info.why}));
    const t = el("table", {class: "explain", "data-part": part});
    for (const [k, v] of Object.entries(info || {})) {
      if (k === "why") continue;
      t.append(el("tr", {}, el("td", {text: k}),
        el("td", {text: v !== null && typeof v === "object" ? JSON.stringify(v) : fmt(v)})));
    }
    box.append(t);
  }
  return box;
}

async function poll() {
  try {
    const resp = await fetch(api("/ui/data"), {credentials: "same-origin", cache: "no-store"});
    if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
    const data = await resp.json();
    fillProfiles(data);
    render(data);
  } catch (err) {
    $("status").textContent = `cannot read /ui/data: ${err.message}`;
  }
  setTimeout(poll, REFRESH_MS);
}

function fillProfiles(data) {
  for (const id of ["pg-profile", "audit-profile"]) {
    const sel = $(id);
    if (sel.options.length) continue;
    sel.replaceChildren(...data.profiles.map((p) => el("option", {value: p, text: p})));
    sel.value = data.default_profile;
  }
}

// -- playground ---------------------------------------------------------------------------
$("pg-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("pg-error").textContent = "";
  const item = {task: $("pg-task").value.trim() || "auto", response: $("pg-response").value};
  const prompt = $("pg-prompt").value, reference = $("pg-reference").value.trim();
  const choices = $("pg-choices").value.split("\n").map((c) => c.trim()).filter(Boolean);
  if (prompt) item.prompt = prompt;
  if (reference) item.reference = reference;
  if (choices.length) item.choices = choices;
  if ($("pg-constraints").value.trim()) {
    try { item.constraints = JSON.parse($("pg-constraints").value); }
    catch (err) { $("pg-error").textContent = `constraints: ${err.message}`; return; }
  }
  const body = {profile: $("pg-profile").value, explain: true, cache: false, items: [item]};
  const resp = await fetch(api("/score"), {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const out = await resp.json();
  if (!resp.ok) {
    $("pg-error").textContent = `${resp.status}: ${typeof out.detail === "string" ? out.detail : JSON.stringify(out.detail)}`;
    return;
  }
  $("pg-result").replaceChildren(explainBlock(out.results[0]), el("pre", {text: JSON.stringify(out, null, 1)}));
});

$("audit-run").addEventListener("click", async () => {
  const profile = $("audit-profile").value;
  $("audit-status").textContent = "running…";
  const resp = await fetch(api(`/ui/audit?profile=${encodeURIComponent(profile)}`), {method: "POST", credentials: "same-origin"});
  const out = await resp.json();
  if (!resp.ok) { $("audit-status").textContent = `${resp.status}: ${out.detail}`; return; }
  $("audit-status").textContent = `${out.rows.length} probes, ${out.failed} failed`;
  const t = $("audit");
  t.replaceChildren(el("tr", {}, ...["probe", "task", "reward", "control", "accuracy", "result"].map((h) =>
    el("th", {text: h}))));
  for (const r of out.rows) {
    const bad = r.must_not_pay && r.paid;
    t.append(el("tr", {class: "audit-row"}, el("td", {text: r.probe}), el("td", {text: r.task}),
      el("td", {class: "num", text: fmt(r.reward)}), el("td", {class: "num", text: fmt(r.control_reward)}),
      el("td", {class: "num", text: fmt(r.accuracy)}),
      el("td", {class: bad ? "fail" : "pass", text: bad ? (r.probe.startsWith("control") ? "FAIL: not paid" : "FAIL: paid") : "ok"})));
  }
});

$("series").addEventListener("change", (ev) => { selected = ev.target.value; if (last) render(last); });

if (REPORT) {
  for (const id of ["tab-playground", "tab-inspector"]) $(id).hidden = true;
  $("tab-live").textContent = "Run";
  render(REPORT);
} else {
  poll();
}
