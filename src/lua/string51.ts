import { lua, lauxlib, raise, bytesView, type LuaState } from './fengari/index';
import { guardField } from './sandbox';
import { stateLimits, markUntimed, raiseTooLarge, checkBudgetSoon, LARGE_BYTES } from './limits';
import { formatNumber, NUMBER_CONVERSIONS, type NumberSpec } from './number-format';
import { mapCase, mapsByCharacter } from './unicode-case';

const { LUA_TSTRING, lua_pushinteger, lua_type, lua_gettop, lua_pushstring } = lua;
const { luaL_checknumber, luaL_checklstring } = lauxlib;

/**
 * `string.format`, `string.char`, `string.upper` and `string.lower` as gopher-lua (CONNMIX's Lua) has
 * them, each a guard in front of the function it replaces (sandbox's guardField): numeric conversions
 * print as Go prints them (./number-format), `string.char` wraps its arguments to bytes, and the case
 * functions map UTF-8 letters past ASCII (./unicode-case).
 */
export function openString51(L: LuaState): void {
  guardField(L, 'string', 'format', format51);
  markUntimed(guardField(L, 'string', 'char', char51));
  guardField(L, 'string', 'upper', caseMapping(true));
  guardField(L, 'string', 'lower', caseMapping(false));
}

/** `string.upper` (or lower): UTF-8 text past ASCII by character here, the rest by the function it guards. */
function caseMapping(upper: boolean): (L: LuaState) => number | undefined {
  return (L) => {
    const bytes: Uint8Array = luaL_checklstring(L, 1);
    if (!mapsByCharacter(bytes)) return undefined;
    const mapped = mapCase(bytes, upper);
    const max = stateLimits(L).maxStringSize;
    if (mapped.length > max) return raiseTooLarge(L, `string.${upper ? 'upper' : 'lower'}: result`, mapped.length, max);
    if (mapped.length >= LARGE_BYTES) checkBudgetSoon(L);
    lua_pushstring(L, mapped);
    return 1;
  };
}

const PERCENT = 0x25;
const FLAGS = new Set([0x2d, 0x2b, 0x20, 0x23, 0x30]); // - + space # 0
const isDigit = (byte: number) => byte >= 0x30 && byte <= 0x39;
const AS_STRING = Buffer.from('%s');
const LETTER_S = Buffer.from('s');

/**
 * `string.format` with the numeric conversions done here: each such spec becomes `%s` and its argument
 * the formatted text (a number or a numeric string, as gopher-lua takes; a float given to `%d` or `%x`
 * is truncated). A bare `%q` of a string is quoted here too. Everything else goes to the stock function,
 * whose own errors answer a missing argument or a bad conversion.
 */
const format51 = (L: LuaState): undefined => {
  const fmt: Uint8Array = luaL_checklstring(L, 1);
  /** Pieces of the format to replace, in order. */
  const edits: Array<{ from: number; to: number; text: Buffer }> = [];
  // The formatted numbers wait on the stack for the stock pass: counted, so a call past maxStringSize
  // stops here rather than after making all of them.
  const maxSize = stateLimits(L).maxStringSize;
  let size = fmt.length;
  let arg = 1;
  for (let i = 0; i < fmt.length; i++) {
    if (fmt[i] !== PERCENT) continue;
    if (fmt[i + 1] === PERCENT) {
      i++;
      continue;
    }
    arg++;
    let j = i + 1;
    while (FLAGS.has(fmt[j])) j++;
    const widthAt = j;
    let width = 0;
    for (; isDigit(fmt[j]); j++) width = width * 10 + fmt[j] - 0x30;
    const widthEnd = j;
    let precision: number | null = null;
    let precisionDigits = 0;
    if (fmt[j] === 0x2e) {
      const at = ++j;
      for (precision = 0; isDigit(fmt[j]); j++) precision = precision * 10 + fmt[j] - 0x30;
      precisionDigits = j - at;
    }
    const conversion = fmt[j];
    // Fengari read past the end for a format ending in "%" and named `undefined` as the option.
    if (conversion === undefined) return raise(L, `invalid conversion '${Buffer.from(fmt.subarray(i)).toString('latin1')}' to 'format'`);
    const letter = String.fromCharCode(conversion);
    // Widths and precisions of more than two digits are left to the stock function, which refuses them.
    if (NUMBER_CONVERSIONS.has(letter) && widthEnd - widthAt <= 2 && precisionDigits <= 2 && arg <= lua_gettop(L)) {
      const flags = widthAt === i + 1 ? '' : String.fromCharCode(...fmt.subarray(i + 1, widthAt));
      const spec: NumberSpec = { flags, width, precision, conversion: letter };
      const text = Buffer.from(formatNumber(spec, luaL_checknumber(L, arg)));
      size += text.length;
      if (size > maxSize) return raiseTooLarge(L, 'string.format: result', null, maxSize);
      lua_pushstring(L, text);
      lua.lua_replace(L, arg);
      edits.push({ from: i, to: j + 1, text: AS_STRING });
    } else if (letter === 'q' && j === i + 1 && lua_type(L, arg) === LUA_TSTRING) {
      lua_pushstring(L, quoted(L, lua.lua_tolstring(L, arg)!));
      lua.lua_replace(L, arg);
      edits.push({ from: j, to: j + 1, text: LETTER_S });
    }
    i = j;
  }
  if (edits.length > 0) {
    lua_pushstring(L, edited(fmt, edits));
    lua.lua_replace(L, 1);
  }
  return undefined;
};

