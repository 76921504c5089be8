import fs from 'node:fs';
import path from 'node:path';
import Module from 'node:module';
import vm from 'node:vm';
import { SOURCE_PATCHES, REPLACED_MODULES } from './patches';

/** A CommonJS module of our private fengari copy. */
interface PrivateModule {
  exports: Record<string, unknown>;
}

/** The private copy of fengari: its modules by file name (`lapi.js`, ...), loaded on first use. */
export interface PrivateFengari {
  /** The exports of `fengari/src/<name>` in this copy. */
  module(name: string): Record<string, unknown>;
}

/** Arguments of the function a module's source is compiled into, as Node's own CommonJS wrapper. */
const WRAPPER_PARAMS = ['exports', 'require', 'module', '__filename', '__dirname'];

/**
 * Compiles a private copy of fengari from its installed source files, with the changes of ./patches
 * applied in memory. Nothing global is touched: not `require.cache`, not `Module.prototype`, not
 * `process.env`; the `fengari` an application requires itself stays fengari as published, and the
 * order in which the two are loaded does not matter. Fengari's relative requires (`./ldo.js`) resolve
 * inside the copy; other packages (`sprintf-js`, `fs`) come from Node as usual.
 */
export function loadPrivateFengari(): PrivateFengari {
  const main = require.resolve('fengari');
  const dir = path.dirname(main);
  const outside = Module.createRequire(main);
  const modules = new Map<string, PrivateModule>();

  function load(name: string): Record<string, unknown> {
    const cached = modules.get(name);
    if (cached) return cached.exports;
    const module: PrivateModule = { exports: {} };
    // Registered before it runs, as Node does: fengari's modules require each other in cycles.
    modules.set(name, module);
    const replace = REPLACED_MODULES[name];
    if (replace) {
      module.exports = replace(load) as Record<string, unknown>;
      return module.exports;
    }
    const filename = path.join(dir, name);
    const source = patchSource(name, fs.readFileSync(filename, 'utf8'));
    const compiled = vm.compileFunction(source, WRAPPER_PARAMS, { filename });
    compiled.call(module.exports, module.exports, requireFrom, module, filename, dir);
    return module.exports;
  }

  function requireFrom(specifier: string): unknown {
    if (specifier.startsWith('./')) return load(path.posix.normalize(specifier));
    return outside(specifier);
  }

  return { module: load };
}

let shared: PrivateFengari | undefined;

/** The process's one private copy (./index and ./internals share it), loaded on first use. */
export function privateFengari(): PrivateFengari {
  return (shared ??= loadPrivateFengari());
}

/** `source` of fengari's `name` with every source patch for it applied; throws when one does not fit. */
export function patchSource(name: string, source: string): string {
  let patched = source;
  for (const patch of SOURCE_PATCHES) {
    const expected = patch.files[name];
    if (expected === undefined) continue;
    let changes = 0;
    patched = patched.replace(patch.find, (...match: string[]) => {
      changes++;
      return patch.replace(...match);
    });
    if (changes !== expected) {
      throw new Error(`fengari internals changed: patch "${patch.name}" found ${changes} places in ${name}, not ${expected}; review src/lua/fengari/patches.ts`);
    }
  }
  return patched;
}
