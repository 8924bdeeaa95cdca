// web/js/chart.js - small SVG charts drawn from numbers (no library):
// a line chart over time with one or two series, and a bar chart.
// Every chart carries a text summary for screen readers (role="img"
// with aria-label) and a <title> per point.

const NS = 'http://www.w3.org/2000/svg';
const W = 340, H = 160, L = 44, R = 8, T = 10, B = 24;

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  if (v >= 10 || v === 0) return String(Math.round(v));
  return v.toPrecision(2);
}

function frame(svg, ymax, labels) {
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * (1 - i / 4);
    svg.append(s('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
    svg.append(s('text', { x: L - 4, y: y + 4, 'text-anchor': 'end' },
      fmt(ymax * i / 4)));
  }
  svg.append(s('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
  svg.append(s('line', { x1: L, x2: W - R, y1: H - B, y2: H - B,
    class: 'axis' }));
  const n = labels.length;
  const step = Math.max(1, Math.ceil(n / 5));
  for (let i = 0; i < n; i += step)
    svg.append(s('text', { x: L + (W - L - R) * (n > 1 ? i / (n - 1) : 0.5),
      y: H - 6, 'text-anchor': 'middle' }, labels[i]));
}

// series: [{name, values:[number|null], cls}], labels: x-axis strings.
export function lineChart(title, labels, series, unit) {
  const all = series.flatMap((x) => x.values).filter((v) => v !== null);
  const ymax = niceMax(Math.max(0, ...all));
  const last = series.map((x) => {
    const v = x.values.filter((y) => y !== null);
    return `${x.name} ${v.length ? fmt(v[v.length - 1]) : 'none'} ${unit}`;
  }).join(', ');
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart',
    role: 'img', 'aria-label': `${title}: latest ${last}` });
  frame(svg, ymax, labels);
  const n = labels.length;
  const x = (i) => L + (W - L - R) * (n > 1 ? i / (n - 1) : 0.5);
  const y = (v) => T + (H - T - B) * (1 - v / ymax);
  for (const ser of series) {
    let d = '';
    let pen = false;
    ser.values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
      const c = s('circle', { cx: x(i), cy: y(v), r: 2, class: 'dot' });
      c.append(s('title', {}, `${labels[i]}: ${ser.name} ${fmt(v)} ${unit}`));
      svg.append(c);
    });
    if (d) svg.append(s('path', { d, class: ser.cls || 'line' }));
  }
  const fig = document.createElement('figure');
  const cap = document.createElement('figcaption');
  cap.textContent = `${title} (${unit})` +
    (series.length > 1 ? ` — ${series.map((x) => x.name).join(' solid, ')} dashed` : '');
  fig.append(cap, svg);
  return fig;
}

export function barChart(title, labels, values, unit) {
  const ymax = niceMax(Math.max(0, ...values));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart',
    role: 'img', 'aria-label': `${title}: ` +
      labels.map((l, i) => `${l} ${values[i]}`).join(', ') });
  frame(svg, ymax, labels);
  const n = Math.max(1, labels.length);
  const bw = (W - L - R) / n;
  values.forEach((v, i) => {
    const hgt = (H - T - B) * v / ymax;
    const r = s('rect', { x: L + i * bw + bw * 0.15, y: H - B - hgt,
      width: bw * 0.7, height: hgt, class: 'bar' });
    r.append(s('title', {}, `${labels[i]}: ${v} ${unit}`));
    svg.append(r);
  });
  const fig = document.createElement('figure');
  const cap = document.createElement('figcaption');
  cap.textContent = `${title} (${unit})`;
  fig.append(cap, svg);
  return fig;
}
