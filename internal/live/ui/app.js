'use strict';
// agaobs live view. Renders what /ui/ws sends (docs/live.md, schema v1):
// a snapshot on connect, then one frame per second. Plain script, no build
// step and no framework: the agent embeds this file as it is (go:embed).
//
// Flow: connect() -> onMessage() -> applySnapshot/applyFrame/applyLayers
// update the model (state, hist, heat) -> render() writes the DOM and
// the chart data -> the test hook records when that was done.

const PROTOCOL = 1;
const SECTIONS = ['header', 'producers', 'alerts', 'gpus', 'ebpf', 'audit', 'sinks'];
const SERIES = ['rate', 'p50_us', 'p99_us', 'gate', 'entropy', 'ret_results', 'ret_injected',
  'kv_util', 'slot_changes', 'drops'];
const DEFAULT_HISTORY_S = 900;
const APPLIED_MAX = 1000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;
const DASH = '–'; // how every null shows

// ---- Model

// state holds the last version of each section exactly as received: a frame
// carries a section only when it changed.
const state = {};
// hist holds, per producer, one array per series for the seconds
// t0 … t0+n-1 (the snapshot's layout, extended by each frame).
let hist = { t0: 0, n: 0, producers: {} };
let xs = []; // the seconds of hist, the x values of the charts
let historyS = DEFAULT_HISTORY_S;
let lastSeen = {}; // producer -> last second with any data (to forget gone producers)
// heat is the per-layer p99 of the focused producer: rows[i] is layer ids[i]
// for the seconds t0 … t0+n-1.
let heat = emptyHeat(null);
let focused = null;
let nodeRate = null; // sum of the last second's forward rate over producers
let counters = { connected: false, snapshots: 0, frames: 0, lastT: null };
const applied = [];

// window.agaobsLive is a read-only hook for the Go browser tests: getters
// over the page's own objects, so a test sees exactly what the page holds.
//   connected  the WebSocket is open
//   snapshots, frames  messages applied
//   lastT      t of the last snapshot or frame
//   applied    the last 1000 {t, at, kind}: at = Date.now() once the DOM and
//              the chart data were updated for the message of second t,
//              kind 'snapshot' or 'frame'
//   state      the sections (header, producers, …) as last received
//   history    {t0, n, producers: {name: {series: [n values]}}}
//   focused    the producer the charts show
window.agaobsLive = Object.freeze({
  get connected() { return counters.connected; },
  get snapshots() { return counters.snapshots; },
  get frames() { return counters.frames; },
  get lastT() { return counters.lastT; },
  get applied() { return applied; },
  get state() { return state; },
  get history() { return hist; },
  get focused() { return focused; },
});

function emptyHeat(producer) {
  return { producer, t0: 0, n: 0, ids: [], rows: [], loaded: false };
}

function nulls(n) {
  return new Array(Math.max(0, n)).fill(null);
}

// fitLength pads with nulls at the front or drops the oldest values so that
// a server array always has exactly n values.
function fitLength(a, n) {
  if (!Array.isArray(a)) return nulls(n);
  if (a.length === n) return a;
  if (a.length > n) return a.slice(a.length - n);
  return nulls(n - a.length).concat(a);
}

// ---- Messages

function applySnapshot(m) {
  for (const s of SECTIONS) state[s] = m[s] ?? null;
  historyS = m.history_s || DEFAULT_HISTORY_S;
  const h = m.history || {};
  const n = Math.max(0, h.n | 0);
  hist = { t0: h.t0 ?? m.t - n + 1, n, producers: {} };
  xs = Array.from({ length: n }, (_, i) => hist.t0 + i);
  lastSeen = {};
  for (const [name, ser] of Object.entries(h.producers || {})) {
    const p = {};
    for (const k of SERIES) p[k] = fitLength(ser[k], n);
    hist.producers[name] = p;
    lastSeen[name] = lastDataSecond(p, hist.t0, n);
  }
  trimHistory();
  nodeRate = sumLast('rate');
  counters.snapshots++;
  counters.lastT = m.t ?? hist.t0 + hist.n - 1;
  // A new connection starts from scratch: ask again for the layers.
  focused = pickFocus();
  heat = emptyHeat(focused);
  requestLayers();
}

function applyFrame(m) {
  for (const s of SECTIONS) if (s in m) state[s] = m[s];
  const points = m.points || {};
  appendSecond(m.t, points);
  trimHistory();
  let sum = null;
  for (const p of Object.values(points)) {
    if (p && typeof p.rate === 'number') sum = (sum ?? 0) + p.rate;
  }
  nodeRate = sum;
  const col = m.layers && focused ? m.layers[focused] : null;
  if (heat.producer === focused) heatAppend(m.t, col);
  counters.frames++;
  counters.lastT = m.t;
  const f = pickFocus();
  if (f !== focused) setFocus(f);
}

function applyLayers(m) {
  if (m.producer !== focused) return; // an answer to an older focus
  const n = Math.max(0, m.n | 0);
  const ids = Array.isArray(m.ids) ? m.ids.map(String) : [];
  const rows = ids.map((_, i) => fitLength((m.p99_us || [])[i], n));
  // Frames that arrived before the answer were counted in it already; the
  // ones after it extend it (heatAppend ignores seconds it holds).
  heat = { producer: m.producer, t0: m.t0 ?? 0, n, ids: [], rows: [], loaded: true };
  const order = sortLayerIndexes(ids);
  heat.ids = order.map((i) => ids[i]);
  heat.rows = order.map((i) => rows[i]);
  trimHeat();
}

// appendSecond adds second t to every producer's series: the frame's value
// where there is one, null otherwise (also for skipped seconds).
function appendSecond(t, points) {
  if (typeof t !== 'number') return;
  if (hist.n === 0) hist.t0 = t;
  let next = hist.t0 + hist.n;
  if (t < next) return; // a second we hold already
  if (t - next >= historyS) { // away longer than the window: start empty
    hist = { t0: t, n: 0, producers: Object.fromEntries(Object.keys(hist.producers).map((k) => [k, blankSeries(0)])) };
    xs = [];
    next = t;
  }
  for (const name of Object.keys(points)) {
    if (!hist.producers[name]) hist.producers[name] = blankSeries(hist.n);
  }
  for (let s = next; s <= t; s++) {
    xs.push(s);
    for (const [name, ser] of Object.entries(hist.producers)) {
      const p = s === t ? points[name] : null;
      let any = false;
      for (const k of SERIES) {
        const v = p && typeof p[k] === 'number' ? p[k] : null;
        if (v !== null) any = true;
        ser[k].push(v);
      }
      if (any) lastSeen[name] = s;
    }
  }
  hist.n += t - next + 1;
}