/** `fmt` with each edit's range replaced by its text, copied into one buffer (no view per piece). */
function edited(fmt: Uint8Array, edits: ReadonlyArray<{ from: number; to: number; text: Buffer }>): Buffer {
  let size = fmt.length;
  for (const edit of edits) size += edit.text.length - (edit.to - edit.from);
  const source = bytesView(fmt);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  let from = 0;
  for (const edit of edits) {
    at += source.copy(out, at, from, edit.from);
    at += edit.text.copy(out, at);
    from = edit.to;
  }
  source.copy(out, at, from);
  return out;
}

/**
 * `string.char` as gopher-lua has it: each argument is truncated to an integer and wrapped to a byte
 * (`string.char(256)` is "\0", `string.char(65.9)` is "A"), where Lua 5.3 raises. Past maxItems
 * arguments the guarded function's own limit answers.
 */
const char51 = (L: LuaState): undefined => {
  const nargs = lua_gettop(L);
  if (nargs <= stateLimits(L).maxItems) {
    for (let i = 1; i <= nargs; i++) {
      lua_pushinteger(L, Math.trunc(luaL_checknumber(L, i)) & 0xff);
      lua.lua_replace(L, i);
    }
  }
  return undefined;
};

const isControl = (byte: number) => byte <= 0x1f || byte === 0x7f;

/**
 * `s` quoted as `%q` does (Lua 5.3: `"`, `\` and newline escaped by a backslash, other control bytes
 * as `\ddd`, padded to three digits before a digit). Fengari's own loop takes about a microsecond per
 * byte, so a `%q` of 8 MiB held the node for 12 s; this takes milliseconds, and the result is checked
 * against maxStringSize before it is built.
 */
function quoted(L: LuaState, s: Uint8Array): Buffer {
  let size = 2;
  for (let i = 0; i < s.length; i++) {
    const b = s[i];
    if (b === 0x22 || b === 0x5c || b === 0x0a) size += 2;
    else if (isControl(b)) size += isDigit(s[i + 1]) ? 4 : 1 + String(b).length;
    else size++;
  }
  const max = stateLimits(L).maxStringSize;
  if (size > max) return raiseTooLarge(L, 'string', size, max);
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  out[o++] = 0x22;
  for (let i = 0; i < s.length; i++) {
    const b = s[i];
    if (b === 0x22 || b === 0x5c || b === 0x0a) {
      out[o++] = 0x5c;
      out[o++] = b;
    } else if (isControl(b)) {
      const digits = isDigit(s[i + 1]) ? String(b).padStart(3, '0') : String(b);
      out[o++] = 0x5c;
      for (let k = 0; k < digits.length; k++) out[o++] = digits.charCodeAt(k);
    } else {
      out[o++] = b;
    }
  }
  out[o] = 0x22;
  return out;
}
