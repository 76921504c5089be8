/** `mix.md5`, `mix.md5_bin`, `mix.sha1`, `mix.sha1_bin`: digests of a string's bytes. */
import { createHash } from 'node:crypto';
import { lua, lauxlib, bytesView, type LuaFunction } from '../fengari/index';

const { lua_pushstring } = lua;
const { luaL_checklstring } = lauxlib;

/** A digest function: hex or raw bytes of the argument's bytes (never UTF-8 decoded). */
export function digest(algorithm: 'md5' | 'sha1', raw: boolean): LuaFunction {
  return (L) => {
    const hash = createHash(algorithm).update(bytesView(luaL_checklstring(L, 1)));
    lua_pushstring(L, raw ? hash.digest() : Buffer.from(hash.digest('hex'), 'latin1'));
    return 1;
  };
}