function blankSeries(n) {
  const p = {};
  for (const k of SERIES) p[k] = nulls(n);
  return p;
}

// trimHistory drops the seconds older than the window, and the producers
// that had no data in it and are no longer listed.
function trimHistory() {
  const drop = hist.n - historyS;
  if (drop > 0) {
    xs.splice(0, drop);
    for (const ser of Object.values(hist.producers)) {
      for (const k of SERIES) ser[k].splice(0, drop);
    }
    hist.t0 += drop;
    hist.n -= drop;
  }
  const listed = new Set(list(state.producers).map((p) => p.name));
  for (const name of Object.keys(hist.producers)) {
    const seen = lastSeen[name];
    if (!listed.has(name) && (seen == null || seen < hist.t0)) {
      delete hist.producers[name];
      delete lastSeen[name];
    }
  }
}

function lastDataSecond(p, t0, n) {
  for (let i = n - 1; i >= 0; i--) {
    for (const k of SERIES) if (p[k][i] !== null) return t0 + i;
  }
  return null;
}

function sumLast(key) {
  let sum = null;
  for (const ser of Object.values(hist.producers)) {
    const v = ser[key][hist.n - 1];
    if (typeof v === 'number') sum = (sum ?? 0) + v;
  }
  return sum;
}

// heatAppend adds second t of the focused producer's layers (col may be
// null: no forward in that second), adding rows for new layer ids.
function heatAppend(t, col) {
  if (typeof t !== 'number') return;
  if (heat.n === 0) heat.t0 = t;
  let next = heat.t0 + heat.n;
  if (t < next) return;
  if (t - next >= historyS) {
    heat.rows = heat.rows.map(() => []);
    heat.t0 = t; heat.n = 0; next = t;
  }
  const ids = col && Array.isArray(col.ids) ? col.ids.map(String) : [];
  const vals = col && Array.isArray(col.p99_us) ? col.p99_us : [];
  const byId = new Map(ids.map((id, i) => [id, vals[i]]));
  let added = false;
  for (const id of ids) {
    if (!heat.ids.includes(id)) { heat.ids.push(id); heat.rows.push(nulls(heat.n)); added = true; }
  }
  if (added) {
    const order = sortLayerIndexes(heat.ids);
    heat.ids = order.map((i) => heat.ids[i]);
    heat.rows = order.map((i) => heat.rows[i]);
  }
  for (let s = next; s <= t; s++) {
    heat.ids.forEach((id, i) => {
      const v = s === t ? byId.get(id) : null;
      heat.rows[i].push(typeof v === 'number' ? v : null);
    });
  }
  heat.n += t - next + 1;
  trimHeat();
}

function trimHeat() {
  const drop = heat.n - historyS;
  if (drop <= 0) return;
  for (const r of heat.rows) r.splice(0, drop);
  heat.t0 += drop;
  heat.n -= drop;
}

// Layer ids are numbers as text; "other" (layers beyond the cap) goes last.
function sortLayerIndexes(ids) {
  const rank = (id) => (id === 'other' ? Infinity : Number.isFinite(+id) ? +id : Infinity);
  return ids.map((_, i) => i).sort((a, b) => rank(ids[a]) - rank(ids[b]) ||
    String(ids[a]).localeCompare(String(ids[b])));
}

// pickFocus keeps the focused producer while it exists, else takes the
// first producer by name.
function pickFocus() {
  const names = new Set([...list(state.producers).map((p) => p.name), ...Object.keys(hist.producers)]);
  if (focused != null && names.has(focused)) return focused;
  return [...names].sort()[0] ?? null;
}

function setFocus(name) {
  if (name === focused) return;
  focused = name;
  heat = emptyHeat(name);
  requestLayers();
}

// requestLayers asks for the focused producer's per-layer history; the
// answer (a layers message) fills the heatmap.
function requestLayers() {
  if (focused) send({ type: 'focus', producer: focused });
}

// ---- Connection

let ws = null;
let stopped = false;
let retryMs = RETRY_MIN_MS;
let retryAt = 0;
let retryTimer = 0;
let closeNote = ''; // why the last connection closed, shown while waiting
let closeCode = 0;

function wsURL() {
  // Relative to the page: works through a port-forward, a path prefix, TLS.
  const u = new URL('ws', location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

function connect() {
  if (stopped) return;
  setConn('connecting', 'connecting…');
  const sock = new WebSocket(wsURL());
  ws = sock;
  sock.onopen = () => {
    counters.connected = true;
    closeNote = '';
    setConn('ok', 'connected');
  };
  sock.onmessage = (ev) => { if (ws === sock) onMessage(ev.data); };
  // onerror is always followed by onclose, where the retry is scheduled.
  sock.onerror = () => {};
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    ws = null;
    counters.connected = false;
    if (stopped) return;
    closeNote = describeClose(ev);
    closeCode = ev.code;
    scheduleReconnect(ev.code === 1013 ? RETRY_MAX_MS : retryMs);
  };
}

function describeClose(ev) {
  // The agent's reason for 1013 already says "too many viewers".
  if (ev.code === 1013) return ev.reason || 'too many viewers';
  if (ev.code === 1008) return `disconnected: too slow${ev.reason ? ` (${ev.reason})` : ''}`;
  return ev.reason ? `closed: ${ev.reason}` : 'disconnected';
}

function scheduleReconnect(delay) {
  retryAt = Date.now() + delay;
  retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, delay);
  tickConn();
}

