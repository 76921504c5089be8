/**
 * Fengari's string module (`fengari/src/lstring.js`, fengari 0.1.5), replaced in our private copy
 * (see ./patches, "string keys").
 *
 * Fengari keys every table entry by a JS string made from the Lua string's bytes, and compares
 * strings (`<`, `table.sort`) by that key. Its key is "|" plus each byte in hex without padding:
 * slow (a JS string built per byte, ~10% of a short hook call) and ambiguous ("\1\35" and "\18\3"
 * both give "|123", so they are one table key and compare equal). Here the key is "|" plus one
 * character per byte (latin1): one native call, one key per byte sequence, ordered as the bytes are.
 * The rest is fengari's code as it is.
 */
export function stringModule(load: (name: string) => Record<string, unknown>): object {
  const defs = load('defs.js') as {
    luastring_eq(a: Uint8Array, b: Uint8Array): boolean;
    to_luastring(text: string): Uint8Array;
  };
  const { luastring_eq, to_luastring } = defs;

  class TString {
    hash: string | null = null;
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
  /** Takes ownership of the array. */
  function luaS_bless(L: unknown, str: Uint8Array): TString {
    return new TString(L, str);
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
    return interned.get(str) ?? new TString(L, new Uint8Array(str));
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
  return { TString, luaS_hash, luaS_eqlngstr, luaS_hashlongstr, luaS_bless, luaS_new, luaS_newliteral, luaS_intern };
}

/** Below this many bytes, String.fromCharCode beats making a Buffer view to decode. */
const SHORT = 64;

function latin1(bytes: Uint8Array): string {
  if (bytes.length <= SHORT) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}
