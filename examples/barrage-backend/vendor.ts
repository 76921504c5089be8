import * as fs from 'node:fs';
import * as path from 'node:path';

/** The player packages whose built files the page loads, each served at `/vendor/<package>/`. */
export const PLAYER_PACKAGES = ['artplayer', 'artplayer-plugin-danmuku', 'dplayer'] as const;

/**
 * Where each installed player package keeps its built files (its `dist/`), found through Node's own
 * resolution so a hoisted or nested node_modules works alike. Packages not installed are left out:
 * the page then reports the missing script.
 */
export function vendorFolders(): Array<{ route: string; dir: string }> {
  const folders: Array<{ route: string; dir: string }> = [];
  for (const name of PLAYER_PACKAGES) {
    let dir: string;
    try {
      dir = path.dirname(require.resolve(name));
    } catch {
      continue;
    }
    if (fs.existsSync(dir)) folders.push({ route: `/vendor/${name}`, dir });
  }
  return folders;
}