// tickConn counts the reconnect delay down on the page, once a second.
function tickConn() {
  if (ws || stopped) return;
  const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
  setConn(closeCode === 1013 ? 'bad' : 'warn', `${closeNote} · reconnecting in ${s} s`);
  if (s > 0) setTimeout(tickConn, 250);
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

function halt(message) {
  stopped = true;
  clearTimeout(retryTimer);
  if (ws) { const s = ws; ws = null; s.close(1000); }
  counters.connected = false;
  setConn('bad', 'stopped');
  const b = $('banner');
  b.textContent = message;
  b.hidden = false;
}

function onMessage(data) {
  let m;
  try {
    m = JSON.parse(data);
  } catch (e) {
    halt(`The agent sent a message that is not JSON (${e.message}); the page stopped.`);
    return;
  }
  if (m.v !== PROTOCOL) {
    halt(`The agent speaks live protocol version ${m.v}; this page knows version ${PROTOCOL}. ` +
      'It stopped; reload the page to get the version the agent serves.');
    return;
  }
  switch (m.type) {
    case 'snapshot':
      retryMs = RETRY_MIN_MS; // a working connection resets the backoff
      applySnapshot(m);
      render();
      record(m.t, 'snapshot');
      break;
    case 'frame':
      applyFrame(m);
      render();
      record(m.t, 'frame');
      break;
    case 'layers':
      applyLayers(m);
      drawHeat();
      break;
    default: // types may be added within a version: ignore them
  }
}

function record(t, kind) {
  applied.push({ t, at: Date.now(), kind });
  if (applied.length > APPLIED_MAX) applied.splice(0, applied.length - APPLIED_MAX);
}

// ---- Formatting: every null, undefined or NaN is a dash.

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

// fmtNum: 3 significant digits, k/M/G above a thousand (1.2k, 34M).
function fmtNum(v) {
  if (!isNum(v)) return DASH;
  const a = Math.abs(v);
  for (const [div, unit] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (a >= div * 0.9995) return trim(v / div) + unit;
  }
  return trim(v);
}

function trim(v) {
  if (v === 0) return '0';
  if (Math.abs(v) >= 100) return String(Math.round(v));
  return String(+v.toPrecision(3));
}

function fmtInt(v) {
  return isNum(v) ? Math.round(v).toLocaleString('en-US') : DASH;
}

function fmtBytes(v) {
  if (!isNum(v)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : trim(v)} ${units[i]}`;
}

// fmtUs: a latency in µs as µs, ms or s (850 µs, 1.2 ms).
function fmtUs(v) {
  if (!isNum(v)) return DASH;
  const a = Math.abs(v);
  if (a >= 1e6 * 0.9995) return `${trim(v / 1e6)} s`;
  if (a >= 999.5) return `${trim(v / 1e3)} ms`;
  return `${trim(v)} µs`;
}

const fmtSec = (v) => (v === 0 ? '0 s' : isNum(v) ? (Math.abs(v) < 60 ? fmtUs(v * 1e6) : fmtDur(v)) : DASH);

// fmtDur: a duration in seconds, two units at most (3d 4h, 5m 12s).
function fmtDur(s) {
  if (!isNum(s)) return DASH;
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${s} s`;
}

// fmtPct: a 0..1 ratio in %, a sliver as "<0.1 %".
function fmtPct(v) {
  if (!isNum(v)) return DASH;
  const p = v * 100;
  return p !== 0 && Math.abs(p) < 0.1 ? `${p < 0 ? '>-' : '<'}0.1 %` : `${trim(p)} %`;
}
const fmtObjective = (v) => (isNum(v) ? `${+(v * 100).toPrecision(6)} %` : DASH);

// Times come as RFC 3339 text or Unix seconds.
function toMs(v) {
  if (isNum(v)) return v < 1e11 ? v * 1000 : v;
  if (typeof v === 'string' && v) return Date.parse(v);
  return NaN;
}

const pad2 = (n) => String(n).padStart(2, '0');

function fmtClock(ms) {
  if (!isNum(ms)) return DASH;
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

// Relative times are measured against the agent's clock (the last frame's
// t), so a skewed workstation clock does not make "-3 s ago".
function nowMs() {
  return counters.lastT != null ? counters.lastT * 1000 : Date.now();
}

function fmtAgo(v) {
  const ms = toMs(v);
  return isNum(ms) ? `${fmtDur((nowMs() - ms) / 1000)} ago` : DASH;
}

function fmtIso(v) {
  const ms = toMs(v);
  return isNum(ms) ? new Date(ms).toISOString() : '';
}

const fmtText = (v) => (v == null || v === '' ? DASH : String(v));

// An alert's value and threshold take their unit from the metric name
// (latency_p99 is in µs, knowledge_utilization a ratio).
function fmtMetric(metric, v) {
  const m = String(metric || '');
  if (/latency|_us$/.test(m)) return fmtUs(v);
  if (/_seconds$/.test(m)) return fmtSec(v);
  if (/_bytes$/.test(m)) return fmtBytes(v);
  if (/utilization|_ratio$/.test(m)) return fmtPct(v);
  return fmtNum(v);
}

const shortHash = (h) => (typeof h === 'string' && h.length > 12 ? `${h.slice(0, 12)}…` : fmtText(h));

// ---- DOM helpers

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function setText(e, s) {
  if (e.textContent !== s) e.textContent = s;
}

function setAttr(e, k, v) {
  if (v == null || v === '') { if (e.hasAttribute(k)) e.removeAttribute(k); } else if (e.getAttribute(k) !== v) e.setAttribute(k, v);
}

// setCell writes what a column's render returned: text, or
// {text, cls, title, bar (0..1 drawn under the text), pill (a status
// badge: the text in a coloured span of class pill)}.
function setCell(td, v, base) {
  const o = typeof v === 'object' && v !== null ? v : { text: v };
  if (o.pill) {
    let span = td.firstElementChild;
    if (!span) { span = el('span'); td.replaceChildren(span); }
    setText(span, o.text ?? DASH);
    const pc = `st ${o.pill}`;
    if (span.className !== pc) span.className = pc;
  } else {
    if (td.firstElementChild) td.textContent = '';
    setText(td, o.text ?? DASH);
  }
  const cls = [base, o.cls, o.bar != null ? 'bar' : ''].filter(Boolean).join(' ');
  if (td.className !== cls) td.className = cls;
  setAttr(td, 'title', o.title);
  const bar = o.bar != null ? String(Math.max(0, Math.min(1, o.bar))) : '';
  if (td.style.getPropertyValue('--v') !== bar) td.style.setProperty('--v', bar);
}

// makeTable writes the header of a table from its columns; a column is
// {key, label, render(item), cls ('num' aligns right), sort}.
function makeTable(table, cols, onSort) {
  const tr = el('tr');
  for (const c of cols) {
    const th = el('th', { scope: 'col', 'data-col': c.key, class: c.cls || '' });
    if (onSort) {
      th.setAttribute('aria-sort', 'none');
      th.append(el('button', { type: 'button', text: c.label }));
      th.firstChild.addEventListener('click', () => onSort(c.key));
    } else {
      th.textContent = c.label;
    }
    if (c.hint) th.title = c.hint;
    tr.append(th);
  }
  table.tHead.replaceChildren(tr);
}

// syncRows makes tbody show items, reusing the row of each key: only
// changed cells are written, and a row with keyboard focus keeps it.
function syncRows(tbody, items, key, cols, opts = {}) {
  if (!items.length) {
    const msg = counters.snapshots ? opts.empty || 'none' : 'waiting for the agent…';
    if (!tbody.rows.length || !tbody.rows[0].classList.contains('empty') || tbody.rows[0].textContent !== msg) {
      tbody.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: cols.length, text: msg })));
    }
    tbody.rowsByKey = new Map();
    return;
  }
  const old = tbody.rowsByKey || new Map();
  const rows = new Map();
  for (const item of items) {
    const k = String(key(item));
    if (rows.has(k)) continue; // duplicate key: show the first
    let tr = old.get(k);
    if (!tr) {
      tr = el('tr');
      for (const c of cols) tr.append(el('td', { 'data-col': c.key }));
      if (opts.init) opts.init(tr, k);
    }
    cols.forEach((c, j) => setCell(tr.cells[j], c.render(item), c.cls));
    if (opts.update) opts.update(tr, k, item);
    rows.set(k, tr);
  }
  const want = [...rows.values()];
  const same = want.length === tbody.rows.length && want.every((tr, i) => tbody.rows[i] === tr);
  if (!same) {
    const active = document.activeElement;
    tbody.replaceChildren(...want);
    if (active && want.includes(active)) active.focus({ preventScroll: true });
  }
  tbody.rowsByKey = rows;
}

