import { lua, lauxlib, K, type LuaState, type LuaFunction } from '../fengari/index';
import { pushNilError } from '../vm';

const { lua_pushstring, lua_pushinteger, lua_newuserdata, lua_setfield, lua_pushvalue, lua_pop } = lua;
const { luaL_checkudata, luaL_checkinteger, luaL_argerror, luaL_newmetatable, luaL_setfuncs, luaL_setmetatable } = lauxlib;

/** The metatable name of input buffers (error messages show it: "connmix.buffer expected"). */
const BUFFER = K('connmix.buffer');

/** The JS side of a `buf`: the pending input and a read cursor. */
interface InputBuffer {
  bytes: Buffer;
  position: number;
}

function self(L: LuaState): InputBuffer {
  return luaL_checkudata(L, 1, BUFFER) as InputBuffer;
}

const methods: Record<string, LuaFunction> = {
  /** All the pending input, whatever the cursor. */
  tostring: (L) => {
    lua_pushstring(L, self(L).bytes);
    return 1;
  },
  /** `buf:read(n)` → the next n bytes, advancing the cursor; `nil, err` (cursor unchanged) if fewer remain. */
  read: (L) => {
    const buf = self(L);
    const n = luaL_checkinteger(L, 2);
    if (n < 0) return luaL_argerror(L, 2, K('length must not be negative'));
    if (buf.position + n > buf.bytes.length) {
      return pushNilError(L, `not enough data: ${n} bytes wanted, ${buf.bytes.length - buf.position} left`);
    }
    lua_pushstring(L, buf.bytes.subarray(buf.position, buf.position + n));
    buf.position += n;
    return 1;
  },
  /** Bytes read so far (0 at first): after reading a whole packet, its length. */
  position: (L) => {
    lua_pushinteger(L, self(L).position);
    return 1;
  },
  length: (L) => {
    lua_pushinteger(L, self(L).bytes.length);
    return 1;
  },
};

/** Registers the metatable of the `buf` objects that `protocol_input` receives (CONNMIX docs, configuration-protocols). */
export function registerBufferType(L: LuaState): void {
  luaL_newmetatable(L, BUFFER);
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, K('__index'));
  lua_pop(L, 1);
}

/**
 * Pushes a read-only `buf` over `bytes`. No copy is made: the caller never writes into `bytes`
 * (new input is appended into a new Buffer), so the view is the copy the reference promises.
 */
export function pushBuffer(L: LuaState, bytes: Buffer): void {
  const buf = lua_newuserdata(L, 0) as InputBuffer;
  buf.bytes = bytes;
  buf.position = 0;
  luaL_setmetatable(L, BUFFER);
}
