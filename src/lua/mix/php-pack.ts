import { lua, lauxlib, bytesView, luaToJsString, raise, type LuaState, type LuaFunction } from '../fengari/index';
import { pushNilError } from '../vm';
import { stateLimits } from '../limits';

const { LUA_TSTRING, LUA_TNUMBER, lua_type, lua_typename, lua_tonumber, lua_isnumber, lua_tolstring, lua_gettop,
  lua_pop, lua_pushstring, lua_pushnumber, lua_createtable, lua_settable } = lua;
const { luaL_checklstring, luaL_tolstring } = lauxlib;

/** The longest string php_pack builds (a guard against formats like "x999999999"). */
export const MAX_PACK_BYTES = 16 * 1024 * 1024;

/** What PHP reports as a warning or an error; the Lua functions return it as `nil, err`. */
export class PackError extends Error {}

/** A call past engine.luavm.limits (more than maxItems steps, or a longer string): a Lua error. */
export class PackLimitError extends Error {}

/** Counts a call's steps (format codes and values) against maxItems. */
class Steps {
  private left: number;

  constructor(private readonly max: number) {
    this.left = max;
  }

  take(n = 1): void {
    this.left -= n;
    if (this.left < 0) throw new PackLimitError(`more than ${this.max} format items or values (the maxItems limit)`);
  }
}

/** One value to pack: its text (strings, and numbers as Lua prints them) and its number, where it has them. */
export interface PackArg {
  text: Buffer | null;
  number: number | null;
  /** The Lua type name, for messages. */
  type: string;
}

/** Byte sizes of the integer and float codes; every "machine order" code is little-endian (x86, ARM). */
const INT_SIZES: Record<string, number> = {
  c: 1, C: 1, s: 2, S: 2, n: 2, v: 2, i: 4, I: 4, l: 4, L: 4, N: 4, V: 4, q: 8, Q: 8, J: 8, P: 8,
};
const FLOAT_SIZES: Record<string, number> = { f: 4, g: 4, G: 4, d: 8, e: 8, E: 8 };
const BIG_ENDIAN = new Set(['n', 'N', 'J', 'G', 'E']);
const SIGNED = new Set(['c', 's', 'i', 'l', 'q', 'Q', 'J', 'P']); // PHP has no unsigned 64-bit integers
const STRING_CODES = new Set(['a', 'A', 'Z', 'h', 'H']);

/** A format code with its repeat count: -1 for `*`, 1 when none is given. */
function readCount(format: string, at: number): { count: number; next: number } {
  if (format[at] === '*') return { count: -1, next: at + 1 };
  let next = at;
  while (next < format.length && format[next] >= '0' && format[next] <= '9') next++;
  return { count: next === at ? 1 : Number(format.slice(at, next)), next };
}

/** A growable output with a write position that `X` and `@` may move back (PHP cuts the result there). */
class Output {
  private bytes = Buffer.alloc(64);
  pos = 0;

  /** Makes room for `n` bytes at the position. */
  reserve(n: number): Buffer {
    const end = this.pos + n;
    if (end > MAX_PACK_BYTES) throw new PackError(`result longer than ${MAX_PACK_BYTES} bytes`);
    if (end > this.bytes.length) {
      const grown = Buffer.alloc(Math.min(Math.max(end, this.bytes.length * 2), MAX_PACK_BYTES));
      this.bytes.copy(grown);
      this.bytes = grown;
    }
    return this.bytes;
  }

  /** Writes `n` bytes of `fill` at the position. */
  fill(n: number, fill: number): void {
    this.reserve(n).fill(fill, this.pos, this.pos + n);
    this.pos += n;
  }

  result(): Buffer {
    return Buffer.from(this.bytes.subarray(0, this.pos));
  }
}

/** PHP's integer conversion of a float: truncation, NaN and infinities to 0, wrapping modulo 2^64. */
function toInteger(n: number): bigint {
  return Number.isFinite(n) ? BigInt(Math.trunc(n)) : 0n;
}

function hexDigit(code: string, char: string): number {
  const value = parseInt(char, 16);
  if (Number.isNaN(value)) throw new PackError(`Type ${code}: illegal hex digit ${char}`);
  return value;
}

