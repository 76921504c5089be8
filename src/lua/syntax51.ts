import { lua, lauxlib, K, type LuaState } from './fengari/index';

const { LUA_OK, LUA_ERRSYNTAX, lua_pop, lua_pushstring } = lua;
const { luaL_loadbufferx } = lauxlib;

/** A use of syntax that Lua 5.1 lacks: where it is and what it is. */
export interface Lua53Syntax {
  line: number;
  token: string;
  what: string;
}

const NAMES: Record<string, string> = {
  '//': 'floor division',
  '&': 'bitwise and',
  '|': 'bitwise or',
  '~': 'bitwise xor/not',
  '<<': 'left shift',
  '>>': 'right shift',
};

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
const OPEN = 0x5b; // [
const CLOSE = 0x5d; // ]
const EQUALS = 0x3d;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const APOSTROPHE = 0x27;
const SLASH = 0x2f;
const AMPERSAND = 0x26;
const BAR = 0x7c;
const TILDE = 0x7e;
const LESS = 0x3c;
const GREATER = 0x3e;

/**
 * The first Lua 5.3 operator in `source` (`//`, `&`, `|`, `~` other than in `~=`, `<<`, `>>`), or null.
 * CONNMIX runs gopher-lua (Lua 5.1), whose lexer rejects each of these, so a script using one never
 * ran there; Fengari (5.3) would accept it and compute something else. String literals (long brackets
 * included) and comments are skipped, so text that merely contains these characters is fine. `goto`
 * and `::labels::` are not refused: gopher-lua accepts them since v1.1.0 (January 2023).
 */
export function findLua53Syntax(source: Uint8Array): Lua53Syntax | null {
  const n = source.length;
  let line = 1;
  let i = 0;
  /** Steps over the newline at `at` (`\r\n` and `\n\r` count once, as Lua counts them); returns the next index. */
  const newline = (at: number): number => {
    line++;
    const next = source[at + 1];
    return (next === LF || next === CR) && next !== source[at] ? at + 2 : at + 1;
  };
  /** The level of a long bracket opening at `at` (`[[` = 0, `[==[` = 2), or -1 if none opens there. */
  const longBracket = (at: number): number => {
    let j = at + 1;
    while (source[j] === EQUALS) j++;
    return source[j] === OPEN ? j - at - 1 : -1;
  };
  /** Skips a long bracket of `level` opening at `at`; returns the index after its closing bracket. */
  const skipLong = (at: number, level: number): number => {
    let j = at + level + 2;
    while (j < n) {
      const c = source[j];
      if (c === LF || c === CR) {
        j = newline(j);
      } else if (c === CLOSE && closes(j, level)) {
        return j + level + 2;
      } else {
        j++;
      }
    }
    return n;
  };
  const closes = (at: number, level: number): boolean => {
    for (let k = 1; k <= level; k++) if (source[at + k] !== EQUALS) return false;
    return source[at + level + 1] === CLOSE;
  };
  const found = (token: string): Lua53Syntax => ({ line, token, what: NAMES[token] });
  while (i < n) {
    const c = source[i];
    const next = source[i + 1];
    if (c === LF || c === CR) {
      i = newline(i);
    } else if (c === DASH && next === DASH) {
      const level = source[i + 2] === OPEN ? longBracket(i + 2) : -1;
      if (level >= 0) {
        i = skipLong(i + 2, level);
      } else {
        i += 2;
        while (i < n && source[i] !== LF && source[i] !== CR) i++;
      }
    } else if (c === QUOTE || c === APOSTROPHE) {
      i++;
      while (i < n && source[i] !== c) {
        const d = source[i];
        if (d === LF || d === CR) break; // unterminated: the compiler has said so already
        if (d === BACKSLASH) {
          const escaped = source[i + 1];
          i = escaped === LF || escaped === CR ? newline(i + 1) : i + 2;
        } else {
          i++;
        }
      }
      i++;
    } else if (c === OPEN && (next === OPEN || next === EQUALS) && longBracket(i) >= 0) {
      i = skipLong(i, longBracket(i));
    } else if (c === SLASH && next === SLASH) {
      return found('//');
    } else if (c === AMPERSAND) {
      return found('&');
    } else if (c === BAR) {
      return found('|');
    } else if (c === TILDE) {
      if (next !== EQUALS) return found('~');
      i += 2;
    } else if (c === LESS && next === LESS) {
      return found('<<');
    } else if (c === GREATER && next === GREATER) {
      return found('>>');
    } else {
      i++;
    }
  }
  return null;
}

/**
 * luaL_loadbufferx for user code: compiles `source` as text, and also refuses Lua 5.3 operators (see
 * findLua53Syntax) with a message shaped like a compile error (`file:line: ...`). Like luaL_loadbufferx,
 * it leaves the chunk or the message on the stack and returns the status.
 */
export function loadLua51(L: LuaState, source: Uint8Array, chunkName: string): number {
  const status = luaL_loadbufferx(L, source, null, Buffer.from(chunkName), K('t'));
  if (status !== LUA_OK) return status;
  const syntax = findLua53Syntax(source);
  if (!syntax) return LUA_OK;
  lua_pop(L, 1);
  const file = chunkName.startsWith('@') || chunkName.startsWith('=') ? chunkName.slice(1) : chunkName;
  lua_pushstring(L, Buffer.from(`${file}:${syntax.line}: '${syntax.token}' (${syntax.what}) is Lua 5.3 syntax; `
    + 'CONNMIX runs Lua 5.1, which refuses it'));
  return LUA_ERRSYNTAX;
}
