import type { LuaState } from './index';

/**
 * An estimate of the memory a Lua state holds: Fengari has no allocator hook and no collector of its
 * own (V8 collects its objects), so the only way to know what a script keeps is to walk what it can reach.
 * The walk starts at the registry (globals, loaded modules, the host's references), the type
 * metatables, and the stacks of the threads given, and adds up rough V8 sizes of every table entry,
 * string, function, userdata and thread it reaches once. It is proportional to the state's size
 * (about 1 s per 600 MB estimated: a million small tables, on a loaded 2-core box), so the VM runs it only when the process heap has grown.
 */

/**
 * Rough V8 sizes in bytes (64-bit, pointer compression off), from heap snapshots of Fengari objects,
 * checked against the heap 100,000 of each common shape take once collected (test/lua/memory.test.ts):
 * the first figures (160, 120, 80) left the estimate at half to two thirds of the heap a script kept.
 */
const TABLE = 280; // Table + its two Maps
const ENTRY = 160; // Map slot + {key, value, p, n} + two TValues, with the Map's spare room
const STRING = 170; // TString + Uint8Array header + TValue
/** A short string's decoded text, when the host kept it: a V8 string of at most 40 characters. */
const KEPT_TEXT = 64;
/** A string's bytes below this many cost as much as this many (the typed array's smallest store). */
const STRING_BYTES_AT_LEAST = 64;
const CLOSURE = 96;
const UPVALUE = 40;
const USERDATA = 128;
const THREAD = 512;
const SLOT = 40; // a stack slot's TValue
/** What a compiled function (./compile) holds per instruction: its JS source and V8's code for it. */
const COMPILED_INSTRUCTION = 700;

/* Fengari's basic type tags (lua.h), read from `TValue.type & 0x0f`. */
const T_STRING = 4;
const T_TABLE = 5;
const T_FUNCTION = 6;
const T_USERDATA = 7;
const T_THREAD = 8;

interface TValue {
  type: number;
  value: unknown;
}
interface TableObject {
  /** Removed keys stay as tombstones, without a value (see the patch 'removed keys leave tombstones'). */
  strong: Map<unknown, { key: TValue; value: TValue | undefined }>;
  metatable: TableObject | null;
}
interface StringObject {
  realstring: Uint8Array;
  /** Its decoded text, when the host kept it (index.ts checkJsString). */
  js: string | null;
}
interface ClosureObject {
  upvals?: TValue[];
  upvalue?: TValue[];
  p?: ProtoObject;
}
interface ProtoObject {
  k: TValue[];
  p: ProtoObject[];
  code: unknown[];
  compiled?: unknown;
}
interface UserdataObject {
  metatable: TableObject | null;
  uservalue: TValue;
}
interface ThreadObject {
  stack: TValue[] | null;
  top: number;
}
interface GlobalObject {
  l_registry: TValue;
  mt: Array<TableObject | null | undefined>;
  mainthread: ThreadObject;
}

/**
 * Estimated bytes reachable from `L`'s registry, type metatables and main thread, plus from the stacks
 * of `threads` (suspended hook calls, which only the host references).
 */
export function estimateStateBytes(L: LuaState, threads: Iterable<LuaState> = []): number {
  const g = (L as unknown as { l_G: GlobalObject }).l_G;
  const seen = new Set<unknown>();
  const pending: TValue[] = [g.l_registry];
  let bytes = 0;
  const pushTable = (table: TableObject | null | undefined) => {
    if (table) pending.push({ type: T_TABLE, value: table });
  };
  for (const mt of g.mt) pushTable(mt);
  pending.push({ type: T_THREAD, value: g.mainthread });
  for (const thread of threads) pending.push({ type: T_THREAD, value: thread });

  while (pending.length > 0) {
    const tv = pending.pop() as TValue;
    const type = tv.type & 0x0f;
    if (type < T_STRING) continue; // nil, booleans, numbers, light userdata: inside their TValue
    const object = tv.value;
    if (object === null || object === undefined || seen.has(object)) continue;
    seen.add(object);
    switch (type) {
      case T_STRING:
        bytes += STRING + Math.max((object as StringObject).realstring.length, STRING_BYTES_AT_LEAST);
        if ((object as StringObject).js) bytes += KEPT_TEXT;
        break;
      case T_TABLE: {
        const table = object as TableObject;
        bytes += TABLE + table.strong.size * ENTRY; // tombstones hold memory too, until purged
        pushTable(table.metatable);
        for (const entry of table.strong.values()) if (entry.value !== undefined) pending.push(entry.key, entry.value);
        break;
      }
      case T_FUNCTION: {
        if (typeof object === 'function') break; // a light JS function: host code, not the script's
        const closure = object as ClosureObject;
        const upvalues = closure.upvals ?? closure.upvalue ?? [];
        bytes += CLOSURE + upvalues.length * UPVALUE;
        for (const upvalue of upvalues) if (upvalue) pending.push(upvalue);
        if (closure.p) bytes += protoBytes(closure.p, seen, pending);
        break;
      }
      case T_USERDATA: {
        const userdata = object as UserdataObject;
        bytes += USERDATA;
        pushTable(userdata.metatable);
        pending.push(userdata.uservalue);
        break;
      }
      case T_THREAD: {
        const thread = object as ThreadObject;
        const stack = thread.stack ?? [];
        bytes += THREAD + stack.length * SLOT;
        for (let i = 0; i < thread.top && i < stack.length; i++) if (stack[i]) pending.push(stack[i]);
        break;
      }
      default:
        break;
    }
  }
  return bytes;
}

/** A function prototype's code (compiled too) and constants (shared by its closures: counted once), and those nested in it. */
function protoBytes(proto: ProtoObject, seen: Set<unknown>, pending: TValue[]): number {
  if (seen.has(proto)) return 0;
  seen.add(proto);
  let bytes = CLOSURE + proto.code.length * (typeof proto.compiled === 'function' ? SLOT + COMPILED_INSTRUCTION : SLOT);
  for (const constant of proto.k) pending.push(constant);
  for (const inner of proto.p) bytes += protoBytes(inner, seen, pending);
  return bytes;
}