/**
 * PHP's pack(format, ...args) for the codes a A Z h H c C s S n v i I l L N V q Q J P f g G d e E x X @,
 * with repeat counts and `*`. Where PHP warns (unused arguments, bad hex digits, a `*` it ignores…) or
 * throws, this throws a PackError with PHP's message. `format` and string args are bytes (latin1).
 */
export function phpPack(format: string, args: PackArg[], maxItems = Infinity): Buffer {
  const out = new Output();
  const steps = new Steps(maxItems);
  let next = 0;
  for (let i = 0; i < format.length;) {
    steps.take();
    const code = format[i];
    const counted = readCount(format, i + 1);
    let count = counted.count;
    i = counted.next;
    if (code === 'x' || code === 'X' || code === '@') {
      if (count < 0) throw new PackError(`Type ${code}: '*' ignored`);
      if (code === 'x') {
        out.fill(count, 0);
      } else if (code === 'X') {
        if (count > out.pos) throw new PackError(`Type ${code}: outside of string`);
        out.pos -= count;
      } else if (count > out.pos) {
        out.fill(count - out.pos, 0);
      } else {
        out.pos = count;
      }
    } else if (STRING_CODES.has(code)) {
      if (next >= args.length) throw new PackError(`Type ${code}: not enough arguments`);
      const arg = args[next++];
      if (!arg.text) throw new PackError(`Type ${code}: argument ${next} is not a string (got ${arg.type})`);
      if (count < 0) count = arg.text.length + (code === 'Z' ? 1 : 0);
      if (code === 'h' || code === 'H') packHex(out, code, count, arg.text.toString('latin1'));
      else packString(out, code, count, arg.text);
    } else if (code in INT_SIZES || code in FLOAT_SIZES) {
      if (count < 0) count = args.length - next;
      if (next + count > args.length) throw new PackError(`Type ${code}: too few arguments`);
      steps.take(count);
      for (let k = 0; k < count; k++) {
        const arg = args[next++];
        if (arg.number === null) throw new PackError(`Type ${code}: argument ${next} is not a number (got ${arg.type})`);
        packNumber(out, code, arg.number);
      }
    } else {
      throw new PackError(`Type ${code}: unknown format code`);
    }
  }
  if (next < args.length) throw new PackError(`${args.length - next} arguments unused`);
  return out.result();
}

/** a (NUL-padded), A (space-padded), Z (NUL-padded, always NUL-terminated): exactly `count` bytes. */
function packString(out: Output, code: string, count: number, text: Buffer): void {
  const bytes = out.reserve(count);
  const copied = Math.min(text.length, code === 'Z' ? Math.max(0, count - 1) : count);
  bytes.fill(code === 'A' ? 0x20 : 0, out.pos, out.pos + count);
  text.copy(bytes, out.pos, 0, copied);
  out.pos += count;
}

/** h (low nibble first) and H (high nibble first): `count` hex digits of `text`. */
function packHex(out: Output, code: string, count: number, text: string): void {
  if (count > text.length) throw new PackError(`Type ${code}: not enough characters in string`);
  const size = Math.ceil(count / 2);
  const bytes = out.reserve(size);
  bytes.fill(0, out.pos, out.pos + size);
  for (let k = 0; k < count; k++) {
    const nibble = hexDigit(code, text[k]);
    const high = (code === 'H') === (k % 2 === 0);
    bytes[out.pos + (k >> 1)] |= high ? nibble << 4 : nibble;
  }
  out.pos += size;
}

function packNumber(out: Output, code: string, value: number): void {
  const bigEndian = BIG_ENDIAN.has(code);
  if (code in FLOAT_SIZES) {
    const size = FLOAT_SIZES[code];
    const bytes = out.reserve(size);
    if (size === 4) {
      if (bigEndian) bytes.writeFloatBE(value, out.pos);
      else bytes.writeFloatLE(value, out.pos);
    } else if (bigEndian) {
      bytes.writeDoubleBE(value, out.pos);
    } else {
      bytes.writeDoubleLE(value, out.pos);
    }
    out.pos += size;
    return;
  }
  const size = INT_SIZES[code];
  const bits = BigInt.asUintN(size * 8, toInteger(value));
  const bytes = out.reserve(size);
  for (let k = 0; k < size; k++) {
    const byte = Number((bits >> BigInt(8 * k)) & 0xffn);
    bytes[out.pos + (bigEndian ? size - 1 - k : k)] = byte;
  }
  out.pos += size;
}

