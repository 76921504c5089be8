/**
 * Fengari internals the sandbox reaches into (budget, limits, memory): modules of our private copy,
 * typed for what we use. Only this folder imports it; see ./patches for why each is needed.
 */
import { privateFengari } from './load';
import type { LuaState } from './api';

const privateModule = privateFengari().module;

export const ldo = privateModule('ldo.js') as {
  luaD_precall(L: LuaState, off: number, nresults: number): boolean;
  luaD_throw(L: LuaState, status: number): never;
};
export const ldebug = privateModule('ldebug.js') as {
  luaG_traceexec(L: LuaState): void;
  luaG_runerror(L: LuaState, message: Uint8Array): never;
};
export const lobject = privateModule('lobject.js') as {
  luaO_tostring(L: LuaState, value: object): void;
  TValue: new (type: number, value: unknown) => StackValue;
};
export const ltable = privateModule('ltable.js') as {
  luaH_getint(table: TableObject, key: number): StackValue;
  luaH_setfrom(L: LuaState, table: TableObject, key: StackValue, value: StackValue): void;
};

/** A table (fengari's Table): its entries live in one Map, removed keys as tombstones (no value). */
export interface TableObject {
  strong: Map<unknown, unknown>;
  tombstones: number;
}
const lopcodes = privateModule('lopcodes.js') as { OpCodesI: Record<string, number> };
const defs = privateModule('defs.js') as { constant_types: Record<string, number> };

export const OP_CONCAT = lopcodes.OpCodesI.OP_CONCAT;
export const OP_EQ = lopcodes.OpCodesI.OP_EQ;
export const OP_LT = lopcodes.OpCodesI.OP_LT;
export const OP_LE = lopcodes.OpCodesI.OP_LE;
export const OP_VARARG = lopcodes.OpCodesI.OP_VARARG;
export const OP_CALL = lopcodes.OpCodesI.OP_CALL;
export const OP_TAILCALL = lopcodes.OpCodesI.OP_TAILCALL;
export const OP_SETLIST = lopcodes.OpCodesI.OP_SETLIST;
export const OP_LEN = lopcodes.OpCodesI.OP_LEN;
export const OP_RETURN = lopcodes.OpCodesI.OP_RETURN;
/** Value types of a Lua closure and of a JS function, as fengari tags stack values. */
export const LUA_TLCL = defs.constant_types.LUA_TLCL;
export const LUA_TLCF = defs.constant_types.LUA_TLCF;
/** The value type fengari gives every string on the stack. */
export const LUA_TLNGSTR = defs.constant_types.LUA_TLNGSTR;

/** A stack value (TValue). */
export interface StackValue {
  type: number;
  value: unknown;
  ttisstring(): boolean;
  ttisnumber(): boolean;
  ttistable(): boolean;
  ttisnil(): boolean;
  vslen(): number;
}

/** A Lua thread (lua_State) as fengari builds it: the fields we read or set. */
export interface Thread {
  /** The global_State, shared by the main thread and all its coroutines. */
  l_G: object;
  hookmask: number;
  hookcount: number;
  allowhook: number;
  top: number;
  ci: {
    /** The running function; a Lua closure's `p.k` holds its constants (RK operands with the 256 bit set). */
    func: { value: { p?: { k: StackValue[]; numparams: number } } };
    /** Stack index of the running function. */
    funcOff: number;
    callstatus: number;
    l_base: number;
    l_code: Array<{ opcode: number; A: number; B: number; C: number }>;
    l_savedpc: number;
  };
  stack: StackValue[];
}

/** The fengari object behind a `LuaState`. */
export function threadOf(L: LuaState): Thread {
  return L as unknown as Thread;
}