const list = (v) => (Array.isArray(v) ? v : []);

// ---- Sections

const STATE_CLASS = {
  live: 'ok', running: 'ok', healthy: 'ok', initialising: 'info', init: 'info', closed: 'muted',
  degraded: 'warn', dead: 'bad', rejected: 'bad', quarantined: 'bad', unhealthy: 'bad',
};
const badge = (s) => ({ text: fmtText(s), pill: s == null ? null : STATE_CLASS[s] || 'muted' });

function renderHeader() {
  const h = state.header || {};
  setText($('node'), fmtText(h.node));
  setText($('version'), h.version ? `agent ${h.version}` : DASH);
  setText($('uptime'), fmtDur(h.uptime_s));
  setAttr($('uptime'), 'title', h.started_at ? `started ${fmtIso(h.started_at)}` : '');
  const health = h.health || {};
  const hs = $('health');
  setText(hs, fmtText(health.status));
  hs.className = `st ${STATE_CLASS[health.status] || 'muted'}`;
  renderFailing(list(health.failing));
  setCount($('alerts-firing'), h.alerts_firing, 'bad');
  setCount($('alerts-pending'), h.alerts_pending, 'warn');
  setText($('viewers'), fmtInt(h.viewers));
  document.title = h.node ? `${h.node} · agaobs live` : 'agaobs live';
}

// renderFailing lists the failing health checks, rebuilt only when they
// change (the header comes every second for the uptime).
function renderFailing(failing) {
  const ul = $('failing');
  const key = JSON.stringify(failing);
  if (ul.dataset.key === key) return;
  ul.dataset.key = key;
  ul.replaceChildren(...failing.map((f) => el('li', {},
    el('span', { class: `st ${STATE_CLASS[f.status] || 'bad'}`, text: fmtText(f.status) }), ' ',
    el('b', { text: fmtText(f.name) }), f.message ? ` ${f.message}` : '')));
  ul.hidden = !failing.length;
}

function setCount(e, v, cls) {
  setText(e, fmtInt(v));
  e.className = isNum(v) && v > 0 ? `count ${cls}` : 'count';
}

function setConn(cls, text) {
  const c = $('conn');
  setText(c, text);
  c.className = `st ${cls}`;
  document.body.classList.toggle('stale', cls !== 'ok');
}

// ---- Producers

const PRODUCER_COLS = [
  { key: 'name', label: 'name', render: (p) => fmtText(p.name) },
  { key: 'state', label: 'state', render: (p) => badge(p.state) },
  { key: 'pid', label: 'pid', cls: 'num', render: (p) => (p.pid > 0 ? String(p.pid) : DASH) },
  { key: 'model', label: 'model', render: (p) => fmtText(p.model) },
  { key: 'pod', label: 'pod', render: (p) => ({ text: fmtText(p.pod), title: p.namespace ? `${p.namespace}/${p.pod ?? ''}` : '' }) },
  { key: 'fill', label: 'ring fill', cls: 'num', hint: 'highest ring fill',
    render: (p) => ({ text: fmtPct(p.fill), bar: isNum(p.fill) ? p.fill : null, cls: p.fill >= 0.9 ? 'bad' : p.fill >= 0.7 ? 'warn' : '' }) },
  { key: 'events_per_s', label: 'events/s', cls: 'num', render: (p) => fmtNum(p.events_per_s) },
  { key: 'dropped', label: 'drops', cls: 'num', hint: 'records dropped (total)',
    render: (p) => ({ text: fmtNum(p.dropped), cls: p.dropped > 0 ? 'bad' : '' }) },
  { key: 'heartbeat_age_s', label: 'heartbeat age', cls: 'num', hint: 'age of the newest heartbeat',
    render: (p) => ({ text: fmtSec(p.heartbeat_age_s), cls: p.heartbeat_age_s >= 5 ? 'warn' : '' }) },
  { key: 'gpu_mem_bytes', label: 'GPU mem', cls: 'num', render: (p) => fmtBytes(p.gpu_mem_bytes) },
];

const sort = { key: 'name', dir: 1 };

function onSortProducers(key) {
  sort.dir = sort.key === key ? -sort.dir : 1;
  sort.key = key;
  renderProducers();
}

// Nulls sort last in both directions.
function compareBy(key, dir) {
  return (a, b) => {
    const x = a[key], y = b[key];
    if (x == null || y == null) return (x == null) - (y == null);
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), 'en', { numeric: true });
    return c * dir || String(a.name).localeCompare(String(b.name));
  };
}