/** A PHP array key: decimal integer strings become integers, as PHP's symbol tables make them. */
function arrayKey(name: string): string | number {
  if (/^(0|-?[1-9][0-9]*)$/.test(name)) {
    const n = Number(name);
    if (Number.isSafeInteger(n)) return n;
  }
  return name;
}

/**
 * PHP's unpack(format, data): `code[count|*][name]` items separated by `/`, giving a map keyed by
 * the names (PHP's numbering: a repeated or unnamed item gets `name1`, `name2`… or `1`, `2`…).
 * Strings come back as latin1 JS strings (bytes). Throws a PackError where PHP warns or fails.
 */
export function phpUnpack(format: string, data: Buffer, maxItems = Infinity, maxString = Infinity): Map<string | number, string | number> {
  const result = new Map<string | number, string | number>();
  const steps = new Steps(maxItems);
  let pos = 0;
  for (let i = 0; i < format.length;) {
    steps.take();
    const code = format[i];
    const counted = readCount(format, i + 1);
    let count = counted.count;
    if (count > 0x7fffffff) throw new PackError(`Type ${code}: integer overflow`);
    const slash = format.indexOf('/', counted.next);
    const end = slash < 0 ? format.length : slash;
    const name = format.slice(counted.next, Math.min(end, counted.next + 200));
    i = end + 1;
    const keyOf = (k: number): string | number => arrayKey(count === 1 && name.length > 0 ? name : `${name}${k + 1}`);

    if (code === 'X' || code === '@') {
      if (count < 0) throw new PackError(`Type ${code}: '*' ignored`);
      const target = code === 'X' ? pos - count : count;
      if (target < 0 || target > data.length) throw new PackError(`Type ${code}: outside of string`);
      pos = target;
    } else if (code === 'x') {
      // Skips `count` bytes (`*`: the rest), as PHP does one byte at a time.
      if (count < 0) pos = data.length;
      else if (pos + count > data.length) throw new PackError('Type x: not enough input, need 1, have 0');
      else pos += count;
    } else if (STRING_CODES.has(code)) {
      // One value; the count is its size: bytes for a A Z, hex digits for h H (-1: the rest).
      const digits = count;
      let size = code === 'h' || code === 'H' ? (count > 0 ? Math.ceil(count / 2) : count) : count;
      count = 1;
      if (size >= 0 && pos + size > data.length) {
        throw new PackError(`Type ${code}: not enough input, need ${size}, have ${data.length - pos}`);
      }
      if (size < 0) size = data.length - pos;
      const length = code === 'h' || code === 'H' ? 2 * size : size;
      if (length > maxString) throw new PackLimitError(`Type ${code}: a string of ${length} bytes exceeds the ${maxString}-byte limit`);
      const bytes = data.subarray(pos, pos + size);
      result.set(keyOf(0), unpackString(code, bytes, digits));
      pos += size;
    } else if (code in INT_SIZES || code in FLOAT_SIZES) {
      const size = INT_SIZES[code] ?? FLOAT_SIZES[code];
      for (let k = 0; k !== count; k++) {
        if (pos + size > data.length) {
          if (count < 0) break;
          throw new PackError(`Type ${code}: not enough input, need ${size}, have ${data.length - pos}`);
        }
        steps.take();
        result.set(keyOf(k), unpackNumber(code, data, pos));
        pos += size;
      }
    } else {
      throw new PackError(`Invalid format type ${code}`);
    }
  }
  return result;
}

function unpackString(code: string, bytes: Buffer, digits: number): string {
  if (code === 'a') return bytes.toString('latin1');
  if (code === 'A') return bytes.subarray(0, withoutTrailingBlanks(bytes)).toString('latin1');
  if (code === 'Z') {
    const nul = bytes.indexOf(0);
    return bytes.subarray(0, nul < 0 ? bytes.length : nul).toString('latin1');
  }
  let hex = bytes.toString('hex'); // high nibble first, as H wants
  if (code === 'h') {
    const digits = Buffer.from(hex, 'latin1');
    for (let k = 0; k + 1 < digits.length; k += 2) [digits[k], digits[k + 1]] = [digits[k + 1], digits[k]];
    hex = digits.toString('latin1');
  }
  // An odd digit count leaves out the last nibble.
  return digits > 0 && digits % 2 === 1 ? hex.slice(0, -1) : hex;
}

