// Vertigo's fleet page: polls the host's read-only API and draws each VM's
// size, usage, decisions and migrations as SVG. No dependencies, no build.
'use strict';

const POLL_MS = 2000;
const FETCH_TIMEOUT_MS = 10000;
const LISTS = ['points', 'decisions', 'migrations'];
const NODE_COLORS = 6; // .n0 to .n5 in style.css

const state = {
  latest: '',         // the history's newest time, as the server wrote it
  limits: null,       // what the host keeps; the page keeps no more
  vms: new Map(),     // name -> {points, decisions, migrations, version}
  status: null,
  error: '',
  updated: null,
  windowS: 900,
};

const $ = (id) => document.getElementById(id);

// --- formatting -----------------------------------------------------------

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);

// Go writes nanoseconds; Date.parse wants at most milliseconds.
const parseTime = (s) => Date.parse(s.replace(/(\.\d{3})\d+/, '$1'));

const pad = (n) => String(n).padStart(2, '0');
const clock = (t) => { const d = new Date(t); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };
const hhmm = (t) => { const d = new Date(t); return `${pad(d.getHours())}:${pad(d.getMinutes())}`; };

function num(x, digits = 2) {
  return Number(x.toFixed(digits)).toString();
}

const vcpus = (milli) => num(milli / 1000);

function bytes(b) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return `${num(b, b < 10 ? 2 : 1)} ${units[i]}`;
}

function duration(ns) {
  const s = ns / 1e9;
  if (s < 1) return `${num(ns / 1e6, 1)} ms`;
  if (s < 120) return `${num(s, 1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

// --- data -----------------------------------------------------------------

async function getJSON(path) {
  const r = await fetch(path, { cache: 'no-store', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${path}: ${body.error || `${r.status} ${r.statusText}`}`);
  return body;
}

// merge appends what the host recorded since the last poll, then trims to
// the host's own limits so a page left open for days stays small.
function merge(h) {
  state.limits = h.limits;
  const listed = new Set();
  for (const s of h.vms) {
    listed.add(s.vm);
    let vm = state.vms.get(s.vm);
    if (!vm) {
      vm = { name: s.vm, points: [], decisions: [], migrations: [], version: 0 };
      state.vms.set(s.vm, vm);
    }
    for (const list of LISTS) {
      for (const x of s[list]) { x.t = parseTime(x.at); vm[list].push(x); vm.version++; }
    }
  }
  for (const name of state.vms.keys()) if (!listed.has(name)) state.vms.delete(name);
  if (h.latest) state.latest = h.latest;
  if (!state.latest) return;
  const cut = parseTime(state.latest) - h.limits.max_age_ns / 1e6;
  for (const vm of state.vms.values()) {
    for (const list of LISTS) {
      const l = vm[list];
      let i = Math.max(0, l.length - h.limits.max_points);
      while (i < l.length && l[i].t < cut) i++;
      if (i > 0) vm[list] = l.slice(i);
    }
  }
}

async function poll() {
  try {
    const since = state.latest ? `?since=${encodeURIComponent(state.latest)}` : '';
    const [history, status] = await Promise.all([getJSON(`/v1/history${since}`), getJSON('/v1/status')]);
    merge(history);
    state.status = status;
    state.error = '';
    state.updated = Date.now();
  } catch (e) {
    state.error = e.message;
  }
  render();
  setTimeout(poll, POLL_MS);
}

// --- fleet summary --------------------------------------------------------

function tile(label, value, detail) {
  return `<div class="tile"><div class="label">${esc(label)}</div><div class="value">${value}</div><div class="detail">${detail}</div></div>`;
}

