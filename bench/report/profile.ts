import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ProfileEntry, ProfileSummary } from './types';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time per function of a `node --cpu-prof` profile, restricted to the window [fromMs, toMs] of
 * the machine's monotonic clock (V8 stamps samples with the same CLOCK_MONOTONIC as process.hrtime,
 * in µs), so the summary covers one step and not the connect phase. Falls back to the whole profile
 * when the window is outside it.
 */
export function summarizeProfile(file: string, fromMs: number, toMs: number, root: string, limit = 10): Omit<ProfileSummary, 'target' | 'scenario'> {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  let from = fromMs * 1000;
  let to = toMs * 1000;
  let note: string | undefined;
  if (to < profile.startTime || from > profile.endTime) {
    note = 'the step window was outside the profile; whole profile shown';
    from = -Infinity;
    to = Infinity;
  }
  const self = new Map<string, { name: string; where: string; us: number }>();
  let time = profile.startTime;
  let total = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i] ?? 0;
    if (time < from || time > to) continue;
    // A sample stands for the interval until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    const frame = byId.get(profile.samples[i])!.callFrame;
    total += us;
    if (frame.functionName === '(idle)') idle += us;
    const where = frame.url ? `${shortUrl(frame.url, root)}:${frame.lineNumber + 1}` : '';
    const name = frame.functionName || '(anonymous)';
    const key = `${name} ${where}`;
    const entry = self.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    self.set(key, entry);
  }
  const entries = [...self.values()].sort((a, b) => b.us - a.us);
  const top: ProfileEntry[] = entries
    .filter((entry) => entry.name !== '(idle)')
    .slice(0, limit)
    .map((entry) => ({ name: entry.name, where: entry.where, selfMs: Math.round(entry.us / 100) / 10, percent: total > 0 ? Math.round((entry.us / total) * 1000) / 10 : 0 }));
  const busy = total - idle;
  return {
    window: `${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (${total > 0 ? Math.round((busy / total) * 100) : 0}%)`,
    totalMs: Math.round(total / 1000),
    top,
    ...(note ? { note } : {}),
  };
}

function shortUrl(url: string, root: string): string {
  const plain = url.replace(/^file:\/\//, '');
  if (plain.startsWith(root)) return path.relative(root, plain);
  if (plain.startsWith('node:')) return plain;
  return plain;
}

/** The .cpuprofile files in `dir`. */
export function profileFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((name) => name.endsWith('.cpuprofile')).map((name) => path.join(dir, name));
}