function renderProducers() {
  const table = $('producers-table');
  for (const th of table.tHead.rows[0].cells) {
    th.setAttribute('aria-sort', th.dataset.col === sort.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
  const items = list(state.producers).slice().sort(compareBy(sort.key, sort.dir));
  syncRows(table.tBodies[0], items, (p) => p.name, PRODUCER_COLS, {
    empty: 'no producer',
    init: (tr, name) => {
      tr.dataset.producer = name;
      tr.tabIndex = 0;
    },
    update: (tr, name) => setAttr(tr, 'aria-current', name === focused ? 'true' : null),
  });
  setText($('producer-count'), String(list(state.producers).length));
}

// A click, Enter or Space on a row focuses that producer; arrows move
// between rows.
function onProducerKey(ev) {
  const tr = ev.target.closest('tr[data-producer]');
  if (!tr) return;
  if (ev.type === 'click' || ev.key === 'Enter' || ev.key === ' ') {
    ev.preventDefault();
    setFocus(tr.dataset.producer);
    render();
  } else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
    const next = ev.key === 'ArrowDown' ? tr.nextElementSibling : tr.previousElementSibling;
    if (next && next.dataset.producer) { ev.preventDefault(); next.focus(); }
  }
}

// ---- Alerts

const ALERT_COLS = [
  { key: 'state', label: 'state', render: (a) => ({ text: fmtText(a.state), pill: a.state === 'firing' ? 'bad' : 'warn' }) },
  { key: 'severity', label: 'severity', render: (a) => ({ text: fmtText(a.severity), cls: `sev ${a.severity === 'critical' ? 'bad' : a.severity === 'warning' ? 'warn' : 'info'}` }) },
  { key: 'rule', label: 'rule', render: (a) => ({ text: fmtText(a.rule), title: a.message || '' }) },
  { key: 'producer', label: 'producer', render: (a) => fmtText(a.producer) },
  { key: 'value', label: 'value', cls: 'num', render: (a) => ({ text: fmtMetric(a.metric, a.value), title: a.metric || '' }) },
  { key: 'threshold', label: 'threshold', cls: 'num', render: (a) => fmtMetric(a.metric, a.threshold) },
  { key: 'since', label: 'since', cls: 'num', render: (a) => ({ text: fmtAgo(a.since), title: fmtIso(a.since) }) },
];

const SEV_RANK = { critical: 0, warning: 1, info: 2 };

const SLO_COLS = [
  { key: 'name', label: 'SLO', render: (s) => fmtText(s.name) },
  { key: 'producer', label: 'producer', render: (s) => fmtText(s.producer) },
  { key: 'objective', label: 'objective', cls: 'num', render: (s) => fmtObjective(s.objective) },
  { key: 'budget_remaining', label: 'error budget left', cls: 'num budget', render: (s) => ({
    text: fmtPct(s.budget_remaining),
    bar: isNum(s.budget_remaining) ? s.budget_remaining : null,
    cls: !isNum(s.budget_remaining) ? '' : s.budget_remaining <= 0 ? 'bad' : s.budget_remaining < 0.25 ? 'warn' : 'ok',
  }) },
];

function renderAlerts() {
  const a = state.alerts || {};
  const active = list(a.active).slice().sort((x, y) => (x.state === 'firing' ? 0 : 1) - (y.state === 'firing' ? 0 : 1) ||
    (SEV_RANK[x.severity] ?? 3) - (SEV_RANK[y.severity] ?? 3) || String(x.rule).localeCompare(String(y.rule)));
  syncRows($('alerts-table').tBodies[0], active, (x) => `${x.rule}\u0000${x.producer ?? ''}`, ALERT_COLS, { empty: 'no pending or firing alert' });
  syncRows($('slo-table').tBodies[0], list(a.slo), (s) => `${s.name}\u0000${s.producer ?? ''}`, SLO_COLS, { empty: 'no SLO' });
}

// ---- GPUs, eBPF, sinks

// XIDs come as {xid, count, last}: "79 ×3, 31", the last times in the title.
function fmtXids(x) {
  const xs = list(x).map((e) => (e && typeof e === 'object' ? e : { xid: e }));
  return {
    text: xs.length ? xs.map((e) => fmtText(e.xid) + (e.count > 1 ? ` ×${e.count}` : '')).join(', ') : DASH,
    title: xs.map((e) => `XID ${e.xid}: last ${fmtIso(e.last) || DASH}`).join('\n'),
    cls: xs.length ? 'bad' : '',
  };
}

const GPU_COLS = [
  { key: 'index', label: '#', cls: 'num', render: (g) => fmtText(g.index) },
  { key: 'name', label: 'name', render: (g) => ({ text: fmtText(g.name), title: g.uuid || '' }) },
  { key: 'util', label: 'util', cls: 'num', render: (g) => ({ text: fmtPct(g.util), bar: isNum(g.util) ? g.util : null }) },
  { key: 'mem', label: 'memory', cls: 'num', render: (g) => ({
    text: `${fmtBytes(g.mem_used_bytes)} / ${fmtBytes(g.mem_total_bytes)}`,
    bar: isNum(g.mem_used_bytes) && g.mem_total_bytes > 0 ? g.mem_used_bytes / g.mem_total_bytes : null,
  }) },
  { key: 'temp_c', label: 'temp', cls: 'num', render: (g) => ({ text: isNum(g.temp_c) ? `${trim(g.temp_c)} °C` : DASH, cls: g.temp_c >= 85 ? 'bad' : g.temp_c >= 80 ? 'warn' : '' }) },
  { key: 'power_w', label: 'power', cls: 'num', render: (g) => (isNum(g.power_w) ? `${trim(g.power_w)} W` : DASH) },
  { key: 'xids', label: 'last XIDs', render: (g) => fmtXids(g.xids) },
];

const pair = (a, b) => (isNum(a) || isNum(b) ? `${fmtUs(a)} / ${fmtUs(b)}` : DASH);

const EBPF_COLS = [
  { key: 'producer', label: 'producer', render: (e) => fmtText(e.producer) },
  { key: 'offcpu', label: 'off-CPU', cls: 'num', render: (e) => pair(e.offcpu_p50_us, e.offcpu_p99_us) },
  { key: 'runq', label: 'run queue', cls: 'num', render: (e) => pair(e.runq_p50_us, e.runq_p99_us) },
  { key: 'gc', label: 'GC pause', cls: 'num', render: (e) => pair(e.gc_p50_us, e.gc_p99_us) },
  { key: 'cuda_sync', label: 'CUDA sync', cls: 'num', render: (e) => pair(e.cuda_sync_p50_us, e.cuda_sync_p99_us) },
];

const SINK_COLS = [
  { key: 'name', label: 'sink', render: (s) => fmtText(s.name) },
  { key: 'queue', label: 'queue', cls: 'num', render: (s) => {
    const f = isNum(s.queue_len) && s.queue_cap > 0 ? s.queue_len / s.queue_cap : null;
    return { text: `${fmtNum(s.queue_len)} / ${fmtNum(s.queue_cap)}`, bar: f, cls: f >= 0.9 ? 'bad' : f >= 0.7 ? 'warn' : '' };
  } },
  { key: 'dropped', label: 'dropped', cls: 'num', render: (s) => ({ text: fmtNum(s.dropped), cls: s.dropped > 0 ? 'bad' : '' }) },
  { key: 'errors', label: 'errors', cls: 'num', render: (s) => ({ text: fmtNum(s.errors), cls: s.errors > 0 ? 'warn' : '' }) },
];

function renderGpus() {
  syncRows($('gpus-table').tBodies[0], list(state.gpus), (g) => g.uuid ?? g.index, GPU_COLS, { empty: 'no GPU' });
}

function renderEbpf() {
  syncRows($('ebpf-table').tBodies[0], list(state.ebpf), (e) => e.producer, EBPF_COLS, { empty: 'eBPF probes off' });
}

function renderSinks() {
  const s = state.sinks || {};
  syncRows($('sinks-table').tBodies[0], list(s.sinks), (x) => x.name, SINK_COLS, { empty: 'no sink' });
  setText($('sink-p99'), fmtSec(s.event_to_sink_p99_s));
}

// ---- Audit

const AUDIT_COLS = [
  { key: 'seq', label: 'seq', cls: 'num', render: (r) => fmtText(r.seq) },
  { key: 'time', label: 'time', render: (r) => ({ text: fmtClock(toMs(r.time)), title: fmtIso(r.time) }) },
  { key: 'operation', label: 'operation', render: (r) => fmtText(r.operation) },
  { key: 'producer', label: 'producer', render: (r) => fmtText(r.producer) },
  { key: 'success', label: 'result', render: (r) => (r.success == null ? DASH : { text: r.success ? 'ok' : 'failed', pill: r.success ? 'ok' : 'bad' }) },
  { key: 'hash', label: 'hash', cls: 'mono', render: (r) => ({ text: shortHash(r.hash), title: r.hash || '' }) },
];

function renderAudit() {
  const a = state.audit || {};
  const head = typeof a.head === 'string' ? a.head : '';
  const i = head.indexOf(':');
  const headEl = $('audit-head');
  setText(headEl, head ? (i >= 0 ? `${head.slice(0, i)}:${shortHash(head.slice(i + 1))}` : shortHash(head)) : DASH);
  setAttr(headEl, 'title', head);
  const w = $('audit-writable');
  setText(w, a.writable == null ? DASH : a.writable ? 'yes' : 'no');
  w.className = a.writable === false ? 'st bad' : '';
  setText($('audit-pending'), fmtInt(a.pending));
  const v = a.verify;
  const vr = $('audit-verify');
  if (!v) {
    setText(vr, 'not yet verified');
    vr.className = 'muted';
  } else {
    const ok = v.ok === true;
    setText(vr, `${v.ok == null ? DASH : ok ? 'ok' : 'FAILED'} · ${fmtAgo(v.at)} · ${fmtInt(v.records)} records` +
      (v.error ? ` · ${v.error}` : ''));
    vr.className = `st ${v.ok == null ? 'muted' : ok ? 'ok' : 'bad'}`;
    setAttr(vr, 'title', fmtIso(v.at));
  }
  const tail = list(a.tail).slice().sort((x, y) => (y.seq ?? 0) - (x.seq ?? 0)).slice(0, 20);
  syncRows($('audit-table').tBodies[0], tail, (r) => r.seq ?? r.hash, AUDIT_COLS, { empty: 'no audit record' });
}

function renderFooter() {
  const e = $('node-events-per-s');
  setText(e, nodeRate == null ? DASH : fmtNum(nodeRate));
  setAttr(e, 'data-value', nodeRate == null ? '' : String(nodeRate));
  setText($('last-t'), counters.lastT == null ? DASH : fmtClock(counters.lastT * 1000));
}

// ---- Charts of the focused producer (uPlot)

// Each chart: title and series (history key, label, colour variable,
// formatter, right axis). Ratios and per-call means share no unit with
// counts, so those go on a right axis.
const CHARTS = [
  { id: 'rate', title: 'Forward rate', fmt: fmtNum, zero: true, series: [
    { key: 'rate', label: 'forwards/s', color: '--c1' },
    { key: 'drops', label: 'drops/s', color: '--bad' }] },
  { id: 'latency', title: 'Forward latency', fmt: fmtUs, zero: true, series: [
    { key: 'p50_us', label: 'p50', color: '--c1' },
    { key: 'p99_us', label: 'p99', color: '--c2' }] },
  { id: 'gate', title: 'Gate and entropy', fmt: fmtNum, series: [
    { key: 'gate', label: 'gate mean', color: '--c3' },
    { key: 'entropy', label: 'entropy', color: '--c4', right: true }] },
  { id: 'retrieval', title: 'Retrieval per call', fmt: fmtNum, zero: true, series: [
    { key: 'ret_results', label: 'results', color: '--c1', spanGaps: true },
    { key: 'ret_injected', label: 'injected', color: '--c5', spanGaps: true }] },
  { id: 'kv', title: 'Knowledge store', fmt: fmtPct, zero: true, series: [
    { key: 'kv_util', label: 'KV utilization', color: '--c3', fmt: fmtPct },
    { key: 'slot_changes', label: 'slot changes/s', color: '--c2', right: true, fmt: fmtNum }] },
];
const CHART_HEIGHT = 150;
const AXIS_LEFT = 58;
const AXIS_RIGHT = 46;

let charts = []; // {def, u (the uPlot), values (legend value elements)}

const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function buildCharts() {
  for (const c of charts) c.u.destroy();
  charts = [];
  if (typeof uPlot !== 'function') return; // vendor script missing: tables still work
  const fg = cssVar('--muted'), grid = cssVar('--grid'), font = '11px system-ui, sans-serif';
  const axis = (extra) => ({ stroke: fg, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1, size: 4 }, ...extra });
  for (const def of CHARTS) {
    const box = chartBox(def);
    const plot = box.querySelector('.plot');
    plot.replaceChildren();
    const hasRight = def.series.some((s) => s.right);
    const chart = { def, u: null, values: [...box.querySelectorAll('.legend .val')] };
    // A near-constant series (a gate mean of 0.6) would fill the plot with
    // its noise: the scale spans at least 10 % of its magnitude.
    const range = def.zero ? (u, min, max) => [0, max > 0 ? max * 1.1 : 1] : minSpan;
    const opts = {
      width: Math.max(200, plot.clientWidth),
      height: CHART_HEIGHT,
      legend: { show: false }, // our own legend in the caption, see updateLegend
      cursor: { sync: { key: 'producer' }, drag: { x: false, y: false }, points: { size: 6 } },
      padding: [8, hasRight ? 0 : 14, 0, 0],
      scales: { x: { time: true }, y: { range }, r: { range: def.zero ? range : undefined } },
      axes: [
        axis({ space: 64, size: 28, values: timeTicks }),
        axis({ size: AXIS_LEFT, values: (u, v) => v.map(def.fmt) }),
        ...(hasRight ? [axis({ scale: 'r', side: 1, size: AXIS_RIGHT, grid: { show: false },
          values: (u, v) => v.map((def.series.find((s) => s.right).fmt || fmtNum)) })] : []),
      ],
      series: [{}, ...def.series.map((s) => ({
        label: s.label, scale: s.right ? 'r' : 'y', stroke: cssVar(s.color), width: 1.5,
        spanGaps: !!s.spanGaps, points: { show: false },
      }))],
      hooks: { setCursor: [(u) => updateLegend(chart, u.cursor.idx)] },
    };
    chart.u = new uPlot(opts, chartData(def), plot);
    charts.push(chart);
  }
}