function renderSummary() {
  const live = $('live');
  live.dataset.state = state.error ? 'error' : state.status ? 'live' : 'connecting';
  live.querySelector('span').textContent = state.error
    ? `not updating: ${state.error}`
    : state.updated ? `live · updated ${clock(state.updated)}` : 'connecting…';
  const st = state.status;
  if (!st) return;
  const vms = st.vms || [];
  const usage = st.usage || {};
  const sum = (f) => vms.reduce((a, vm) => a + f(vm, usage[vm.name]), 0);
  const running = vms.filter((vm) => vm.phase === 'running').length;
  const cpu = sum((vm) => vm.size.vcpu_milli);
  const online = sum((_, u) => (u ? u.online_vcpu_milli : 0));
  const load = sum((_, u) => (u ? u.load1 : 0));
  const mem = sum((vm) => vm.size.memory_bytes);
  const used = sum((_, u) => (u ? u.memory_used : 0));
  const t0 = windowStart();
  let decisions = 0;
  let moves = 0;
  for (const vm of state.vms.values()) {
    decisions += vm.decisions.filter((d) => d.t >= t0 && d.outcome !== 'unchanged').length;
    moves += vm.migrations.filter((m) => m.t >= t0 && m.state === 'completed').length;
  }
  const plugins = st.plugins || [];
  const healthy = plugins.filter((p) => p.healthy).length;
  const active = (st.migrations || []).filter((m) => m.state === 'running').length;
  $('summary').innerHTML = [
    tile('VMs', `${running}<small> / ${vms.length}</small>`, 'running / declared'),
    tile('vCPU', `${vcpus(cpu)}`, `${vcpus(online)} online · load ${num(load)}`),
    tile('Memory', bytes(mem), `${bytes(used)} used by guests`),
    tile('Scaling', `${decisions}`, `decisions in ${windowLabel()} · ${moves} migration${moves === 1 ? '' : 's'}${active ? ` · ${active} running` : ''}`),
    tile('Plugins', `${healthy}<small> / ${plugins.length}</small>`, healthy === plugins.length ? 'healthy' : 'some unhealthy'),
  ].join('');
  $('nodes').innerHTML = (st.nodes || []).map((n) => {
    const bar = (label, used, cap, fmt) => {
      const pct = cap > 0 ? Math.min(100, (100 * used) / cap) : 0;
      const over = pct > 100 * n.watermark ? ' over' : '';
      return `<div class="bar${over}"><span class="bar-label">${label}</span><svg viewBox="0 0 100 8" preserveAspectRatio="none"><rect class="track" width="100" height="8"/><rect class="fill" width="${pct.toFixed(2)}" height="8"/><line class="watermark" x1="${100 * n.watermark}" x2="${100 * n.watermark}" y1="0" y2="8"/></svg><span class="bar-value">${fmt(used)} / ${fmt(cap)}</span></div>`;
    };
    return `<div class="node"><div class="node-name"><i class="swatch n${nodeIndex(n.name)}"></i>${esc(n.name)}<span>${(n.vms || []).length} VM${(n.vms || []).length === 1 ? '' : 's'}</span></div>`
      + bar('vCPU', n.reserved.vcpu_milli, n.capacity.vcpu_milli, vcpus)
      + bar('mem', n.reserved.memory_bytes, n.capacity.memory_bytes, bytes) + '</div>';
  }).join('');
}

function nodeIndex(name) {
  const names = ((state.status && state.status.nodes) || []).map((n) => n.name).sort();
  const i = names.indexOf(name);
  return (i < 0 ? names.length : i) % NODE_COLORS;
}

// --- charts ---------------------------------------------------------------

const windowLabel = () => $('window').selectedOptions[0].textContent;
const windowEnd = () => (state.latest ? parseTime(state.latest) : Date.now());

// windowStart is the chosen window's start, or the oldest point when the
// history is shorter, so that a young fleet fills the charts.
function windowStart() {
  const end = windowEnd();
  let oldest = end;
  for (const vm of state.vms.values()) if (vm.points.length) oldest = Math.min(oldest, vm.points[0].t);
  return Math.max(end - state.windowS * 1000, Math.min(oldest, end - 60000));
}

const M = { left: 56, right: 14, top: 22, bottom: 34 }; // room for axes, markers, node strip

// niceStep is a 1-2-5 step giving about n ticks over span.
function niceStep(span, n) {
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
}