/** PHP's blanks for `A`: NUL, space, tab, CR, LF. */
const BLANKS = new Set([0x00, 0x20, 0x09, 0x0d, 0x0a]);

/**
 * The length of `bytes` without its trailing blanks. A loop from the end, not /[\0 \t\r\n]+$/: that
 * pattern tries every blank as a start and runs to the next non-blank each time, so 512 KB of blanks
 * before a letter (from a client, through a script's unpack) froze the node for minutes.
 */
function withoutTrailingBlanks(bytes: Buffer): number {
  let end = bytes.length;
  while (end > 0 && BLANKS.has(bytes[end - 1])) end--;
  return end;
}

function unpackNumber(code: string, data: Buffer, pos: number): number {
  const bigEndian = BIG_ENDIAN.has(code);
  if (code in FLOAT_SIZES) {
    if (FLOAT_SIZES[code] === 4) return bigEndian ? data.readFloatBE(pos) : data.readFloatLE(pos);
    return bigEndian ? data.readDoubleBE(pos) : data.readDoubleLE(pos);
  }
  const size = INT_SIZES[code];
  let bits = 0n;
  for (let k = 0; k < size; k++) bits |= BigInt(data[pos + (bigEndian ? size - 1 - k : k)]) << BigInt(8 * k);
  return Number(SIGNED.has(code) ? BigInt.asIntN(size * 8, bits) : bits);
}

/** A Lua argument as a pack value: strings keep their bytes, numbers their Lua text too. */
function packArg(L: LuaState, index: number): PackArg {
  const type = lua_type(L, index);
  const typeName = luaToJsString(lua_typename(L, type));
  if (type === LUA_TSTRING) {
    const text = Buffer.from(lua_tolstring(L, index)!);
    return { text, number: lua_isnumber(L, index) ? lua_tonumber(L, index) : null, type: typeName };
  }
  if (type === LUA_TNUMBER) {
    const text = Buffer.from(luaL_tolstring(L, index));
    lua_pop(L, 1);
    return { text, number: lua_tonumber(L, index), type: typeName };
  }
  return { text: null, number: null, type: typeName };
}

/** `mix.php_pack(format, ...)` → `s, err`. */
export const phpPackFn: LuaFunction = (L) => {
  const format = bytesView(luaL_checklstring(L, 1)).toString('latin1');
  const args: PackArg[] = [];
  for (let i = 2, n = lua_gettop(L); i <= n; i++) args.push(packArg(L, i));
  let packed: Buffer;
  try {
    packed = phpPack(format, args, stateLimits(L).maxItems);
  } catch (error) {
    if (error instanceof PackError) return pushNilError(L, error.message);
    if (error instanceof PackLimitError) return raise(L, `php_pack: ${error.message}`);
    throw error;
  }
  lua_pushstring(L, packed);
  return 1;
};

/** `mix.php_unpack(format, data)` → `tb, err`: strings as bytes, numbers as numbers. */
export const phpUnpackFn: LuaFunction = (L) => {
  const format = bytesView(luaL_checklstring(L, 1)).toString('latin1');
  const data = Buffer.from(luaL_checklstring(L, 2));
  let values: Map<string | number, string | number>;
  const limits = stateLimits(L);
  try {
    values = phpUnpack(format, data, limits.maxItems, limits.maxStringSize);
  } catch (error) {
    if (error instanceof PackError) return pushNilError(L, error.message);
    if (error instanceof PackLimitError) return raise(L, `php_unpack: ${error.message}`);
    throw error;
  }
  lua_createtable(L, 0, values.size);
  for (const [key, value] of values) {
    if (typeof key === 'number') lua_pushnumber(L, key);
    else lua_pushstring(L, Buffer.from(key, 'latin1'));
    if (typeof value === 'number') lua_pushnumber(L, value);
    else lua_pushstring(L, Buffer.from(value, 'latin1'));
    lua_settable(L, -3);
  }
  return 1;
};