// chartBox returns the figure of a chart, made on first use: a caption
// with the title and a legend entry per series, and the plot. The first
// two charts go before the heatmap, the others after it.
function chartBox(def) {
  let box = $(`chart-${def.id}`);
  if (box) return box;
  const legend = el('span', { class: 'legend' }, ...def.series.map((s) => {
    const swatch = el('i', { class: 'swatch' });
    swatch.style.background = `var(${s.color})`; // CSSOM: allowed by the CSP
    return el('span', { class: 'item' }, swatch, `${s.label} `, el('b', { class: 'val', text: DASH }));
  }));
  box = el('figure', { id: `chart-${def.id}`, class: 'chart' },
    el('figcaption', {}, el('h3', { text: def.title }), legend), el('div', { class: 'plot' }));
  const heatFig = $('heat-fig');
  if (CHARTS.indexOf(def) < 2) heatFig.before(box); else heatFig.parentElement.append(box);
  return box;
}

// Time ticks in 24 h local time, with seconds only when ticks are closer
// than a minute (uPlot's default adds a date line and am/pm).
function timeTicks(u, splits) {
  const step = splits.length > 1 ? splits[1] - splits[0] : 60;
  return splits.map((t) => fmtClock(t * 1000).slice(0, step < 60 ? 8 : 5));
}

