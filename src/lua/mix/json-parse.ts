/**
 * JSON text straight to Lua values, in one pass over the bytes: no JS string of the text, no JS object
 * tree, no string re-encoded. `mix.json_decode` tries this first; on anything it does not take (bad
 * JSON, invalid UTF-8 inside a string, a limit reached) it gives up, and the general path (JSON.parse,
 * then values.ts) answers, with its error messages and its treatment of bad bytes. So this parser
 * only ever produces what the general path would, faster.
 */
import { isUtf8 } from 'node:buffer';
import { lua, lauxlib, pushStringRange, type LuaState } from '../fengari/index';
import { MAX_DEPTH } from '../values';

const { lua_pushnumber, lua_pushboolean, lua_pushnil, lua_createtable, lua_rawset, lua_rawseti } = lua;
const { luaL_checkstack } = lauxlib;

/** Why the parser gave up: the caller restores the stack and takes the general path. */
const GIVE_UP = Symbol('give up');

interface Cursor {
  readonly text: Uint8Array;
  at: number;
  /** Values the document may still hold (maxItems). */
  items: number;
  /** Bytes of a string with escapes, reused from one such string to the next. */
  scratch: Uint8Array;
}

/**
 * Pushes the value of the JSON document `text` and returns true, or returns false with the stack
 * possibly grown (the caller resets it) when the document is not one it takes.
 */
export function pushJsonDocument(L: LuaState, text: Uint8Array, maxItems: number): boolean {
  const cursor: Cursor = { text, at: 0, items: maxItems, scratch: EMPTY };
  try {
    skipSpace(cursor);
    pushValue(L, cursor, 0);
    skipSpace(cursor);
    return cursor.at === text.length;
  } catch (error) {
    if (error === GIVE_UP) return false;
    throw error;
  }
}

const EMPTY = new Uint8Array(0);

function giveUp(): never {
  throw GIVE_UP;
}

function skipSpace(c: Cursor): void {
  const text = c.text;
  let at = c.at;
  while (at < text.length) {
    const b = text[at];
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) break;
    at++;
  }
  c.at = at;
}

function pushValue(L: LuaState, c: Cursor, depth: number): void {
  if (--c.items < 0) giveUp();
  const b = c.text[c.at];
  if (b === 0x22) pushString(L, c);
  else if (b === 0x7b) pushObject(L, c, depth);
  else if (b === 0x5b) pushArray(L, c, depth);
  else if (b === 0x74) pushLiteral(L, c, 'true');
  else if (b === 0x66) pushLiteral(L, c, 'false');
  else if (b === 0x6e) pushLiteral(L, c, 'null');
  else lua_pushnumber(L, number(c));
}

function pushLiteral(L: LuaState, c: Cursor, word: 'true' | 'false' | 'null'): void {
  const text = c.text;
  for (let i = 0; i < word.length; i++) if (text[c.at + i] !== word.charCodeAt(i)) giveUp();
  c.at += word.length;
  if (word === 'null') lua_pushnil(L);
  else lua_pushboolean(L, word === 'true');
}

function pushObject(L: LuaState, c: Cursor, depth: number): void {
  if (openTable(L, c, depth, 0x7d)) return;
  for (;;) {
    if (c.text[c.at] !== 0x22) giveUp();
    pushString(L, c);
    skipSpace(c);
    if (c.text[c.at] !== 0x3a) giveUp();
    c.at++;
    skipSpace(c);
    pushValue(L, c, depth + 1);
    // A null stores nil: no entry, and none left by an earlier duplicate of its key (JSON.parse keeps the last).
    lua_rawset(L, -3);
    if (endOfItem(c, 0x7d)) return;
  }
}

function pushArray(L: LuaState, c: Cursor, depth: number): void {
  if (openTable(L, c, depth, 0x5d)) return;
  for (let n = 1; ; n++) {
    pushValue(L, c, depth + 1);
    lua_rawseti(L, -2, n);
    if (endOfItem(c, 0x5d)) return;
  }
}

/** Pushes the table of an object or array whose opening bracket is at the cursor; true if `close` follows at once. */
function openTable(L: LuaState, c: Cursor, depth: number, close: number): boolean {
  if (depth >= MAX_DEPTH) giveUp();
  luaL_checkstack(L, 3, 'value too deep');
  lua_createtable(L, 0, 0);
  c.at++;
  skipSpace(c);
  if (c.text[c.at] !== close) return false;
  c.at++;
  return true;
}

/** After an item: true past the closing bracket `close`, false past a comma (the next item follows). */
function endOfItem(c: Cursor, close: number): boolean {
  skipSpace(c);
  const next = c.text[c.at++];
  if (next === close) return true;
  if (next !== 0x2c) giveUp();
  skipSpace(c);
  return false;
}

