// streamprofile live dashboard: polls /api/stats every second and redraws;
// charts are inline SVG. No dependencies, no build step.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  const num = new Intl.NumberFormat('en-US');
  const num1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  const MODEL_COLORS = {
    network: '#2563eb', champion: '#15803d', challenger: '#ea580c',
    logistic: '#7c3aed', recency: '#6b7280', bgnbd: '#a16207',
  };
  const FALLBACK = ['#0891b2', '#be185d', '#4d7c0f', '#9333ea'];

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function setText(id, text) {
    const e = $(id);
    if (e.textContent !== text) e.textContent = text;
  }
  function show(id, on) { $(id).classList.toggle('hidden', !on); }
  function ms(v) {
    if (v === undefined || v === null) return '–';
    return v < 10 ? v.toFixed(2) + ' ms' : num1.format(v) + ' ms';
  }
  function clock(t) {
    const d = new Date(t);
    return isNaN(d) ? '' : d.toISOString().slice(11, 19);
  }

  // niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // chart draws series [{name, color, points: [[x, y], ...]}] into svg
  // with y from yMin to yMax (default 0 … the data's nice maximum).
  function chart(svg, series, opts) {
    opts = opts || {};
    const vb = svg.viewBox.baseVal;
    const W = vb.width, H = vb.height, L = 48, R = 8, T = 8, B = 20;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    let xMin = Infinity, xMax = -Infinity, yMax = -Infinity;
    for (const s of series) for (const [x, y] of s.points) {
      if (x < xMin) xMin = x;
      if (x > xMax) xMax = x;
      if (y > yMax) yMax = y;
    }
    if (!isFinite(xMin)) return false;
    if (xMax === xMin) xMax = xMin + 1;
    const y0 = opts.yMin !== undefined ? opts.yMin : 0;
    const y1 = opts.yMax !== undefined ? opts.yMax : niceMax(yMax);
    const px = (x) => L + (x - xMin) / (xMax - xMin) * (W - L - R);
    const py = (y) => T + (1 - (Math.min(Math.max(y, y0), y1) - y0) / (y1 - y0)) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const v = y0 + (y1 - y0) * i / 4;
      svg.appendChild(svgEl('line', { x1: L, x2: W - R, y1: py(v), y2: py(v), class: 'grid' }));
      const t = svgEl('text', { x: L - 6, y: py(v) + 4, 'text-anchor': 'end', class: 'axis' });
      t.textContent = (opts.yFormat || num1.format)(v);
      svg.appendChild(t);
    }
    const xl = svgEl('text', { x: L, y: H - 4, class: 'axis' });
    xl.textContent = (opts.xFormat || String)(xMin);
    svg.appendChild(xl);
    const xr = svgEl('text', { x: W - R, y: H - 4, 'text-anchor': 'end', class: 'axis' });
    xr.textContent = (opts.xFormat || String)(xMax);
    svg.appendChild(xr);
    for (const s of series) {
      if (!s.points.length) continue;
      const pts = s.points.map(([x, y]) => px(x).toFixed(1) + ',' + py(y).toFixed(1)).join(' ');
      if (s.fill) {
        const first = s.points[0], last = s.points[s.points.length - 1];
        svg.appendChild(svgEl('polygon', {
          points: px(first[0]).toFixed(1) + ',' + py(y0) + ' ' + pts + ' ' + px(last[0]).toFixed(1) + ',' + py(y0),
          class: 'area', fill: s.color,
        }));
      }
      svg.appendChild(svgEl('polyline', { points: pts, class: 'line', stroke: s.color, 'data-series': s.name }));
    }
    return true;
  }

  function renderTiles(st) {
    const p = st.pipeline, now = st.now;
    setText('eps', num.format(Math.round(now.eps)));
    setText('consumed', num.format(p.consumed));
    setText('applied', num.format(p.applied));
    setText('dlq', num.format(p.dead_lettered));
    setText('lag', p.lag < 0 ? '–' : num.format(p.lag));
    setText('p50', ms(now.p50_ms));
    setText('p99', ms(now.p99_ms));
    const r = p.replay;
    let text = num.format(r.published);
    if (r.total > 0) text += ' / ' + num.format(r.total);
    text += r.done ? ' · done' : '';
    setText('replay', text);
    $('replay-bar').style.width = (r.total > 0 ? Math.min(100, 100 * r.published / r.total) : 0) + '%';
    setText('replay-time', r.event_time ? 'event time ' + r.event_time.replace('T', ' ').slice(0, 19) : '');
  }

  function renderCharts(st) {
    const h = st.history;
    chart($('chart-eps'), [{ name: 'eps', color: '#2563eb', fill: true, points: h.map((p) => [p.t, p.eps]) }],
      { xFormat: clock });
    chart($('chart-lag'), [{ name: 'lag', color: '#b45309', fill: true, points: h.filter((p) => p.lag >= 0).map((p) => [p.t, p.lag]) }],
      { xFormat: clock });
    chart($('chart-latency'), [
      { name: 'p50', color: '#2563eb', points: h.filter((p) => p.p50_ms !== undefined).map((p) => [p.t, p.p50_ms]) },
      { name: 'p99', color: '#dc2626', points: h.filter((p) => p.p99_ms !== undefined).map((p) => [p.t, p.p99_ms]) },
    ], { xFormat: clock });

    const l = st.learning;
    const models = [];
    for (const pt of l.curve) for (const m of Object.keys(pt.auc)) if (!models.includes(m)) models.push(m);
    models.sort((a, b) => (a === 'network' ? -1 : b === 'network' ? 1 : a.localeCompare(b)));
    const color = (m, i) => MODEL_COLORS[m] || FALLBACK[i % FALLBACK.length];
    // The axis starts at 0.4, lower (in steps of 0.2) when an AUC is
    // below it: a model worse than chance is drawn where it is, not
    // clamped onto the axis.
    let lowest = 0.4;
    for (const pt of l.curve) for (const v of Object.values(pt.auc)) if (v < lowest) lowest = v;
    const yMin = lowest >= 0.4 ? 0.4 : Math.max(0, Math.floor(lowest * 5) / 5);
    const drawn = chart($('chart-auc'), models.map((m, i) => ({
      name: m, color: color(m, i),
      points: l.curve.filter((pt) => pt.auc[m] !== undefined).map((pt) => [pt.evaluated, pt.auc[m]]),
    })), { yMin: yMin, yMax: 1, yFormat: (v) => v.toFixed(2), xFormat: (x) => num.format(x) + ' examples' });
    show('auc-empty', !drawn);
    show('chart-auc', drawn);
    const legend = $('auc-legend');
    legend.replaceChildren(...models.map((m, i) => {
      const last = [...l.curve].reverse().find((pt) => pt.auc[m] !== undefined);
      const s = el('span', { class: m }, m + (last ? ' ' + last.auc[m].toFixed(3) : ''));
      s.style.setProperty('--c', color(m, i));
      return s;
    }));
    let sub = l.task ? '(' + l.task : '';
    if (l.task && l.examples) sub += ', ' + num.format(l.examples) + ' examples learned';
    if (l.task && l.champion) sub += ', champion v' + l.champion;
    setText('auc-task', sub ? sub + ')' : '');
  }

  function renderSegments(st) {
    const segs = st.segments || [];
    const max = Math.max(1, ...segs.map((s) => s.members));
    $('segments').replaceChildren(...segs.map((s) => {
      const row = el('div', { class: 'bar' });
      row.appendChild(el('span', { title: s.name }, s.name));
      const track = el('div', { class: 'track' });
      const fill = el('div', { class: 'fill' });
      fill.style.width = (100 * s.members / max) + '%';
      track.appendChild(fill);
      row.appendChild(track);
      row.appendChild(el('span', { class: 'n' }, num.format(s.members)));
      return row;
    }));
    show('segments-empty', segs.length === 0);
  }

  function renderTable(id, rows, cells) {
    $(id).replaceChildren(...rows.map((r) => {
      const tr = el('tr');
      for (const [text, cls] of cells(r)) tr.appendChild(el('td', cls ? { class: cls } : {}, text));
      return tr;
    }));
    show(id + '-empty', rows.length === 0);
  }

  function render(st) {
    setText('title', st.title);
    document.title = st.title + ' · live';
    renderTiles(st);
    renderCharts(st);
    renderSegments(st);
    renderTable('changes', st.changes, (c) => [[clock(c.time)], [c.user, 'user'], [c.segment], [c.change, c.change]]);
    renderTable('triggers', st.triggers, (t) => [[clock(t.time)], [t.user, 'user'], [t.kind], [t.explanation || '']]);
  }

  let failures = 0;
  async function poll() {
    try {
      const res = await fetch('/api/stats', { cache: 'no-store' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      render(await res.json());
      failures = 0;
      $('status').className = 'status live';
      setText('status', 'live · updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      failures++;
      $('status').className = 'status down';
      setText('status', 'disconnected (' + e.message + '), retrying…');
    }
    setTimeout(poll, failures ? Math.min(5000, 1000 * failures) : 1000);
  }

  // Profile lookup.
  function section(title, child) {
    const d = el('div');
    d.appendChild(el('h3', {}, title));
    d.appendChild(child);
    return d;
  }
  function kvTable(rows) {
    const t = el('table');
    for (const [k, v] of rows) {
      const tr = el('tr');
      tr.appendChild(el('td', {}, k));
      tr.appendChild(el('td', {}, v));
      t.appendChild(tr);
    }
    return t;
  }
  function renderProfile(p) {
    const out = el('div', { class: 'profile-grid' });
    const who = [['id', p.id]];
    if (p.pseudonym) who.push(['stored as', p.pseudonym]);
    if (p.linked_ids && p.linked_ids.length) who.push(['linked ids', p.linked_ids.join(', ')]);
    if (p.consent) who.push(['consent', 'profiling ' + (p.consent.profiling ? 'yes' : 'no') + ', ads ' + (p.consent.ads ? 'yes' : 'no')]);
    if (p.evaluated_at) who.push(['evaluated at', p.evaluated_at.replace('T', ' ').slice(0, 19)]);
    out.appendChild(section('who', kvTable(who)));

    const segs = el('div');
    for (const s of p.segments || []) segs.appendChild(el('span', { class: 'chip', title: 'since ' + s.since }, s.name));
    if (!segs.childElementCount) segs.appendChild(el('p', { class: 'empty' }, 'in no segment'));
    out.appendChild(section('segments', segs));

    const scores = Object.entries(p.scores || {}).map(([task, s]) => [task, s.value.toFixed(3) + (s.model_version ? ' (model ' + s.model_version + ')' : '')]);
    out.appendChild(section('scores', scores.length ? kvTable(scores) : el('p', { class: 'empty' }, 'not scored yet (the score role scores a profile with its champion model, at its events)')));

    const feats = Object.entries(p.features || {}).filter(([, v]) => v !== 0).sort(([a], [b]) => a.localeCompare(b));
    const zero = Object.keys(p.features || {}).length - feats.length;
    const ft = kvTable(feats.map(([k, v]) => [k, num1.format(v)]));
    const fdiv = el('div');
    fdiv.appendChild(ft);
    if (zero > 0) fdiv.appendChild(el('p', { class: 'empty' }, zero + ' more features are 0'));
    out.appendChild(section('features', fdiv));

    const aff = Object.entries(p.affinities || {}).map(([dim, list]) => [dim, list.map((a) => a.name + ' ' + a.score.toFixed(2)).join(', ')]);
    out.appendChild(section('affinities', aff.length ? kvTable(aff) : el('p', { class: 'empty' }, 'none')));
    return out;
  }
  async function lookup(ev) {
    ev.preventDefault();
    const id = $('profile-id').value.trim();
    const box = $('profile');
    if (!id) return;
    box.replaceChildren(el('p', { class: 'empty' }, 'looking up…'));
    try {
      const res = await fetch('/api/profile?id=' + encodeURIComponent(id), { cache: 'no-store' });
      const body = await res.json();
      if (!res.ok) {
        box.replaceChildren(el('p', { class: 'error' }, body.error || 'HTTP ' + res.status));
        return;
      }
      box.replaceChildren(renderProfile(body));
    } catch (e) {
      box.replaceChildren(el('p', { class: 'error' }, 'lookup failed: ' + e.message));
    }
  }

  $('lookup').addEventListener('submit', lookup);
  poll();
})();
