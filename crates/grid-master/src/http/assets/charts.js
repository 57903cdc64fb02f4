// The dashboard's small SVG charts and number formats, shared by the pages in app.js.
// Everything is built with DOM calls; no text is ever parsed as markup.
'use strict';

const GridCharts = (() => {
  const SVG = 'http://www.w3.org/2000/svg';
  // The drawing's own units; it scales to its card's width.
  const W = 480;
  const H = 170;
  const PAD = { left: 56, right: 12, top: 12, bottom: 24 };

  function s(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text != null) el.textContent = String(text);
    return el;
  }

  // A round upper bound for an axis: 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function empty(message) {
    const div = document.createElement('div');
    div.className = 'chart-empty';
    div.textContent = message || 'No samples yet';
    return div;
  }

  // A line chart of `points` ([[ms, value], ...], oldest first), with its
  // area shaded, a y axis formatted by `format`, and the time span below.
  function line(points, { format = fmt.num, test, label } = {}) {
    if (points.length < 2) return empty();
    const t0 = points[0][0];
    const t1 = points[points.length - 1][0];
    const top = niceMax(Math.max(...points.map((p) => p[1])));
    const x = (t) => PAD.left + ((t - t0) / Math.max(1, t1 - t0)) * (W - PAD.left - PAD.right);
    const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img' });
    if (test) svg.dataset.test = test;
    if (label) svg.append(s('title', {}, `${label}: ${format(points[points.length - 1][1])} now`));
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      svg.append(s('line', { class: 'grid-line', x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
      svg.append(s('text', { class: 'axis', x: PAD.left - 8, y: y(v) + 4, 'text-anchor': 'end' }, format(v)));
    }
    const coords = points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    const base = `${x(t1).toFixed(1)},${y(0)} ${x(t0).toFixed(1)},${y(0)}`;
    svg.append(s('polygon', { class: 'area', points: `${coords.join(' ')} ${base}` }));
    svg.append(s('polyline', { class: 'line', points: coords.join(' ') }));
    svg.append(s('text', { class: 'axis', x: PAD.left, y: H - 6 }, `−${fmt.span(t1 - t0)}`));
    svg.append(s('text', { class: 'axis', x: W - PAD.right, y: H - 6, 'text-anchor': 'end' }, 'now'));
    return svg;
  }

  // Horizontal bars, one per item ({label, value}), largest first: plain
  // elements, so that their text keeps its size at any width.
  function bars(items, { format = fmt.num, test } = {}) {
    const rows = items.filter((i) => i.value > 0).sort((a, b) => b.value - a.value).slice(0, 12);
    if (!rows.length) return empty('Nothing burned yet');
    const top = Math.max(...rows.map((r) => r.value));
    const box = document.createElement('div');
    box.className = 'bars';
    if (test) box.dataset.test = test;
    for (const r of rows) {
      const row = document.createElement('div');
      row.className = 'bar-row';
      row.title = `${r.label}: ${format(r.value)}`;
      const label = document.createElement('span');
      label.className = 'bar-label';
      label.textContent = r.label;
      const track = document.createElement('span');
      track.className = 'bar-track';
      const bar = document.createElement('span');
      bar.className = 'bar-fill';
      bar.style.width = `${Math.max(0.5, (r.value / top) * 100)}%`;
      track.append(bar);
      const value = document.createElement('span');
      value.className = 'bar-value';
      value.textContent = format(r.value);
      row.append(label, track, value);
      box.append(row);
    }
    return box;
  }

  // Per-second rates of a counter sampled as [[ms, total], ...].
  function rate(points) {
    const out = [];
    for (let i = 1; i < points.length; i++) {
      const dt = (points[i][0] - points[i - 1][0]) / 1000;
      if (dt > 0) out.push([points[i][0], Math.max(0, points[i][1] - points[i - 1][1]) / dt]);
    }
    return out;
  }

  const fmt = {
    num(v) {
      if (v == null) return '—';
      const a = Math.abs(v);
      if (a >= 1e12) return `${(v / 1e12).toFixed(1)}T`;
      if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
      if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
      if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
      return Number.isInteger(v) ? String(v) : v.toFixed(a < 10 ? 2 : 1);
    },
    bytes(v) {
      if (v == null) return '—';
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let i = 0;
      while (Math.abs(v) >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
      }
      return `${i ? v.toFixed(v < 10 ? 1 : 0) : v} ${units[i]}`;
    },
    span(ms) {
      if (ms == null) return '—';
      if (ms < 1000) return `${Math.round(ms)} ms`;
      const sec = ms / 1000;
      if (sec < 60) return `${sec.toFixed(sec < 10 ? 1 : 0)} s`;
      const m = Math.floor(sec / 60);
      if (m < 60) return `${m}m ${Math.floor(sec % 60)}s`;
      const hr = Math.floor(m / 60);
      if (hr < 48) return `${hr}h ${m % 60}m`;
      return `${Math.floor(hr / 24)}d ${hr % 24}h`;
    },
    ago(ms) {
      if (!ms) return '—';
      const d = Date.now() - ms;
      return d < 1500 ? 'just now' : `${fmt.span(d)} ago`;
    },
    time(ms) {
      return ms ? new Date(ms).toLocaleString() : '—';
    },
    rate(v) {
      return `${fmt.num(v)}/s`;
    },
  };

  return { line, bars, rate, fmt };
})();