function chart(vm, spec, width) {
  const height = 210;
  const t0 = windowStart();
  const t1 = windowEnd();
  const pw = width - M.left - M.right;
  const ph = height - M.top - M.bottom;
  const pts = vm.points.filter((p) => p.t >= t0);
  let ymax = spec.floor;
  for (const p of pts) for (const s of spec.series) { const v = s.value(p); if (v != null) ymax = Math.max(ymax, v); }
  if (spec.bound) ymax = Math.max(ymax, spec.bound);
  const unit = spec.unit(ymax);
  const step = niceStep(ymax / unit.div, 4) * unit.div;
  ymax = Math.ceil((ymax * 1.08) / step) * step;
  const x = (t) => M.left + ((t - t0) / (t1 - t0)) * pw;
  const y = (v) => M.top + ph - (v / ymax) * ph;
  const f = (n) => n.toFixed(1);
  const out = [];

  out.push(`<svg class="chart" data-vm="${esc(vm.name)}" data-metric="${spec.metric}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" data-t0="${t0}" data-t1="${t1}" data-x0="${M.left}" data-x1="${M.left + pw}" role="img" aria-label="${esc(`${vm.name}: ${spec.title}`)}">`);
  // Grid and axes.
  for (let v = 0; v <= ymax + step / 2; v += step) {
    out.push(`<line class="grid" x1="${M.left}" x2="${M.left + pw}" y1="${f(y(v))}" y2="${f(y(v))}"/>`);
    out.push(`<text class="axis" x="${M.left - 8}" y="${f(y(v) + 4)}" text-anchor="end">${unit.fmt(v)}</text>`);
  }
  const tstep = timeStep(t1 - t0);
  for (let t = Math.ceil(t0 / tstep) * tstep; t <= t1; t += tstep) {
    out.push(`<line class="tick" x1="${f(x(t))}" x2="${f(x(t))}" y1="${M.top + ph}" y2="${M.top + ph + 4}"/>`);
    out.push(`<text class="axis" x="${f(x(t))}" y="${height - 4}" text-anchor="middle">${tstep < 60000 ? clock(t) : hhmm(t)}</text>`);
  }
  if (spec.bound) {
    out.push(`<line class="bound" x1="${M.left}" x2="${M.left + pw}" y1="${f(y(spec.bound))}" y2="${f(y(spec.bound))}"/>`);
    out.push(`<text class="bound-label" x="${M.left + 4}" y="${f(y(spec.bound) - 4)}">max ${unit.fmt(spec.bound)}</text>`);
  }
  // Migrations: the move as a band, ending where the VM runs on the target.
  for (const m of vm.migrations) {
    if (m.t < t0 || (m.state !== 'completed' && m.state !== 'failed')) continue;
    const xa = Math.max(M.left, x(m.t - (m.elapsed_ns || 0) / 1e6));
    const xb = x(m.t);
    const tip = `${clock(m.t)} · migration ${m.from} → ${m.to} ${m.state}`
      + (m.elapsed_ns ? ` in ${duration(m.elapsed_ns)}` : '')
      + (m.downtime_ns ? `, downtime ${duration(m.downtime_ns)}` : '')
      + (m.transferred_bytes ? `, ${bytes(m.transferred_bytes)} sent` : '')
      + (m.reason ? `\n${m.reason}` : '') + (m.error ? `\n${m.error}` : '');
    out.push(`<g class="marker migration ${m.state}" data-tip="${esc(tip)}"><rect x="${f(xa)}" y="${M.top}" width="${f(Math.max(2, xb - xa))}" height="${ph}"/><line x1="${f(xb)}" x2="${f(xb)}" y1="${M.top - 4}" y2="${M.top + ph}"/><text x="${f(xb + 4)}" y="${M.top + 10}">→ ${esc(m.to)}</text></g>`);
  }
  // Series: steps for sizes (they change at an instant), lines for usage.
  for (const s of spec.series) {
    for (const run of runs(pts, s.value)) {
      const xy = run.map((p) => [x(p.t), y(s.value(p))]);
      if (s.area) {
        const poly = xy.map(([a, b]) => `${f(a)},${f(b)}`).join(' ');
        out.push(`<polygon class="area ${s.cls}" points="${f(xy[0][0])},${f(y(0))} ${poly} ${f(xy[xy.length - 1][0])},${f(y(0))}"/>`);
        out.push(`<polyline class="line ${s.cls}" data-series="${s.cls}" points="${poly}"/>`);
      } else {
        const d = xy.map(([a, b], i) => (i === 0 ? `M${f(a)},${f(b)}` : `H${f(a)}V${f(b)}`)).join('');
        out.push(`<path class="step ${s.cls}" data-series="${s.cls}" data-points="${run.length}" d="${d}"/>`);
      }
    }
  }
  // Node strip: which node the VM ran on, along the time axis.
  const sy = M.top + ph + 6;
  for (const run of runsBy(pts, (p) => p.node)) {
    const xa = x(run[0].t);
    const xb = x(run[run.length - 1].t);
    out.push(`<g class="nodestrip" data-tip="${esc(`on ${run[0].node} from ${clock(run[0].t)}`)}"><rect class="n${nodeIndex(run[0].node)}" x="${f(xa)}" y="${sy}" width="${f(Math.max(1, xb - xa))}" height="5" rx="2"/></g>`);
  }
  // Decisions that changed something, as markers above the plot.
  for (const d of vm.decisions) {
    if (d.t < t0 || d.outcome === 'unchanged') continue;
    const kind = outcomeKind(d.outcome);
    const xd = x(d.t);
    const tip = `${clock(d.t)} · ${d.outcome.replaceAll('_', ' ')} · goal ${vcpus(d.goal.vcpu_milli)} vCPU / ${bytes(d.goal.memory_bytes)}\n${d.reason}`;
    out.push(`<g class="marker decision ${kind}" data-outcome="${esc(d.outcome)}" data-tip="${esc(tip)}"><line x1="${f(xd)}" x2="${f(xd)}" y1="${M.top}" y2="${M.top + ph}"/><path d="${markerPath(kind, xd, M.top - 9)}"/></g>`);
  }
  out.push(`<line class="cursor" x1="0" x2="0" y1="${M.top}" y2="${M.top + ph}" visibility="hidden"/>`);
  out.push('</svg>');
  return out.join('');
}