function minSpan(u, min, max) {
  if (min == null || max == null) return [0, 1];
  const span = Math.max(max - min, 0.1 * Math.max(Math.abs(min), Math.abs(max)), 1e-3);
  const mid = (min + max) / 2;
  return [mid - span * 0.6, mid + span * 0.6];
}

function chartData(def) {
  const p = hist.producers[focused];
  return [xs, ...def.series.map((s) => (p ? p[s.key] : nulls(xs.length)))];
}

// The caption shows each series' value at the cursor, or the last second
// when the cursor is off the chart.
function updateLegend(chart, idx) {
  if (!chart || !chart.u) return;
  const data = chart.u.data;
  chart.def.series.forEach((s, i) => {
    const arr = data[i + 1] || [];
    // Sparse series (a retrieval is not made every second) look further back.
    const v = idx != null ? arr[idx] : lastValue(arr, s.spanGaps ? 120 : 3);
    const f = s.fmt || chart.def.fmt;
    setText(chart.values[i], f(v));
  });
}

function lastValue(a, back) {
  for (let i = a.length - 1; i >= 0 && i >= a.length - back; i--) if (a[i] != null) return a[i];
  return null;
}

function renderCharts() {
  setText($('focus-name'), focused ?? DASH);
  const p = list(state.producers).find((x) => x.name === focused);
  const st = $('focus-state');
  setText(st, p ? fmtText(p.state) : '');
  st.className = p ? `st ${STATE_CLASS[p.state] || 'muted'}` : '';
  for (const c of charts) {
    c.u.setData(chartData(c.def));
    if (c.u.cursor.idx == null) updateLegend(c, null);
  }
  drawHeat();
}

function resizeCharts() {
  for (const c of charts) {
    const w = Math.max(200, c.u.root.parentElement.clientWidth);
    if (w !== c.u.width) c.u.setSize({ width: w, height: CHART_HEIGHT });
  }
  drawHeat();
}

// ---- Per-layer latency heatmap: layers × seconds on a canvas, one image pixel
// per (layer, second) scaled up, colour by log latency.

const HEAT = { left: AXIS_LEFT, right: 10, top: 4, bottom: 20, maxPlot: 320 };
// A viridis-like scale: readable on dark and light backgrounds.
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const LUT = Array.from({ length: 256 }, (_, i) => {
  const x = (i / 255) * (STOPS.length - 1), j = Math.min(STOPS.length - 2, Math.floor(x)), f = x - j;
  return STOPS[j].map((c, k) => Math.round(c + (STOPS[j + 1][k] - c) * f));
});
let heatGeom = null; // what drawHeat drew, for the tooltip

