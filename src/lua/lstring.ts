import Module from 'node:module';

/**
 * Fengari's string module (`fengari/src/lstring.js`, fengari 0.1.5), replaced before fengari loads.
 *
 * Fengari keys every table entry by a JS string made from the Lua string's bytes, and compares
 * strings (`<`, `table.sort`) by that key. Its key is "|" plus each byte in hex without padding:
 * slow (a JS string built per byte, ~10% of a short hook call) and ambiguous ("\1\35" and "\18\3"
 * both give "|123", so they are one table key and compare equal). Here the key is "|" plus one
 * character per byte (latin1): one native call, one key per byte sequence, ordered as the bytes are.
 * The rest is fengari's code as it is.
 */
export function replaceFengariStrings(): void {
  const file = require.resolve('fengari/src/lstring.js');
  if (require.cache[file]) throw new Error('fengari was loaded before its string module could be replaced: load connmix-ts before anything else that requires fengari');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { luastring_eq, to_luastring } = require('fengari/src/defs.js');

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
  /** Copies the array (with the typed-array constructor: a third of the cost of fengari's Uint8Array.from). */
  function luaS_new(L: unknown, str: Uint8Array): TString {
    return new TString(L, new Uint8Array(str));
  }
  /** Takes a JS string. */
  function luaS_newliteral(L: unknown, str: string): TString {
    return new TString(L, to_luastring(str));
  }
  const exports = { TString, luaS_hash, luaS_eqlngstr, luaS_hashlongstr, luaS_bless, luaS_new, luaS_newliteral };
  const module = new Module(file);
  module.filename = file;
  module.loaded = true;
  module.exports = exports;
  require.cache[file] = module;
}

/** Below this many bytes, String.fromCharCode beats making a Buffer view to decode. */
const SHORT = 64;

function latin1(bytes: Uint8Array): string {
  if (bytes.length <= SHORT) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}
