import type { FanoutRow } from './types';

/** One panel: the hot-video ramp of every target at one viewer count, in one run. */
export interface Panel {
  title: string;
  rows: FanoutRow[];
}

const WIDTH = 720;
const PANEL_HEIGHT = 380;
const MARGIN = { left: 70, right: 200, top: 40, bottom: 50 };
const COLORS: Record<string, string> = {
  'raw-ws': '#1f77b4',
  'socketio-redis': '#ff7f0e',
  'socketio-redis-2n': '#d62728',
  'connmix-ts': '#2ca02c',
  'connmix-ts-redis-2n': '#9467bd',
};
const FALLBACK = ['#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/**
 * p99 latency against publish rate, log-log, one line per target, one panel per viewer count and run;
 * the 500 ms limit of the ramp as a dashed line. Hand-written SVG: no chart library to install.
 */
export function p99Chart(panels: Panel[], limitMs: number): string {
  const height = Math.max(1, panels.length) * PANEL_HEIGHT;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  panels.forEach((panel, i) => parts.push(drawPanel(panel, i * PANEL_HEIGHT, limitMs)));
  if (panels.length === 0) parts.push(`<text x="20" y="40">no hot-video results yet</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

function drawPanel(panel: Panel, top: number, limitMs: number): string {
  const rows = panel.rows.filter((row) => row.p99 > 0);
  const rates = rows.map((row) => row.rate);
  const p99s = rows.map((row) => row.p99);
  const xMin = Math.log10(Math.min(...rates, 10));
  const xMax = Math.log10(Math.max(...rates, 100)) + 0.05;
  const yMin = Math.floor(Math.log10(Math.max(0.1, Math.min(...p99s, 1))));
  const yMax = Math.ceil(Math.log10(Math.max(...p99s, limitMs * 2)));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (rate: number) => MARGIN.left + ((Math.log10(rate) - xMin) / (xMax - xMin)) * plotW;
  const y = (ms: number) => top + MARGIN.top + plotH - ((Math.log10(Math.max(ms, 10 ** yMin)) - yMin) / (yMax - yMin)) * plotH;
  const out: string[] = [`<text x="${MARGIN.left}" y="${top + 24}" font-size="14" font-weight="bold">${escape(panel.title)}</text>`];
  // Axes and grid.
  out.push(`<rect x="${MARGIN.left}" y="${top + MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  for (let e = yMin; e <= yMax; e++) {
    const ms = 10 ** e;
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y(ms)}" y2="${y(ms)}" stroke="#ddd"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${y(ms) + 4}" text-anchor="end">${ms >= 1 ? ms : ms.toFixed(1)}</text>`);
  }
  const ticks = [...new Set(rates)].sort((a, b) => a - b);
  for (const rate of ticks) {
    out.push(`<line x1="${x(rate)}" x2="${x(rate)}" y1="${top + MARGIN.top}" y2="${top + MARGIN.top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${x(rate)}" y="${top + MARGIN.top + plotH + 16}" text-anchor="middle">${rate}</text>`);
  }
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${top + PANEL_HEIGHT - 10}" text-anchor="middle">publish rate (msg/s, log)</text>`);
  out.push(`<text x="16" y="${top + MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${top + MARGIN.top + plotH / 2})">p99 latency (ms, log)</text>`);
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y(limitMs)}" y2="${y(limitMs)}" stroke="#c00" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${MARGIN.left + plotW - 4}" y="${y(limitMs) - 4}" text-anchor="end" fill="#c00">${limitMs} ms</text>`);
  // One line per target.
  const targets = [...new Set(rows.map((row) => row.target))];
  targets.forEach((target, k) => {
    const color = COLORS[target] ?? FALLBACK[k % FALLBACK.length];
    const points = rows.filter((row) => row.target === target).sort((a, b) => a.rate - b.rate);
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map((p) => `${x(p.rate).toFixed(1)},${y(p.p99).toFixed(1)}`).join(' ')}"/>`);
    for (const p of points) {
      const lost = p.losses > 0 || p.publishErrors > 0;
      out.push(`<circle cx="${x(p.rate).toFixed(1)}" cy="${y(p.p99).toFixed(1)}" r="${lost ? 5 : 3.5}" fill="${lost ? 'white' : color}" stroke="${color}" stroke-width="2"><title>${escape(`${target} ${p.rate} msg/s: p99 ${p.p99} ms, lost ${p.losses}`)}</title></circle>`);
    }
    const ly = top + MARGIN.top + 10 + k * 20;
    const lx = MARGIN.left + plotW + 16;
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${escape(target)}</text>`);
  });
  out.push(`<text x="${MARGIN.left + plotW + 16}" y="${top + MARGIN.top + 10 + targets.length * 20 + 8}" fill="#555">open circle: comments lost or publishes failed</text>`);
  return out.join('\n');
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