function drawHeat() {
  const canvas = $('heat');
  const box = canvas.parentElement;
  const rows = heat.ids.length;
  const msg = $('heat-msg');
  const empty = !focused ? 'no producer' : !rows ? (heat.loaded ? 'no per-layer latency for this producer' : 'loading…') : '';
  setText(msg, empty);
  msg.hidden = !empty;
  canvas.hidden = !!empty;
  $('heat-scale').hidden = !!empty;
  if (empty) { heatGeom = null; return; }
  const width = box.clientWidth;
  const rowPx = Math.max(2, Math.min(16, Math.floor(HEAT.maxPlot / rows)));
  const plotW = Math.max(10, width - HEAT.left - HEAT.right), plotH = rows * rowPx;
  const height = plotH + HEAT.top + HEAT.bottom;
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);

  // Colour domain: log of the smallest and largest value shown.
  let lo = Infinity, hi = -Infinity;
  for (const r of heat.rows) for (const v of r) if (v > 0) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!(lo <= hi)) { lo = 1; hi = 10; }
  const llo = Math.log(lo), span = Math.max(1e-9, Math.log(hi) - llo);
  setText($('heat-min'), fmtUs(lo));
  setText($('heat-max'), fmtUs(hi));

  // One pixel per (second, layer) in an offscreen image, then scaled.
  const img = new ImageData(Math.max(1, heat.n), rows);
  heat.rows.forEach((r, y) => {
    for (let x = 0; x < heat.n; x++) {
      const v = r[x];
      if (!(v > 0)) continue;
      const c = LUT[Math.round(((Math.log(v) - llo) / span) * 255)];
      const o = (y * img.width + x) * 4;
      img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
    }
  });
  const off = drawHeat.off || (drawHeat.off = document.createElement('canvas'));
  off.width = img.width; off.height = img.height;
  off.getContext('2d').putImageData(img, 0, 0);

  // The time window is the charts' one, so heatmap and charts read alike.
  const tStart = hist.n ? hist.t0 : heat.t0;
  const tEnd = Math.max(tStart + 1, hist.n ? hist.t0 + hist.n : heat.t0 + heat.n);
  const px = (t) => HEAT.left + ((t - tStart) / (tEnd - tStart)) * plotW;
  ctx.fillStyle = cssVar('--heat-bg');
  ctx.fillRect(HEAT.left, HEAT.top, plotW, plotH);
  ctx.save();
  ctx.beginPath();
  ctx.rect(HEAT.left, HEAT.top, plotW, plotH);
  ctx.clip();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, heat.n, rows, px(heat.t0), HEAT.top, px(heat.t0 + heat.n) - px(heat.t0), plotH);
  ctx.restore();

  // Axes: layer ids on the left (as many as fit), time below.
  ctx.fillStyle = cssVar('--muted');
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  const every = Math.ceil(12 / rowPx);
  const labelled = [];
  for (let i = 0; i < rows; i += every) labelled.push(i);
  // The last row ("other" once layers overflow the cap) always gets its
  // label; the one before goes if the two would touch.
  if (labelled[labelled.length - 1] !== rows - 1) {
    if ((rows - 1 - labelled[labelled.length - 1]) * rowPx < 12) labelled.pop();
    labelled.push(rows - 1);
  }
  for (const i of labelled) {
    const id = heat.ids[i];
    ctx.fillText(id === 'other' ? 'other' : `L${id}`, HEAT.left - 6, HEAT.top + (i + 0.5) * rowPx);
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const span_s = tEnd - tStart;
  const step = [10, 30, 60, 120, 300, 600, 900].find((s) => (plotW / span_s) * s >= 70) || 900;
  for (let t = Math.ceil(tStart / step) * step; t < tEnd; t += step) {
    const x = px(t);
    if (x < HEAT.left + 16 || x > HEAT.left + plotW - 16) continue;
    ctx.fillText(fmtClock(t * 1000).slice(0, step < 60 ? 8 : 5), x, HEAT.top + plotH + 5);
  }
  heatGeom = { rowPx, plotW, plotH, tStart, tEnd };
}

function onHeatHover(ev) {
  const tip = $('heat-tip');
  const g = heatGeom;
  if (!g) { tip.hidden = true; return; }
  const r = ev.currentTarget.getBoundingClientRect();
  const x = ev.clientX - r.left, y = ev.clientY - r.top;
  const row = Math.floor((y - HEAT.top) / g.rowPx);
  const t = Math.floor(g.tStart + ((x - HEAT.left) / g.plotW) * (g.tEnd - g.tStart));
  const col = t - heat.t0;
  if (x < HEAT.left || x > HEAT.left + g.plotW || row < 0 || row >= heat.ids.length || col < 0 || col >= heat.n) {
    tip.hidden = true;
    return;
  }
  const id = heat.ids[row];
  tip.textContent = `${id === 'other' ? 'other layers' : `layer ${id}`} · ${fmtClock(t * 1000)} · p99 ${fmtUs(heat.rows[row][col])}`;
  tip.hidden = false;
  // Keep the tooltip inside the box.
  const bw = ev.currentTarget.parentElement.clientWidth;
  tip.style.left = `${Math.min(x + 12, bw - tip.offsetWidth - 4)}px`;
  tip.style.top = `${Math.max(0, y - 28)}px`;
}

// ---- Render and start

function render() {
  renderHeader();
  renderProducers();
  renderCharts();
  renderAlerts();
  renderGpus();
  renderEbpf();
  renderAudit();
  renderSinks();
  renderFooter();
}

function init() {
  makeTable($('producers-table'), PRODUCER_COLS, onSortProducers);
  makeTable($('alerts-table'), ALERT_COLS);
  makeTable($('slo-table'), SLO_COLS);
  makeTable($('gpus-table'), GPU_COLS);
  makeTable($('ebpf-table'), EBPF_COLS);
  makeTable($('sinks-table'), SINK_COLS);
  makeTable($('audit-table'), AUDIT_COLS);
  const body = $('producers-table').tBodies[0];
  body.addEventListener('click', onProducerKey);
  body.addEventListener('keydown', onProducerKey);
  const canvas = $('heat');
  canvas.addEventListener('mousemove', onHeatHover);
  canvas.addEventListener('mouseleave', () => { $('heat-tip').hidden = true; });
  buildCharts();
  render();

  // Charts follow the width of their panel: on window resize, and when the
  // panel changes width without one (a scrollbar appearing).
  let pending = 0, lastWidth = 0;
  const resize = () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(resizeCharts);
  };
  window.addEventListener('resize', resize);
  new ResizeObserver(() => {
    const w = $('charts').clientWidth;
    if (w !== lastWidth) { lastWidth = w; resize(); }
  }).observe($('charts'));
  // Colours come from CSS variables: rebuild the charts when the scheme flips.
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => { buildCharts(); drawHeat(); });
  connect();
}

init();