/** A string without escapes is its bytes in the text: one copy, or none when short and already shared. */
function pushString(L: LuaState, c: Cursor): void {
  const text = c.text;
  const start = ++c.at;
  let at = start;
  let ascii = true;
  for (;;) {
    if (at >= text.length) giveUp();
    const b = text[at];
    if (b === 0x22) break;
    if (b === 0x5c) return pushEscapedString(L, c, start);
    if (b < 0x20) giveUp();
    if (b >= 0x80) ascii = false;
    at++;
  }
  // The general path decodes UTF-8 with replacement: only valid UTF-8 comes out unchanged.
  if (!ascii && !isUtf8(text.subarray(start, at))) giveUp();
  c.at = at + 1;
  pushStringRange(L, text, start, at);
}

function pushEscapedString(L: LuaState, c: Cursor, start: number): void {
  const text = c.text;
  if (c.scratch.length < text.length - start) c.scratch = new Uint8Array(text.length - start);
  const out = c.scratch;
  let length = 0;
  let at = start;
  let ascii = true;
  for (;;) {
    if (at >= text.length) giveUp();
    const b = text[at++];
    if (b === 0x22) break;
    if (b < 0x20) giveUp();
    if (b !== 0x5c) {
      if (b >= 0x80) ascii = false;
      out[length++] = b;
      continue;
    }
    const e = text[at++];
    if (e === 0x75) {
      const unit = hex4(text, at);
      at += 4;
      // Surrogates (paired or not) take the general path, which decides what they become.
      if (unit >= 0xd800 && unit <= 0xdfff) giveUp();
      length = putUtf8(out, length, unit);
    } else {
      const simple = ESCAPES[e];
      if (simple === undefined) giveUp();
      out[length++] = simple;
    }
  }
  if (!ascii && !isUtf8(out.subarray(0, length))) giveUp();
  c.at = at;
  pushStringRange(L, out, 0, length);
}

const ESCAPES: Record<number, number> = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09 };

function hex4(text: Uint8Array, at: number): number {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    const b = text[at + i];
    const digit = b >= 0x30 && b <= 0x39 ? b - 0x30 : b >= 0x61 && b <= 0x66 ? b - 0x57 : b >= 0x41 && b <= 0x46 ? b - 0x37 : -1;
    if (digit < 0) giveUp();
    value = value * 16 + digit;
  }
  return value;
}

/** Writes a code point below 0x10000 (not a surrogate) as UTF-8; returns the new length. Never longer than its escape. */
function putUtf8(out: Uint8Array, length: number, cp: number): number {
  if (cp < 0x80) {
    out[length++] = cp;
  } else if (cp < 0x800) {
    out[length++] = 0xc0 | (cp >> 6);
    out[length++] = 0x80 | (cp & 0x3f);
  } else {
    out[length++] = 0xe0 | (cp >> 12);
    out[length++] = 0x80 | ((cp >> 6) & 0x3f);
    out[length++] = 0x80 | (cp & 0x3f);
  }
  return length;
}

/** A JSON number (RFC 8259 grammar) as JSON.parse reads it. */
function number(c: Cursor): number {
  const text = c.text;
  const start = c.at;
  let at = start;
  if (text[at] === 0x2d) at++;
  if (text[at] === 0x30) at++;
  else if (isDigit(text[at])) while (isDigit(text[at])) at++;
  else giveUp();
  let integral = true;
  if (text[at] === 0x2e) {
    integral = false;
    at++;
    if (!isDigit(text[at])) giveUp();
    while (isDigit(text[at])) at++;
  }
  if (text[at] === 0x65 || text[at] === 0x45) {
    integral = false;
    at++;
    if (text[at] === 0x2b || text[at] === 0x2d) at++;
    if (!isDigit(text[at])) giveUp();
    while (isDigit(text[at])) at++;
  }
  c.at = at;
  const negative = text[start] === 0x2d;
  // Up to 15 digits an integer is exact in a double: summed here, without a JS string.
  if (integral && at - start <= 15) {
    let value = 0;
    for (let i = negative ? start + 1 : start; i < at; i++) value = value * 10 + (text[i] - 0x30);
    return negative ? -value : value;
  }
  const digits = text.subarray(start, at);
  // fromCharCode.apply is quickest for the usual short number, but past some 100,000 digits its
  // arguments overflowed the JS stack (a 1 MiB message of digits failed as a host error).
  if (digits.length <= 64) return Number(String.fromCharCode.apply(null, digits as unknown as number[]));
  return Number(Buffer.from(digits.buffer, digits.byteOffset, digits.length).toString('latin1'));
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}
