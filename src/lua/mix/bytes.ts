import { lua, lauxlib, K, bytesView, type LuaState, type LuaFunction } from '../fengari/index';

const { lua_pushstring } = lua;
const { luaL_checklstring, luaL_argerror, luaL_newlib } = lauxlib;

/**
 * `xor(data, key)` → `data` with each byte XORed with the key's bytes in turn (the key repeats). A
 * WebSocket payload is unmasked this way; done a byte at a time in Lua on Fengari, a 64 KiB frame takes
 * longer than a hook's whole budget.
 */
const xor: LuaFunction = (L) => {
  const data = bytesView(luaL_checklstring(L, 1));
  const key = bytesView(luaL_checklstring(L, 2));
  if (key.length === 0) return luaL_argerror(L, 2, K('key must not be empty'));
  const out = Buffer.allocUnsafe(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] ^ key[i % key.length];
  lua_pushstring(L, out);
  return 1;
};

/** `require("connmix.bytes")` on `protocol: socket` servers: byte-string work too slow to do in Lua. */
export function bytesModule(L: LuaState): void {
  luaL_newlib(L, { xor });
}
