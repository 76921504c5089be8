import * as fs from 'node:fs';
import type { Config } from './schema';
import { parseConfig, readFailure } from './load';

/** Keys that take effect without a restart (CONNMIX docs, configuration-file-details: `logging.level` and `access`; docs/configuration.md). */
export const HOT_KEYS = ['logging.level', 'access'] as const;

/**
 * Watches the yaml file (polling: works on every file system and survives editors that replace the
 * file) and hands each valid new version to `onChange`; a version that fails to load goes to `onError`
 * and the running config stays. Returns a function that stops watching.
 *
 * The version in use is stat'ed synchronously here, not by the first poll: fs.watchFile takes its
 * baseline asynchronously, so an edit made right after start became the baseline and was never applied.
 */
export function watchConfig(
  file: string,
  intervalMs: number,
  onChange: (next: Config) => void,
  onError: (error: Error) => void,
): () => void {
  let seen = versionOf(file);
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    fs.stat(file, (error, stats) => {
      const version = error ? MISSING : versionKey(stats);
      if (version === seen) {
        checking = false;
        return;
      }
      fs.readFile(file, 'utf8', (readError, text) => {
        checking = false;
        const code = (readError as NodeJS.ErrnoException | null)?.code;
        // Out of descriptors for a moment: the version is read again at the next poll.
        if (code === 'EMFILE' || code === 'ENFILE') return;
        seen = version;
        try {
          if (readError) throw readFailure(file, readError);
          onChange(parseConfig(text, file, { warn: () => undefined }));
        } catch (loadError) {
          onError(loadError as Error);
        }
      });
    });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

const MISSING = 'missing';

/** What tells one version of the file from the next: its modification time and size. */
function versionKey(stats: fs.Stats): string {
  return `${stats.mtimeMs}:${stats.size}`;
}

function versionOf(file: string): string {
  try {
    return versionKey(fs.statSync(file));
  } catch {
    return MISSING;
  }
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
