import * as fs from 'node:fs';
import * as path from 'node:path';
import { lua, K, raise, luaToJsString, checkJsString, type LuaState, type LuaFunction } from './fengari/index';
import { loadLua51 } from './syntax51';

const { LUA_OK, LUA_REGISTRYINDEX, lua_getfield, lua_setfield, lua_isnil, lua_pop, lua_pushvalue, lua_call,
  lua_pushboolean, lua_newtable, lua_tolstring } = lua;

/** Registry field holding the table of loaded modules (what `package.loaded` is in stock Lua). */
const LOADED = K('connmix.loaded');

/** Dotted (`utils.prettyprint`) or slashed (`protocols/websocket`, CONNMIX v1.0.1) module names. */
const MODULE_NAME = /^[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_-]+)*$/;

/** A module that the host provides instead of a file; it pushes the module value. */
export type BuiltinModule = (L: LuaState) => void;

/**
 * Installs `require`, limited to `.lua` files under `roots`, tried in order (the entry's own folder, then
 * the scripts folder): names cannot climb out of them and nothing is searched elsewhere. Modules load as
 * text only and are cached until `forgetModules`.
 */
export function openRequire(L: LuaState, roots: readonly string[], builtins: Record<string, BuiltinModule>): void {
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, LOADED);
  const require: LuaFunction = (L) => {
    const name = checkJsString(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LOADED);
    lua_getfield(L, -1, Buffer.from(name));
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    const builtin = builtins[name];
    if (builtin) {
      builtin(L);
    } else {
      loadModuleFile(L, roots, name);
      lua_pushvalue(L, 1);
      lua_call(L, 1, 1);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, true);
      }
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, Buffer.from(name));
    return 1;
  };
  lua.lua_pushjsfunction(L, require);
  lua.lua_setglobal(L, K('require'));
}

/** Drops every cached module, so the next `require` reads the files again (hot reload). */
export function forgetModules(L: LuaState): void {
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, LOADED);
}

function loadModuleFile(L: LuaState, roots: readonly string[], name: string): void {
  if (!MODULE_NAME.test(name)) raise(L, `module '${name}' not found: invalid module name`);
  const relative = name.replace(/\./g, '/') + '.lua';
  let source: Buffer | null = null;
  for (const root of roots) {
    try {
      source = fs.readFileSync(path.join(root, relative));
      break;
    } catch {
      // not in this folder: try the next
    }
  }
  if (source === null) raise(L, `module '${name}' not found: no file ${relative} in the entry's folder or the scripts folder`);
  if (loadLua51(L, source, `@${relative}`) !== LUA_OK) {
    raise(L, `error loading module '${name}': ${luaToJsString(lua_tolstring(L, -1)!)}`);
  }
}
