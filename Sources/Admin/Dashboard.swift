/// The dashboard at `GET /`: one self-contained HTML page (styles and script inline, no request to any
/// other host). It polls `/api/stats` every second, fetches `/api/backends` for the heat map's labels
/// when the pool changes, and posts drain/enable/disable actions, sending the bearer token when the
/// operator gave one (kept in the browser's localStorage). Shapes of what it reads: docs/admin.md.
enum Dashboard {
    static let page: [UInt8] = Array(html.utf8)

    static let html = ##"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lb · live</title>
<style>
:root {
  --bg: #070b14; --panel: #0e1526; --panel2: #121b30; --line: #1d2942; --text: #d5deef; --dim: #7d8aa6;
  --cyan: #22d3ee; --green: #34d399; --amber: #fbbf24; --red: #f87171; --violet: #a78bfa; --blue: #60a5fa;
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; background: var(--bg); color: var(--text);
  font: 14px/1.35 ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
body { display: flex; flex-direction: column; padding: 14px 18px 16px; gap: 12px; min-height: 100vh; }
header { display: flex; align-items: center; gap: 18px; }
.logo { font-weight: 800; font-size: 22px; letter-spacing: .5px; display: flex; align-items: center; gap: 10px; }
.logo .mark { width: 26px; height: 26px; border-radius: 7px; background: linear-gradient(135deg, var(--cyan), var(--violet));
  display: grid; place-items: center; color: #05101c; font-size: 15px; font-weight: 900; }
.meta { color: var(--dim); font-size: 13px; display: flex; gap: 16px; flex-wrap: wrap; }
.meta b { color: var(--text); font-weight: 600; }
.spacer { flex: 1; }
.pill { padding: 4px 12px; border-radius: 999px; font-weight: 700; font-size: 12px; letter-spacing: .8px; text-transform: uppercase; }
.pill.ok { background: rgba(52,211,153,.14); color: var(--green); border: 1px solid rgba(52,211,153,.35); }
.pill.warn { background: rgba(251,191,36,.14); color: var(--amber); border: 1px solid rgba(251,191,36,.35); }
.pill.bad { background: rgba(248,113,113,.14); color: var(--red); border: 1px solid rgba(248,113,113,.35); }
.dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; background: var(--green);
  box-shadow: 0 0 8px var(--green); vertical-align: 1px; }
.dot.stale { background: var(--red); box-shadow: 0 0 8px var(--red); }
button { font: inherit; color: var(--text); background: var(--panel2); border: 1px solid var(--line); border-radius: 7px;
  padding: 5px 11px; cursor: pointer; }
button:hover { border-color: var(--cyan); }
button.drain { color: var(--amber); } button.enable { color: var(--green); } button.disable { color: var(--dim); }
.kpis { display: grid; grid-template-columns: repeat(6, 1fr); gap: 12px; }
.tile { background: linear-gradient(180deg, var(--panel2), var(--panel)); border: 1px solid var(--line); border-radius: 12px;
  padding: 12px 14px 10px; min-width: 0; }
.tile .label { color: var(--dim); font-size: 11px; letter-spacing: 1.2px; text-transform: uppercase; font-weight: 600; }
.tile .value { font-size: 34px; font-weight: 750; letter-spacing: -.5px; margin-top: 2px; font-variant-numeric: tabular-nums;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tile .value small { font-size: 16px; color: var(--dim); font-weight: 600; margin-left: 4px; }
.tile .sub { color: var(--dim); font-size: 12px; font-variant-numeric: tabular-nums; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.c-cyan { color: var(--cyan); } .c-green { color: var(--green); } .c-amber { color: var(--amber); }
.c-red { color: var(--red); } .c-violet { color: var(--violet); } .c-blue { color: var(--blue); }
.charts { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 12px; padding: 10px 14px 12px; min-width: 0; }
.panel h2 { margin: 0 0 6px; font-size: 12px; letter-spacing: 1.2px; text-transform: uppercase; color: var(--dim); font-weight: 600;
  display: flex; align-items: center; gap: 12px; }
.legend { display: flex; gap: 12px; text-transform: none; letter-spacing: 0; font-weight: 500; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 3px; margin-right: 5px; vertical-align: -1px; }
canvas.chart { width: 100%; height: 170px; display: block; }
.lower { display: grid; grid-template-columns: 2.2fr 1fr; gap: 12px; flex: 1; min-height: 300px; }
.heatwrap { position: relative; display: flex; flex-direction: column; }
#heat { width: 100%; flex: 1; min-height: 240px; display: block; border-radius: 6px; cursor: crosshair; }
#tip { position: fixed; pointer-events: none; background: rgba(10,16,30,.96); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 10px; font-size: 12px; display: none; z-index: 5; min-width: 180px; box-shadow: 0 8px 30px rgba(0,0,0,.5); }
#tip b { font-size: 13px; }
.side { display: flex; flex-direction: column; gap: 12px; min-height: 0; }
.side .panel { display: flex; flex-direction: column; min-height: 0; }
#events, #attention { list-style: none; margin: 0; padding: 0; overflow: auto; flex: 1; font-size: 12.5px; }
#events li, #attention li { display: flex; gap: 8px; align-items: center; padding: 5px 2px; border-bottom: 1px solid rgba(29,41,66,.6); }
#events .t { color: var(--dim); font-variant-numeric: tabular-nums; width: 62px; flex: none; }
#events .a, #attention .a { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
#events .cause { color: var(--dim); overflow: hidden; white-space: nowrap; text-overflow: ellipsis; flex: 1; }
.st { font-size: 10.5px; font-weight: 700; text-transform: uppercase; letter-spacing: .6px; padding: 1px 7px; border-radius: 999px; flex: none; }
.st.up, .st.enabled, .st.added { color: var(--green); background: rgba(52,211,153,.12); }
.st.down, .st.removed { color: var(--red); background: rgba(248,113,113,.12); }
.st.drain { color: var(--amber); background: rgba(251,191,36,.12); }
.st.disabled { color: var(--dim); background: rgba(125,138,166,.14); }
#attention li .grow { flex: 1; }
#attention li button { padding: 2px 8px; font-size: 11.5px; }
.find { display: flex; gap: 6px; margin-bottom: 6px; }
.find input { flex: 1; min-width: 0; background: var(--panel2); border: 1px solid var(--line); border-radius: 7px; color: var(--text);
  padding: 5px 8px; font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.empty { color: var(--dim); font-style: italic; padding: 8px 2px; }
#tokenbox { position: fixed; inset: 0; background: rgba(3,6,12,.78); display: none; place-items: center; z-index: 10; }
#tokenbox form { background: var(--panel); border: 1px solid var(--line); border-radius: 12px; padding: 20px; width: 360px; }
#tokenbox input { width: 100%; margin: 10px 0; background: var(--panel2); border: 1px solid var(--line); color: var(--text);
  border-radius: 7px; padding: 8px; font: 13px ui-monospace, monospace; }
#flash { position: fixed; right: 18px; bottom: 18px; background: var(--panel2); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 12px; display: none; z-index: 6; }
#services-panel { display: none; }
table.svc { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
table.svc th { color: var(--dim); font-size: 11px; letter-spacing: 1px; text-transform: uppercase; font-weight: 600; text-align: right;
  padding: 3px 8px; border-bottom: 1px solid var(--line); }
table.svc td { text-align: right; padding: 4px 8px; border-bottom: 1px solid rgba(29,41,66,.6); white-space: nowrap; }
table.svc th:first-child, table.svc td:first-child { text-align: left; font-weight: 650; }
@media (max-width: 1100px) { .kpis { grid-template-columns: repeat(3, 1fr); } .charts { grid-template-columns: 1fr; } .lower { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <div class="logo"><span class="mark">lb</span><span>load balancer</span></div>
  <div class="meta">
    <span>listening <b id="listeners">–</b></span>
    <span>workers <b id="workers">–</b></span>
    <span>up <b id="uptime">–</b></span>
  </div>
  <div class="spacer"></div>
  <span class="meta"><span><span class="dot stale" id="live"></span><span id="updated">connecting…</span></span></span>
  <span class="pill ok" id="status">serving</span>
  <button id="tokenbtn" title="Bearer token for the admin API">token</button>
</header>

<section class="kpis">
  <div class="tile"><div class="label">Connections / s</div><div class="value c-cyan" id="kpi-cps">–</div><div class="sub" id="kpi-cps-sub">–</div></div>
  <div class="tile"><div class="label">Active pairs</div><div class="value c-violet" id="kpi-active">–</div><div class="sub" id="kpi-active-sub">–</div></div>
  <div class="tile"><div class="label">Throughput</div><div class="value c-blue" id="kpi-bytes">–</div><div class="sub" id="kpi-bytes-sub">–</div></div>
  <div class="tile"><div class="label">Backends up</div><div class="value c-green" id="kpi-backends">–</div><div class="sub" id="kpi-backends-sub">–</div></div>
  <div class="tile"><div class="label">Errors / s</div><div class="value" id="kpi-errors">–</div><div class="sub" id="kpi-errors-sub">–</div></div>
  <div class="tile"><div class="label">Connect time</div><div class="value c-amber" id="kpi-connect">–</div><div class="sub" id="kpi-connect-sub">–</div></div>
</section>

<section class="charts">
  <div class="panel"><h2>Connections / s <span class="legend"><span><i style="background:var(--cyan)"></i>accepted</span><span><i style="background:var(--violet)"></i>active pairs</span></span></h2><canvas class="chart" id="chart-conn"></canvas></div>
  <div class="panel"><h2>Bytes / s <span class="legend"><span><i style="background:var(--blue)"></i>to clients</span><span><i style="background:var(--green)"></i>to backends</span></span></h2><canvas class="chart" id="chart-bytes"></canvas></div>
  <div class="panel"><h2>Errors / s <span class="legend"><span><i style="background:var(--red)"></i>502</span><span><i style="background:var(--amber)"></i>connect failed</span><span><i style="background:var(--violet)"></i>resets</span><span><i style="background:var(--dim)"></i>timeouts</span></span></h2><canvas class="chart" id="chart-errors"></canvas></div>
</section>

<section class="panel" id="services-panel">
  <h2>Services</h2>
  <table class="svc"><thead><tr><th>service</th><th>conn/s</th><th>active</th><th>to clients/s</th><th>to backends/s</th>
    <th>errors/s</th><th>backends up</th><th>connect p50 · p99</th><th>accepted</th><th>502s</th></tr></thead>
    <tbody id="services"></tbody></table>
</section>

<section class="lower">
  <div class="panel heatwrap">
    <h2>Backends <span id="heat-count"></span>
      <span class="legend"><span><i style="background:#12324a"></i>idle</span><span><i style="background:linear-gradient(90deg,#0e7490,#22d3ee,#a7f3d0)"></i>busy</span><span><i style="background:var(--red)"></i>down</span><span><i style="background:var(--amber)"></i>drain</span><span><i style="background:#4b5563"></i>disabled</span></span>
      <span class="spacer"></span><span class="legend" id="heat-hint">hover a cell · click to act</span></h2>
    <canvas id="heat"></canvas>
  </div>
  <div class="side">
    <div class="panel" style="flex: 1.1">
      <h2 id="attention-title">Needs attention</h2>
      <div class="find"><input id="find" placeholder="find a backend: 127.0.0.1:8001" spellcheck="false"><button id="findbtn">show</button></div>
      <ul id="attention"></ul>
    </div>
    <div class="panel" style="flex: 1">
      <h2>Health events</h2>
      <ul id="events"></ul>
    </div>
  </div>
</section>

<div id="tip"></div>
<div id="flash"></div>
<div id="tokenbox"><form id="tokenform">
  <div style="font-weight:700">Admin token</div>
  <div class="sub" style="color:var(--dim);font-size:12px">This lb asks for a bearer token (--admin-token-file). It is kept in this browser only.</div>
  <input id="tokeninput" type="password" autocomplete="off" placeholder="token">
  <div style="display:flex;gap:8px;justify-content:flex-end"><button type="button" id="tokencancel">cancel</button><button type="submit">use</button></div>
</form></div>

<script>
"use strict";
const $ = (s) => document.querySelector(s);
let token = localStorage.getItem("lbToken") || "";
let stats = null, names = [], services = [], namesCount = -1, namesAt = 0, selected = -1, hover = -1, updates = 0, lastOk = 0;
const WINDOW = 300; // seconds shown in the charts

function fmtNum(v) {
  if (v == null || isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
  if (a >= 100 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
  return v.toFixed(1);
}
function fmtCount(v) { return v < 1e6 ? Number(v).toLocaleString("en-US") : fmtNum(v); }
function fmtBytes(v) {
  if (v == null || isNaN(v)) return "–";
  const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0;
  while (Math.abs(v) >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return (i === 0 || Number.isInteger(v) ? Math.round(v) : v.toFixed(v >= 100 ? 0 : 1)) + " " + u[i];
}
function fmtDur(s) {
  if (!s) return "0 ms";
  if (s < 0.001) return (s * 1e6).toFixed(0) + " µs";
  if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + " ms";
  return s.toFixed(2) + " s";
}
function fmtUptime(s) {
  s = Math.floor(s); const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}
const last = (a) => (a && a.length ? a[a.length - 1] : 0);

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const r = await fetch(path, Object.assign({}, opts, { headers, cache: "no-store" }));
  if (r.status === 401) { askToken(); throw new Error("token needed"); }
  return r;
}

function askToken() { $("#tokenbox").style.display = "grid"; $("#tokeninput").focus(); }
$("#tokenbtn").onclick = askToken;
$("#tokencancel").onclick = () => { $("#tokenbox").style.display = "none"; };
$("#tokenform").onsubmit = (e) => {
  e.preventDefault(); token = $("#tokeninput").value.trim(); localStorage.setItem("lbToken", token);
  $("#tokenbox").style.display = "none"; namesCount = -1; refresh();
};

function flash(text, bad) {
  const f = $("#flash"); f.textContent = text; f.style.color = bad ? "var(--red)" : "var(--text)"; f.style.display = "block";
  clearTimeout(flash.t); flash.t = setTimeout(() => { f.style.display = "none"; }, 2500);
}

async function act(address, action, service) {
  try {
    const q = service ? `?service=${encodeURIComponent(service)}` : "";
    const r = await api(`/api/backends/${encodeURIComponent(address)}/${action}${q}`, { method: "POST" });
    const body = await r.json();
    if (!r.ok) { flash(body.error || r.statusText, true); return; }
    flash(`${address}: ${body.state}`);
    refresh();
  } catch (e) { flash(e.message, true); }
}

async function loadNames() {
  const r = await api("/api/backends");
  const list = await r.json();
  names = list.map((b) => b.address);
  services = list.map((b) => b.service);
  namesCount = names.length; namesAt = Date.now();
}

async function refresh() {
  try {
    const r = await api("/api/stats");
    if (!r.ok) throw new Error("HTTP " + r.status);
    stats = await r.json();
    if (stats.heat.count !== namesCount || Date.now() - namesAt > 30000) await loadNames();
    updates++; lastOk = Date.now();
    render();
    document.body.dataset.updated = String(updates);
  } catch (e) {
    $("#updated").textContent = "no data: " + e.message;
  }
  $("#live").className = Date.now() - lastOk < 3000 ? "dot" : "dot stale";
}

function render() {
  const s = stats, h = s.history;
  // Every service's backends together (one service today; several with a configuration file).
  const svc = s.services.reduce((t, x) => {
    for (const k of ["backends", "up", "down", "drain", "disabled", "backend_connections"]) t[k] += x[k] || 0;
    return t;
  }, { backends: 0, up: 0, down: 0, drain: 0, disabled: 0, backend_connections: 0 });
  $("#listeners").textContent = s.listeners.join(", ");
  $("#workers").textContent = s.workers;
  $("#uptime").textContent = fmtUptime(s.uptime_seconds);
  $("#updated").textContent = "live · " + new Date(s.time * 1000).toLocaleTimeString();
  const st = $("#status");
  if (s.draining) { st.textContent = "draining"; st.className = "pill warn"; }
  else if (svc.up === 0) { st.textContent = "no backend up"; st.className = "pill bad"; }
  else { st.textContent = "serving"; st.className = "pill ok"; }

  const cps = last(h.connections);
  $("#kpi-cps").textContent = fmtNum(cps);
  const peak = Math.max(0, ...h.connections.slice(-WINDOW));
  $("#kpi-cps-sub").textContent = `peak ${fmtNum(peak)}/s · ${fmtNum(s.totals.accepted)} total`;
  $("#kpi-active").textContent = fmtNum(s.totals.active);
  $("#kpi-active-sub").textContent = `${fmtNum(svc.backend_connections)} to backends · ${fmtNum(s.totals.closed)} closed`;
  const down = last(h.bytes_to_clients), up = last(h.bytes_to_backends);
  $("#kpi-bytes").innerHTML = fmtBytes(down + up).replace(/ (\S+)$/, "<small>$1/s</small>");
  $("#kpi-bytes-sub").textContent = `↓ ${fmtBytes(down)}/s to clients · ↑ ${fmtBytes(up)}/s`;
  $("#kpi-backends").innerHTML = `${fmtCount(svc.up)}<small>/ ${fmtCount(svc.backends)}</small>`;
  $("#kpi-backends").className = "value " + (svc.down > 0 ? "c-amber" : "c-green");
  $("#kpi-backends-sub").textContent = `${svc.down} down · ${svc.drain} drain · ${svc.disabled} disabled`;
  const e502 = last(h.bad_gateways), ecf = last(h.connect_failures), ers = last(h.resets), eto = last(h.timeouts);
  const errs = e502 + ecf + ers + eto;
  $("#kpi-errors").textContent = fmtNum(errs);
  $("#kpi-errors").className = "value " + (errs > 0 ? "c-red" : "c-green");
  const rate = cps > 0 ? ` · ${(100 * (e502 + ecf) / cps).toFixed(1)}% of conns` : "";
  $("#kpi-errors-sub").textContent = `502 ${fmtNum(e502)} · connect ${fmtNum(ecf)} · reset ${fmtNum(ers)}${rate}`;
  $("#kpi-connect").innerHTML = fmtDur(s.connect_time.p50).replace(/ (\S+)$/, "<small>$1</small>");
  $("#kpi-connect-sub").textContent = `p50 · p99 ${fmtDur(s.connect_time.p99)} · ${fmtNum(s.totals.retries)} retries`;

  drawChart($("#chart-conn"), [
    { data: h.connections, color: "#22d3ee", fill: true },
    { data: h.active, color: "#a78bfa" },
  ], fmtNum);
  drawChart($("#chart-bytes"), [
    { data: h.bytes_to_clients, color: "#60a5fa", fill: true },
    { data: h.bytes_to_backends, color: "#34d399" },
  ], (v) => fmtBytes(v));
  drawChart($("#chart-errors"), [
    { data: h.bad_gateways, color: "#f87171", fill: true },
    { data: h.connect_failures, color: "#fbbf24" },
    { data: h.resets, color: "#a78bfa" },
    { data: h.timeouts, color: "#7d8aa6" },
  ], fmtNum);
  drawHeat();
  renderServices();
  renderEvents();
  renderAttention();
}

function sizeCanvas(c) {
  const dpr = window.devicePixelRatio || 1, w = Math.max(1, Math.round(c.clientWidth * dpr)), ht = Math.max(1, Math.round(c.clientHeight * dpr));
  if (c.width !== w || c.height !== ht) { c.width = w; c.height = ht; }
  return dpr;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
  return ([1, 2, 4, 6, 8, 10].find((step) => m <= step) || 10) * p;  // quarters stay round numbers
}

function drawChart(c, series, fmt) {
  const dpr = sizeCanvas(c), g = c.getContext("2d"), W = c.width, H = c.height;
  g.clearRect(0, 0, W, H);
  const left = 58 * dpr, right = 6 * dpr, top = 8 * dpr, bottom = 18 * dpr, pw = W - left - right, ph = H - top - bottom;
  let max = 0;
  for (const s of series) for (const v of s.data.slice(-WINDOW)) max = Math.max(max, v);
  max = niceMax(max * 1.1);
  g.font = `${11 * dpr}px ui-sans-serif, system-ui, sans-serif`; g.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.strokeStyle = i === 0 ? "#22304d" : "rgba(34,48,77,.55)"; g.lineWidth = dpr;
    g.beginPath(); g.moveTo(left, Math.round(y) + .5); g.lineTo(W - right, Math.round(y) + .5); g.stroke();
    g.fillStyle = "#7d8aa6"; g.textAlign = "right"; g.fillText(fmt((max * i) / 4), left - 6 * dpr, y);
  }
  g.textAlign = "center"; g.textBaseline = "top";
  for (let m = 0; m <= WINDOW / 60; m++) {
    const x = left + pw - (pw * m * 60) / WINDOW;
    g.fillText(m === 0 ? "now" : `-${m}m`, Math.min(Math.max(x, left + 10 * dpr), W - right - 12 * dpr), top + ph + 4 * dpr);
  }
  const step = pw / (WINDOW - 1);
  for (const s of series) {
    // Lines are drawn through a 3-second moving average: per-second counts jitter with the sampling.
    const raw = s.data.slice(-WINDOW); if (raw.length < 2) continue;
    const d = raw.map((v, i) => (raw[Math.max(0, i - 1)] + v + raw[Math.min(raw.length - 1, i + 1)]) / 3);
    const x0 = left + pw - (d.length - 1) * step;
    const path = new Path2D();
    d.forEach((v, i) => { const x = x0 + i * step, y = top + ph - (ph * v) / max; i ? path.lineTo(x, y) : path.moveTo(x, y); });
    if (s.fill) {
      const area = new Path2D(path); area.lineTo(x0 + (d.length - 1) * step, top + ph); area.lineTo(x0, top + ph); area.closePath();
      const grad = g.createLinearGradient(0, top, 0, top + ph); grad.addColorStop(0, s.color + "55"); grad.addColorStop(1, s.color + "05");
      g.fillStyle = grad; g.fill(area);
    }
    g.strokeStyle = s.color; g.lineWidth = 1.8 * dpr; g.lineJoin = "round"; g.stroke(path);
  }
}

// Heat map: one cell per backend, laid out to fill the canvas. Up backends go from deep blue (idle) to
// cyan and mint with their connections per second (log scale); down red, drain amber, disabled grey.
let layout = { cols: 1, cell: 1, gap: 0, n: 0 };
const RAMP = [[18, 50, 74], [14, 116, 144], [34, 211, 238], [167, 243, 208], [240, 253, 244]];
function ramp(t) {
  t = Math.max(0, Math.min(1, t)) * (RAMP.length - 1); const i = Math.min(Math.floor(t), RAMP.length - 2), f = t - i;
  return RAMP[i].map((a, k) => Math.round(a + (RAMP[i + 1][k] - a) * f));
}
function drawHeat() {
  const c = $("#heat"), dpr = sizeCanvas(c), g = c.getContext("2d"), W = c.width, H = c.height;
  const heat = stats.heat, n = heat.count;
  c.dataset.cells = String(n);
  $("#heat-count").textContent = `· ${fmtCount(n)}`;
  g.fillStyle = "#0a1020"; g.fillRect(0, 0, W, H);
  if (!n) return;
  // The largest square cell that fits all n in the canvas (a small pool stays tiles, not slabs).
  let cols = 1, cell = 1;
  for (let c = 1; c <= n; c++) {
    const size = Math.min(Math.floor(W / c), Math.floor(H / Math.ceil(n / c)));
    if (size > cell) { cell = size; cols = c; }
  }
  cell = Math.max(1, Math.min(cell, Math.round(80 * dpr)));
  cols = Math.max(cols, Math.min(n, Math.floor(W / cell)));
  const gap = cell >= 6 ? Math.max(1, Math.round(cell / 8)) : 0;
  layout = { cols, cell, gap, n, dpr };
  const img = g.createImageData(cols * cell, Math.ceil(n / cols) * cell), px = img.data, rowW = cols * cell;
  let maxRate = 1;
  for (let i = 0; i < n; i++) maxRate = Math.max(maxRate, heat.rate[i] || 0, heat.active[i] || 0);
  const lmax = Math.log1p(maxRate);
  for (let i = 0; i < n; i++) {
    const s = heat.states[i];
    let rgb;
    if (s === "d") rgb = [248, 113, 113];
    else if (s === "r") rgb = [251, 191, 36];
    else if (s === "x") rgb = [75, 85, 99];
    else rgb = ramp(Math.log1p(Math.max(heat.rate[i] || 0, heat.active[i] || 0)) / lmax);
    if (i === selected) rgb = [255, 255, 255];
    const cx = (i % cols) * cell, cy = Math.floor(i / cols) * cell, size = cell - gap;
    for (let y = 0; y < size; y++) {
      let o = ((cy + y) * rowW + cx) * 4;
      for (let x = 0; x < size; x++, o += 4) { px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2]; px[o + 3] = 255; }
    }
  }
  const ox = Math.floor((W - cols * cell) / 2);
  g.putImageData(img, ox, 0);
  layout.ox = ox;
  if (hover >= 0 && hover < n) {
    g.strokeStyle = "#fff"; g.lineWidth = Math.max(1, dpr);
    g.strokeRect(ox + (hover % cols) * cell - .5, Math.floor(hover / cols) * cell - .5, cell - gap + 1, cell - gap + 1);
  }
}
function cellAt(ev) {
  const c = $("#heat"), r = c.getBoundingClientRect(), dpr = layout.dpr || 1;
  const x = (ev.clientX - r.left) * dpr - (layout.ox || 0), y = (ev.clientY - r.top) * dpr;
  if (x < 0 || y < 0) return -1;
  const col = Math.floor(x / layout.cell), row = Math.floor(y / layout.cell);
  if (col >= layout.cols) return -1;
  const i = row * layout.cols + col;
  return i < layout.n ? i : -1;
}
const STATE = { u: "up", d: "down", r: "drain", x: "disabled" };
$("#heat").addEventListener("mousemove", (ev) => {
  const i = cellAt(ev), tip = $("#tip");
  if (i !== hover) { hover = i; if (stats) drawHeat(); }
  if (i < 0 || !stats) { tip.style.display = "none"; return; }
  const h = stats.heat, state = STATE[h.states[i]];
  const several = stats.services.length > 1 ? ` <span style="color:var(--dim)">${esc(services[i] || "")}</span>` : "";
  tip.innerHTML = `<b class="a">${esc(names[i] || "#" + i)}</b>${several} <span class="st ${state}">${state}</span><br>` +
    `active <b>${fmtNum(h.active[i])}</b> · ${fmtNum(h.rate[i])} conn/s<br><span style="color:var(--dim)">click to drain / enable</span>`;
  tip.style.display = "block";
  tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 230) + "px";
  tip.style.top = Math.min(ev.clientY + 14, window.innerHeight - 90) + "px";
});
$("#heat").addEventListener("mouseleave", () => { hover = -1; $("#tip").style.display = "none"; if (stats) drawHeat(); });
$("#heat").addEventListener("click", (ev) => { const i = cellAt(ev); selected = i === selected ? -1 : i; if (stats) render(); });

function esc(t) { return String(t).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

// One row per service, shown when there are several (with one, the tiles above are that service).
function renderServices() {
  const list = stats.services, panel = $("#services-panel");
  panel.style.display = list.length > 1 ? "block" : "none";
  $("#services").dataset.rows = String(list.length);
  if (list.length < 2) { $("#services").innerHTML = ""; return; }
  $("#services").innerHTML = list.map((x) => {
    const r = x.rates || {}, t = x.totals || {}, ct = x.connect_time || {};
    const errs = (r.bad_gateways || 0) + (r.connect_failures || 0) + (r.resets || 0) + (r.timeouts || 0);
    const upClass = x.down > 0 ? "c-amber" : "c-green";
    return `<tr data-service="${esc(x.name)}"><td>${esc(x.name)}</td><td class="c-cyan">${fmtNum(r.connections)}</td>` +
      `<td class="c-violet">${fmtNum(x.active)}</td><td>${fmtBytes(r.bytes_to_clients)}</td><td>${fmtBytes(r.bytes_to_backends)}</td>` +
      `<td class="${errs > 0 ? "c-red" : ""}">${fmtNum(errs)}</td><td class="${upClass}">${fmtCount(x.up)} / ${fmtCount(x.backends)}</td>` +
      `<td>${fmtDur(ct.p50)} · ${fmtDur(ct.p99)}</td><td>${fmtCount(t.accepted || 0)}</td><td>${fmtCount(t.bad_gateways || 0)}</td></tr>`;
  }).join("");
}

function renderEvents() {
  const list = stats.events.slice().reverse();
  $("#events").innerHTML = list.length ? list.map((e) =>
    `<li><span class="t">${new Date(e.time * 1000).toLocaleTimeString([], { hour12: false })}</span>` +
    `<span class="st ${esc(e.state)}">${esc(e.state)}</span><span class="a">${esc(e.backend)}</span>` +
    `<span class="cause" title="${esc(e.cause)}">${esc(e.cause)}</span></li>`).join("")
    : `<li class="empty">no backend has changed state</li>`;
}

function buttons(i, state) {
  const a = esc(names[i] || ""), sv = esc(services[i] || "");
  if (state === "drain" || state === "disabled") return `<button class="enable" data-a="${a}" data-s="${sv}" data-act="enable">enable</button>`;
  return `<button class="drain" data-a="${a}" data-s="${sv}" data-act="drain">drain</button>` +
    `<button class="disable" data-a="${a}" data-s="${sv}" data-act="disable">disable</button>`;
}
function renderAttention() {
  const h = stats.heat, rows = [];
  if (selected >= 0 && selected < h.count) rows.push(selected);
  for (let i = 0; i < h.count && rows.length < 60; i++) if (h.states[i] !== "u" && i !== selected) rows.push(i);
  $("#attention-title").textContent = rows.length > (selected >= 0 ? 1 : 0) ? "Needs attention" : "Busiest backends";
  if (rows.length < 8) {
    const busy = [...Array(h.count).keys()].filter((i) => h.states[i] === "u" && !rows.includes(i))
      .sort((a, b) => (h.rate[b] + h.active[b]) - (h.rate[a] + h.active[a])).slice(0, 8 - rows.length);
    rows.push(...busy);
  }
  $("#attention").innerHTML = rows.map((i) => {
    const state = STATE[h.states[i]];
    return `<li${i === selected ? ' style="background:rgba(34,211,238,.08)"' : ""}><span class="st ${state}">${state}</span>` +
      `<span class="a grow">${esc(names[i] || "#" + i)}${stats.services.length > 1 ? ` <span style="color:var(--dim)">${esc(services[i] || "")}</span>` : ""}</span>` +
      `<span style="color:var(--dim)">${fmtNum(h.active[i])} act</span>${buttons(i, state)}</li>`;
  }).join("") || `<li class="empty">all backends up</li>`;
}
$("#attention").addEventListener("click", (ev) => {
  const b = ev.target.closest("button"); if (b && b.dataset.a) act(b.dataset.a, b.dataset.act, b.dataset.s);
});
function find() {
  const q = $("#find").value.trim(); if (!q) return;
  const i = names.findIndex((a) => a === q || a.includes(q));
  if (i < 0) { flash(`no backend matches ${q}`, true); return; }
  selected = i; render();
}
$("#findbtn").onclick = find;
$("#find").addEventListener("keydown", (e) => { if (e.key === "Enter") find(); });
window.addEventListener("resize", () => { if (stats) render(); });

refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""##
}
