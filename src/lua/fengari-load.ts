import Module from 'node:module';
import { replaceFengariStrings } from './lstring';

/**
 * Loads fengari (0.1.5) with three changes made before any of it runs:
 *
 * - FENGARICONF, read once when fengari loads: LUA_COMPAT_FLOATSTRING prints integral floats as
 *   `100001` (Lua 5.1 style, what CONNMIX scripts expect) instead of `100001.0`, because host numbers
 *   reach Lua as floats.
 * - Its string module, replaced (see ./lstring): table keys that were ambiguous and slow to build.
 * - Its stack pops: fengari empties stack slots with `delete L.stack[i]`, which V8 runs 5-8 times
 *   slower than storing `undefined` (a JS array with holes punched in it), on every Lua call and
 *   return. Its modules that do are compiled from fengari's own source with each such `delete`
 *   turned into a store of `undefined`; nothing in fengari tells a hole from undefined. The count of
 *   changes per module is checked, so a fengari whose source differs fails loudly instead of quietly.
 */
export function loadFengari(): unknown {
  process.env.FENGARICONF ??= JSON.stringify({ LUA_COMPAT_FLOATSTRING: true });
  replaceFengariStrings();
  const compile = (Module.prototype as unknown as CompilingModule)._compile;
  const pending = new Map(Object.entries(STACK_POPS).map(([name, count]) => [require.resolve(`fengari/src/${name}`), count]));
  (Module.prototype as unknown as CompilingModule)._compile = function (this: CompilingModule, content: string, filename: string) {
    const expected = pending.get(filename);
    if (expected === undefined) return compile.call(this, content, filename);
    pending.delete(filename);
    let changes = 0;
    const patched = content.replace(STACK_POP, (_pop, state: string, index: string) => {
      changes++;
      return `${state}.stack[${index}] = void 0`;
    });
    if (changes !== expected) throw new Error(`fengari internals changed: ${filename} has ${changes} stack pops, not ${expected}`);
    return compile.call(this, patched, filename);
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fengari = require('fengari');
    if (pending.size > 0) throw new Error(`fengari was loaded before its stack pops could be changed (${[...pending.keys()].join(', ')}): load connmix-ts before anything else that requires fengari`);
    return fengari;
  } finally {
    (Module.prototype as unknown as CompilingModule)._compile = compile;
  }
}

interface CompilingModule {
  _compile(content: string, filename: string): unknown;
}

/** `delete <state>.stack[<index>]`, as fengari pops its stack. */
const STACK_POP = /delete (\w+)\.stack\[([^\]]+)\]/g;

/** Fengari's modules that pop their stack with `delete`, and how many times each does. */
const STACK_POPS: Record<string, number> = {
  'lapi.js': 18,
  'ldebug.js': 1,
  'ldo.js': 5,
  'lparser.js': 1,
  'ltm.js': 1,
  'lvm.js': 3,
};