// timeStep gives at most 8 ticks on round clock times.
function timeStep(spanMs) {
  return [15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((s) => s * 1000).find((s) => spanMs / s <= 8) || 3600000;
}

// runs splits points into stretches where value is defined: a gap in the
// guest's reports is drawn as a gap.
function runs(pts, value) {
  const out = [];
  let cur = [];
  for (const p of pts) {
    if (value(p) == null) { if (cur.length) out.push(cur); cur = []; continue; }
    cur.push(p);
  }
  if (cur.length) out.push(cur);
  return out;
}

function runsBy(pts, key) {
  const out = [];
  for (const p of pts) {
    const last = out[out.length - 1];
    if (last && key(last[0]) === key(p)) last.push(p); else out.push([p]);
  }
  // Each stretch ends where the next begins, so the strip has no holes.
  for (let i = 0; i + 1 < out.length; i++) out[i].push(out[i + 1][0]);
  return out;
}

function outcomeKind(outcome) {
  switch (outcome) {
    case 'grown': case 'grown_partial': return 'up';
    case 'shrunk': return 'down';
    case 'refused_by_guest': case 'denied': case 'clamped': return 'held';
    default: return 'fault';
  }
}

function markerPath(kind, cx, cy) {
  const f = (n) => n.toFixed(1);
  switch (kind) {
    case 'up': return `M${f(cx - 6)},${f(cy + 5)}L${f(cx + 6)},${f(cy + 5)}L${f(cx)},${f(cy - 6)}Z`;
    case 'down': return `M${f(cx - 6)},${f(cy - 5)}L${f(cx + 6)},${f(cy - 5)}L${f(cx)},${f(cy + 6)}Z`;
    case 'held': return `M${f(cx - 5)},${f(cy - 5)}h10v10h-10Z`;
    default: return `M${f(cx)},${f(cy - 6)}L${f(cx + 6)},${f(cy)}L${f(cx)},${f(cy + 6)}L${f(cx - 6)},${f(cy)}Z`;
  }
}

const usageOf = (key, scale = 1) => (p) => (p.usage ? p.usage[key] / scale : null);

function specs(vm) {
  const sv = state.status && (state.status.vms || []).find((v) => v.name === vm.name);
  const bounds = sv && sv.bounds && sv.bounds.max;
  return [
    {
      metric: 'cpu', title: 'vCPU', floor: 1, bound: bounds ? bounds.vcpu_milli / 1000 : 0,
      unit: () => ({ div: 1, fmt: (v) => num(v) }),
      series: [
        { cls: 'load', label: 'load (1 min)', area: true, value: usageOf('load1') },
        { cls: 'size', label: 'allocated', value: (p) => p.size.vcpu_milli / 1000 },
        { cls: 'online', label: 'online', value: usageOf('online_vcpu_milli', 1000) },
      ],
    },
    {
      metric: 'memory', title: 'Memory', floor: 256 * 2 ** 20, bound: bounds ? bounds.memory_bytes : 0,
      unit: (max) => (max >= 2 ** 30 ? { div: 2 ** 30, fmt: (v) => `${num(v / 2 ** 30, 1)} GiB` } : { div: 2 ** 20, fmt: (v) => `${num(v / 2 ** 20, 0)} MiB` }),
      series: [
        { cls: 'used', label: 'used', area: true, value: usageOf('memory_used') },
        { cls: 'size', label: 'allocated', value: (p) => p.size.memory_bytes },
        { cls: 'online', label: 'online', value: usageOf('online_memory') },
      ],
    },
  ];
}

// --- VM cards -------------------------------------------------------------

function vmHeader(name, vm) {
  const last = vm.points[vm.points.length - 1];
  const st = state.status && (state.status.vms || []).find((v) => v.name === name);
  const phase = (st && st.phase) || (last && last.phase) || 'unknown';
  const node = (st && st.node) || (last && last.node) || '';
  const u = last && last.usage;
  const facts = [];
  if (last) {
    facts.push(`<b>${vcpus(last.size.vcpu_milli)}</b> vCPU${u ? ` <span>(${vcpus(u.online_vcpu_milli)} online, load ${num(u.load1)})</span>` : ''}`);
    facts.push(`<b>${bytes(last.size.memory_bytes)}</b>${u ? ` <span>(${bytes(u.memory_used)} used)</span>` : ''}`);
    if (u && (u.cpu_pressure || u.memory_pressure)) facts.push(`<span>PSI cpu ${num(u.cpu_pressure, 1)}% · mem ${num(u.memory_pressure, 1)}%</span>`);
  }
  const moving = ((state.status && state.status.migrations) || []).find((m) => m.vm === name && (m.state === 'running' || m.state.startsWith('planned')));
  const notable = vm.decisions.filter((d) => d.outcome !== 'unchanged');
  const d = notable[notable.length - 1];
  return `<div class="vm-head"><h2>${esc(name)}</h2><span class="phase ${esc(phase)}">${esc(phase)}</span>`
    + (node ? `<span class="on"><i class="swatch n${nodeIndex(node)}"></i>${esc(node)}</span>` : '')
    + (st && st.address ? `<span class="addr">${esc(st.address)}</span>` : '')
    + (moving ? `<span class="moving">${esc(moving.state)} move → ${esc(moving.to)}</span>` : '')
    + `<div class="facts">${facts.join('<i class="sep"></i>')}</div></div>`
    + `<div class="last">${d ? `<span class="badge ${outcomeKind(d.outcome)}">${esc(d.outcome.replaceAll('_', ' '))}</span> <span class="when">${clock(d.t)}</span> ${esc(d.reason)}` : '<span class="when">no scaling decision yet</span>'}</div>`;
}

// byImportance lists sizes before usage; series are drawn the other way,
// usage first, so that sizes stay on top.
const byImportance = (series) => [...series.filter((s) => !s.area), ...series.filter((s) => s.area)];

function legend(spec) {
  return `<div class="legend"><b>${spec.title}</b>${byImportance(spec.series).map((s) => `<span class="key ${s.cls}"><i></i>${esc(s.label)}</span>`).join('')}</div>`;
}

function renderVMs() {
  const main = $('vms');
  const names = [...state.vms.keys()].sort();
  if (names.length === 0) {
    main.innerHTML = `<p class="empty">${state.status ? 'No history yet: the first control-loop pass records one.' : ''}</p>`;
    return;
  }
  main.querySelector('.empty')?.remove();
  for (const card of [...main.children]) if (!state.vms.has(card.dataset.vm)) card.remove();
  names.forEach((name, i) => {
    let card = main.querySelector(`article[data-vm="${CSS.escape(name)}"]`);
    if (!card) {
      card = document.createElement('article');
      card.className = 'vm';
      card.dataset.vm = name;
      card.innerHTML = '<header></header><div class="charts"><div class="box"></div><div class="box"></div></div>';
    }
    if (main.children[i] !== card) main.insertBefore(card, main.children[i] || null);
    const vm = state.vms.get(name);
    card.querySelector('header').innerHTML = vmHeader(name, vm);
    const boxes = card.querySelectorAll('.box');
    const key = `${vm.version}/${state.windowS}/${boxes[0].clientWidth}/${state.status ? 1 : 0}`;
    if (card.dataset.drawn === key) return; // keeps a hovered marker in place
    card.dataset.drawn = key;
    specs(vm).forEach((spec, j) => {
      boxes[j].innerHTML = legend(spec) + chart(vm, spec, boxes[j].clientWidth);
    });
  });
}

function render() {
  renderSummary();
  renderVMs();
}

// --- hover ----------------------------------------------------------------

function showTip(text, ev) {
  const tip = $('tip');
  tip.textContent = text;
  tip.hidden = false;
  const w = tip.offsetWidth;
  const h = tip.offsetHeight;
  tip.style.left = `${Math.min(ev.clientX + 14, window.innerWidth - w - 8)}px`;
  tip.style.top = `${ev.clientY + 16 + h > window.innerHeight ? ev.clientY - h - 10 : ev.clientY + 16}px`;
}

function hideCursors() {
  for (const c of document.querySelectorAll('line.cursor')) c.setAttribute('visibility', 'hidden');
}

// readout is the values nearest the pointer's time in a chart.
function readout(svg, ev) {
  const box = svg.getBoundingClientRect();
  const px = ev.clientX - box.left;
  const [x0, x1, t0, t1] = ['x0', 'x1', 't0', 't1'].map((k) => Number(svg.dataset[k]));
  if (px < x0 || px > x1) return null;
  const vm = state.vms.get(svg.dataset.vm);
  if (!vm || vm.points.length === 0) return null;
  const t = t0 + ((px - x0) / (x1 - x0)) * (t1 - t0);
  let best = vm.points[0];
  for (const p of vm.points) if (Math.abs(p.t - t) < Math.abs(best.t - t)) best = p;
  const spec = specs(vm).find((s) => s.metric === svg.dataset.metric);
  const fmt = spec.metric === 'cpu' ? (v) => num(v) : bytes;
  const lines = byImportance(spec.series).map((s) => { const v = s.value(best); return `${s.label}: ${v == null ? '—' : fmt(v)}`; });
  return { t: best.t, x: x0 + ((best.t - t0) / (t1 - t0)) * (x1 - x0), text: `${clock(best.t)} on ${best.node}\n${lines.join('\n')}` };
}

document.addEventListener('mousemove', (ev) => {
  hideCursors();
  const marked = ev.target.closest && ev.target.closest('[data-tip]');
  if (marked) { showTip(marked.dataset.tip, ev); return; }
  const svg = ev.target.closest && ev.target.closest('svg.chart');
  const r = svg && readout(svg, ev);
  if (!r) { $('tip').hidden = true; return; }
  const cursor = svg.querySelector('line.cursor');
  cursor.setAttribute('x1', r.x);
  cursor.setAttribute('x2', r.x);
  cursor.setAttribute('visibility', 'visible');
  showTip(r.text, ev);
});

// --- start ----------------------------------------------------------------

$('window').addEventListener('change', (ev) => { state.windowS = Number(ev.target.value); render(); });
window.addEventListener('resize', () => renderVMs());
poll();
