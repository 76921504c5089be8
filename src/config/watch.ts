import * as fs from 'node:fs';
import type { Config } from './schema';
import { loadConfig } from './load';

/** Keys that take effect without a restart (reference section 8: `logging.level` and `access`). */
export const HOT_KEYS = ['logging.level', 'access'] as const;

/**
 * Watches the yaml file (polling: works on every file system and survives editors that replace the
 * file) and hands each valid new version to `onChange`; a version that fails to load goes to `onError`
 * and the running config stays. Returns a function that stops watching.
 */
export function watchConfig(
  file: string,
  intervalMs: number,
  onChange: (next: Config) => void,
  onError: (error: Error) => void,
): () => void {
  const listener = (current: fs.Stats, previous: fs.Stats) => {
    if (current.mtimeMs === previous.mtimeMs && current.size === previous.size) return;
    try {
      onChange(loadConfig(file, { warn: () => undefined }));
    } catch (error) {
      onError(error as Error);
    }
  };
  fs.watchFile(file, { interval: intervalMs, persistent: false }, listener);
  return () => fs.unwatchFile(file, listener);
}

/** Dotted paths whose values differ between two configs (objects compared key by key, lists whole). */
export function changedKeys(before: unknown, after: unknown, prefix = ''): string[] {
  const isObject = (value: unknown) => value !== null && typeof value === 'object' && !Array.isArray(value);
  if (isObject(before) && isObject(after)) {
    const keys = new Set([...Object.keys(before as object), ...Object.keys(after as object)]);
    return [...keys].flatMap((key) =>
      changedKeys((before as Record<string, unknown>)[key], (after as Record<string, unknown>)[key], prefix ? `${prefix}.${key}` : key),
    );
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix];
}
