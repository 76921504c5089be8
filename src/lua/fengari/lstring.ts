/**
 * Fengari's string module (`fengari/src/lstring.js`, fengari 0.1.5), replaced in our private copy
 * (see ./patches, "string keys").
 *
 * Fengari keys every table entry by a JS string made from the Lua string's bytes, and compares
 * strings (`<`, `table.sort`) by that key. Its key is "|" plus each byte in hex without padding:
 * slow (a JS string built per byte, ~10% of a short hook call) and ambiguous ("\1\35" and "\18\3"
 * both give "|123", so they are one table key and compare equal). Here the key is "|" plus one
 * character per byte (latin1): one native call, one key per byte sequence, ordered as the bytes are.
 *
 * Short strings are shared, as real Lua interns them: fengari made a new string (a TString and its
 * Uint8Array, about 250 bytes of heap) for every piece a script or the host produced, "op" from
 * each decoded message included, and built its table key again on first use. Here a bounded table
 * remembers the last string of each hash slot; a new short string with the same bytes is that one.
 * Lua strings are immutable, so sharing one is invisible to scripts.
 */
export function stringModule(load: (name: string) => Record<string, unknown>): object {
  const defs = load('defs.js') as {
    luastring_eq(a: Uint8Array, b: Uint8Array): boolean;
    to_luastring(text: string): Uint8Array;
  };
  const { luastring_eq, to_luastring } = defs;

  class TString {
    hash: string | null = null;
    /** The string as the host decoded it (see checkJsString), kept for short strings only. */
    js: string | null = null;
    constructor(
      _L: unknown,
      readonly realstring: Uint8Array,
    ) {}

    getstr(): Uint8Array {
      return this.realstring;
    }

    tsslen(): number {
      return this.realstring.length;
    }
  }

  // Function declarations, not arrows or methods: fengari calls some with `new` (`new luaS_new(L, s)` in ltm.js).
  function luaS_hash(str: Uint8Array): string {
    return '|' + latin1(str);
  }
  function luaS_eqlngstr(a: TString, b: TString): boolean {
    return a === b || luastring_eq(a.realstring, b.realstring);
  }
  function luaS_hashlongstr(ts: TString): string {
    return (ts.hash ??= luaS_hash(ts.realstring));
  }
  /** Takes ownership of the array (a short one may be dropped for the shared string with its bytes). */
  function luaS_bless(L: unknown, str: Uint8Array): TString {
    return str.length <= SHORT_STRING_MAX ? shortString(L, str, 0, str.length, true) : new TString(L, str);
  }

  /**
   * The last two short strings made in each pair of slots (picked by the hash's top bits, the newer
   * one first): two ways, so that two strings in use together that fall in one pair do not evict
   * each other on every use. A miss replaces the older one, so the table never grows, and a string
   * only scripts still use lives on in them.
   */
  const shortStrings: Array<TString | undefined> = new Array(SHORT_STRING_SLOTS);

  /** The shared string with the bytes source[start..end) (at most SHORT_STRING_MAX), made (owning `source` if `owned`) on a miss. */
  function shortString(L: unknown, source: Uint8Array, start: number, end: number, owned: boolean): TString {
    const newer = (hashBytes(source, start, end) >>> (32 - SHORT_STRING_SLOT_BITS)) & ~1;
    const first = shortStrings[newer];
    if (first !== undefined && sameBytes(first.realstring, source, start, end)) return first;
    const second = shortStrings[newer + 1];
    if (second !== undefined && sameBytes(second.realstring, source, start, end)) return second;
    const fresh = new TString(L, owned ? source : copyBytes(source, start, end));
    shortStrings[newer + 1] = first;
    shortStrings[newer] = fresh;
    return fresh;
  }

  /** A Lua string of the bytes source[start..end), copied unless a shared short string has them. */
  function luaS_newrange(L: unknown, source: Uint8Array, start: number, end: number): TString {
    if (end - start <= SHORT_STRING_MAX) return shortString(L, source, start, end, false);
    return new TString(L, copyBytes(source, start, end));
  }
  /**
   * Strings the host passes again and again (field and method names, see luaS_intern), by the array
   * the host holds: a weak map, so a constant that goes unused lets its string go.
   */
  const interned = new WeakMap<Uint8Array, TString>();
  /**
   * Copies the array (with the typed-array constructor: a third of the cost of fengari's Uint8Array.from),
   * unless it is an interned constant: then its one TString, whose key is already built and hashed.
   */
  function luaS_new(L: unknown, str: Uint8Array): TString {
    const constant = interned.get(str);
    if (constant !== undefined) return constant;
    if (str.length <= SHORT_STRING_MAX) return shortString(L, str, 0, str.length, false);
    return new TString(L, new Uint8Array(str));
  }
  /**
   * Makes `str` (which its holder must never change) an interned constant: every later luaS_new of
   * this same array gives one shared TString. Fengari otherwise makes a TString per lua_setfield,
   * lua_getfield or lua_pushstring of a name, and builds and hashes its table key on each first use.
   */
  function luaS_intern(str: Uint8Array): Uint8Array {
    if (!interned.has(str)) {
      const ts = new TString(null, new Uint8Array(str));
      luaS_hashlongstr(ts);
      interned.set(str, ts);
    }
    return str;
  }
  /** Takes a JS string. */
  function luaS_newliteral(L: unknown, str: string): TString {
    return new TString(L, to_luastring(str));
  }
  return { TString, luaS_hash, luaS_eqlngstr, luaS_hashlongstr, luaS_bless, luaS_new, luaS_newrange, luaS_newliteral, luaS_intern };
}

/** Strings up to this many bytes are shared (Lua's own short-string limit, LUAI_MAXSHORTLEN). */
export const SHORT_STRING_MAX = 40;
/** Slots of the shared short strings (2,048 pairs): 4,096 strings of at most 40 bytes, about 1 MB at most. */
const SHORT_STRING_SLOT_BITS = 12;
const SHORT_STRING_SLOTS = 1 << SHORT_STRING_SLOT_BITS;

/**
 * FNV-1a over bytes[start..end), then a multiply by 2^32/φ, whose top bits are the slot: FNV's own low
 * bits put strings such as "11" and "163" in one slot, where they would evict each other on every use.
 */
function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return Math.imul(hash, 0x9e3779b1) >>> 0;
}

function sameBytes(a: Uint8Array, source: Uint8Array, start: number, end: number): boolean {
  if (a.length !== end - start) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== source[start + i]) return false;
  return true;
}

/** A fresh array of bytes[start..end): a plain Uint8Array even when `bytes` is a Buffer, whose slice() only views. */
function copyBytes(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(bytes.subarray(start, end));
}

/** Below this many bytes, String.fromCharCode beats making a Buffer view to decode. */
const SHORT = 64;

function latin1(bytes: Uint8Array): string {
  if (bytes.length <= SHORT) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}
