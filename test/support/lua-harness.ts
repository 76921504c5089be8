import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Logger } from '../../src/log';
import { LuaVM, type LuaVmOptions } from '../../src/lua/vm';
import { toJs, type LuaValue } from '../../src/lua/values';
import { lua, type LuaState } from '../../src/lua/fengari/index';

/** A logger that keeps its lines in memory, for assertions. */
export function memoryLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger('debug', { write: (line: string) => lines.push(line) }), lines };
}

/** Writes `files` (relative path → Lua source) into a fresh temp folder and returns its path. */
export function luaFolder(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-lua-'));
  for (const [name, source] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), source);
  }
  return dir;
}

export interface RunResult {
  error: string | null;
  timedOut: boolean;
  values: LuaValue[];
}

/**
 * A VM whose entry defines `run(...)`: `exec(source)` compiles `source` as the body of a function and
 * calls it as a hook, returning what it returned (converted to JS) or its error.
 */
export function scriptVm(options: Partial<LuaVmOptions<object>> = {}, files: Record<string, string> = {}) {
  const entrySource = 'function run(src) local f = assert(load(src, "=test")) emit(f()) end';
  const dir = luaFolder({ 'entry.lua': entrySource, ...files });
  const { log, lines } = memoryLogger();
  let emitted: LuaValue[] = [];
  const vm = new LuaVM<object>({
    entry: path.join(dir, 'entry.lua'),
    hooks: ['run'],
    callBudget: 100,
    log,
    ...options,
    install: (vm) => {
      options.install?.(vm);
      lua.lua_pushjsfunction(vm.L, (L: LuaState) => {
        emitted = [];
        for (let i = 1, n = lua.lua_gettop(L); i <= n; i++) emitted.push(toJs(L, i));
        return 0;
      });
      lua.lua_setglobal(vm.L, Buffer.from('emit'));
    },
  });
  vm.load();
  const exec = (source: string, owner: object = {}): Promise<RunResult> =>
    new Promise((resolve) => {
      emitted = [];
      vm.call(owner, 'run', (L) => {
        lua.lua_pushstring(L, Buffer.from(source));
        return 1;
      }, (error) => resolve({ error: error ? error.traceback : null, timedOut: error?.timedOut ?? false, values: emitted }));
    });
  return { vm, dir, lines, exec };
}

export { toJs };
