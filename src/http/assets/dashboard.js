// limitkv dashboard: polls /v1/usage/overview and draws it. No framework, no build step.
// Every server-provided string goes into the page through textContent (identities are
// user-controlled input).
"use strict";

const REFRESH_MS = 5000;
let windowName = "1h";
let lastLookup = null;

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : (n ?? "–"));

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

// Per-minute points [minute_ms, decisions, denied] into at most `bars` buckets.
function buckets(series, bars) {
  const size = Math.max(1, Math.ceil(series.length / bars));
  const out = [];
  for (let i = 0; i < series.length; i += size) {
    let d = 0, x = 0;
    for (const p of series.slice(i, i + size)) { d += p[1]; x += p[2]; }
    out.push([series[i][0], d, x]);
  }
  return out;
}

function chart(series) {
  const pts = buckets(series, 96);
  const w = 960, h = 90;
  const max = Math.max(1, ...pts.map((p) => p[1]));
  const bw = w / Math.max(1, pts.length);
  const s = svg("svg", { class: "chart", viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", role: "img" });
  s.append(svg("line", { class: "axis", x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5 }));
  pts.forEach((p, i) => {
    const allowed = p[1] - p[2];
    const ha = (allowed / max) * (h - 4), hd = (p[2] / max) * (h - 4);
    const x = i * bw + 0.5, bwid = Math.max(1, bw - 1);
    if (ha > 0) s.append(svg("rect", { class: "ok", x, y: h - ha - hd, width: bwid, height: ha }));
    if (hd > 0) s.append(svg("rect", { class: "deny", x, y: h - hd, width: bwid, height: hd }));
    const t = svg("title", {});
    t.textContent = `${new Date(p[0]).toLocaleTimeString()}: ${p[1]} decisions, ${p[2]} denied`;
    s.lastChild && s.lastChild.append(t);
  });
  const label = svg("title", {});
  label.textContent = "allowed (green) and denied (red) decisions per minute";
  s.prepend(label);
  return s;
}

function renderPolicies(policies) {
  const box = $("#policies");
  box.replaceChildren();
  let denied = 0, decisions = 0;
  for (const p of policies) {
    denied += p.denied;
    decisions += p.decisions;
    box.append(el("div", { class: "policy", "data-policy": p.policy },
      el("h3", {}, el("span", { class: "policy-name" }, p.policy),
        el("small", {}, `${fmt(p.decisions)} decisions · `,
          el("span", { class: "policy-denied" }, fmt(p.denied)), " denied")),
      chart(p.series)));
  }
  if (!policies.length) box.append(el("p", { class: "totals" }, "No policies are set (POLICY.SET)."));
  $("#total-denied").textContent = fmt(denied);
  $("#total-decisions").textContent = fmt(decisions);
  const sel = $("#lookup-policy");
  const keep = sel.value;
  sel.replaceChildren(...policies.map((p) => el("option", { value: p.policy }, p.policy)));
  if (keep) sel.value = keep;
}

function renderTable(sel, rows, cols) {
  const body = $(sel + " tbody");
  body.replaceChildren();
  for (const r of rows || []) {
    body.append(el("tr", {}, ...cols.map(([k, cls]) => el("td", cls ? { class: cls } : {}, fmt(r[k])))));
  }
  if (!rows || !rows.length) body.append(el("tr", { class: "empty" }, el("td", { colspan: cols.length }, "nothing in this window")));
}

function renderBreakers(list) {
  const body = $("#breakers tbody");
  body.replaceChildren();
  for (const b of list) {
    body.append(el("tr", {}, el("td", {}, b.key), el("td", { class: "state-" + b.state }, b.state), el("td", { class: "n" }, fmt(b.failures))));
  }
  if (!list.length) body.append(el("tr", { class: "empty" }, el("td", { colspan: 3 }, "no breakers")));
}

function renderServer(o) {
  const dl = $("#server");
  const item = (k, v) => [el("dt", {}, k), el("dd", {}, v)];
  dl.replaceChildren(
    ...item("Memory", o.memory.used_memory_human ?? fmt(o.memory.used_memory)),
    ...item("Usage history", `${fmt(o.memory.usage_history_bytes)} bytes, ${fmt(o.memory.usage_history_identities)} identities`),
    ...item("Clients", fmt(o.clients.connected_clients)),
    ...item("Updated", new Date(o.time_ms).toLocaleTimeString()),
  );
}

async function lookup(policy, identity) {
  const box = $("#identity");
  lastLookup = { policy, identity };
  try {
    const u = await getJSON(`/v1/usage/identity?policy=${encodeURIComponent(policy)}&identity=${encodeURIComponent(identity)}`);
    box.replaceChildren();
    if (!u.rules) { box.append(el("p", { class: "totals" }, `${identity}: nothing used and nothing recorded.`)); return; }
    if (u.reason) box.append(el("p", {}, `Access list: ${u.reason}`));
    const t = el("table", {}, el("thead", {}, el("tr", {},
      el("th", {}, "Rule"), el("th", { class: "n" }, "Used"), el("th", { class: "n" }, "Limit"), el("th", {}, ""), el("th", {}, "Resets"))));
    const tb = el("tbody", {});
    for (const r of u.rules) {
      const used = Number(r.used), limit = Number(r.limit);
      const pct = limit > 0 ? Math.min(100, (used / limit) * 100) : 0;
      const fill = el("span", { class: pct >= 80 ? "hot" : "" });
      fill.style.width = `${pct.toFixed(1)}%`; // CSSOM, allowed by the page's CSP
      const bar = el("div", { class: "bar" }, fill);
      const name = r.scope ? `${r.scope}/${r.rule}` : r.rule;
      tb.append(el("tr", {}, el("td", {}, name), el("td", { class: "n" }, fmt(r.used)), el("td", { class: "n" }, fmt(r.limit)), el("td", {}, bar),
        el("td", {}, r.reset_after_ms > 0 ? new Date(r.resets_at_ms).toLocaleString() : "now")));
    }
    t.append(tb);
    const h = u.last_day;
    box.append(t, el("p", { class: "totals" }, `Last 24 h: ${fmt(h.decisions)} decisions, ${fmt(h.denied)} denied, ${fmt(h.tokens)} tokens, cost ${h.cost}`));
  } catch (e) {
    box.replaceChildren(el("p", { class: "totals" }, `Lookup failed: ${e.message}`));
  }
}

async function refresh() {
  const status = $("#status");
  try {
    const o = await getJSON(`/v1/usage/overview?window=${windowName}`);
    renderPolicies(o.policies);
    renderTable("#top-denied", o.top_denied, [["identity"], ["policy"], ["denied", "n"], ["allowed", "n"]]);
    renderTable("#top-usage", o.top_usage, [["identity"], ["policy"], ["allowed", "n"], ["tokens", "n"], ["cost", "n"]]);
    renderBreakers(o.breakers);
    renderServer(o);
    status.className = "";
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "1";
  } catch (e) {
    status.className = "error";
    status.textContent = `refresh failed: ${e.message}`;
  }
}

document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
  windowName = b.dataset.window;
  document.querySelectorAll("nav button").forEach((x) => x.classList.toggle("on", x === b));
  refresh();
}));

$("#lookup").addEventListener("submit", (ev) => {
  ev.preventDefault();
  lookup($("#lookup-policy").value, $("#lookup-identity").value.trim());
});

refresh();
setInterval(() => { refresh(); if (lastLookup) lookup(lastLookup.policy, lastLookup.identity); }, REFRESH_MS);
