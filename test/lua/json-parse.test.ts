import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { lua, lauxlib } from '../../src/lua/fengari/index';
import { pushJsonDocument } from '../../src/lua/mix/json-parse';
import { pushValue, toJs } from '../../src/lua/values';
import { prng } from '../support/fuzz';

/**
 * mix.json_decode's one-pass parser must give exactly what the general path (JSON.parse, then
 * values.ts) gives, or give up and leave the document to it. Compared on the Lua values themselves,
 * strings as bytes.
 */
const L = lauxlib.luaL_newstate();

function viaParser(text: Buffer): { taken: boolean; value: unknown } {
  lua.lua_settop(L, 0);
  const taken = pushJsonDocument(L, text, 100_000);
  const value = taken ? toJs(L, 1, { bytes: true }) : undefined;
  lua.lua_settop(L, 0);
  return { taken, value };
}

function viaJsonParse(text: Buffer): unknown {
  lua.lua_settop(L, 0);
  pushValue(L, JSON.parse(text.toString('utf8')));
  const value = toJs(L, 1, { bytes: true });
  lua.lua_settop(L, 0);
  return value;
}

function same(text: string | Buffer): boolean {
  const bytes = typeof text === 'string' ? Buffer.from(text) : text;
  const { taken, value } = viaParser(bytes);
  if (taken) assert.deepEqual(value, viaJsonParse(bytes), `${bytes.toString()}`);
  return taken;
}

test('json-parse: the documents scripts get take the one-pass path and decode as JSON.parse does', () => {
  const documents = [
    '{"op":"subscribe","channel":"100001@video"}', ' { "a" : [ 1 , 2.5 , -0 , 1e3 , -1.5E-2 , 0.1 ] } ', '[]', '{}', '"s"', '3',
    'true', 'false', '[true,false,null,1]', '{"a":null,"b":1}', '{"a":1,"a":2}', '{"a":1,"a":null}', '{"a":null,"a":1}',
    '{"2":"x","b":"y","1":"z"}', '{"id":1234567890123456789,"ms":1700000000123,"neg":-9223372036854775807}',
    '"tab\\there \\"quoted\\" \\\\ \\/ \\b\\f\\n\\r"', '"\\u00e9\\u4e2d\\u0000\\u007f\\u0080\\u07ff\\u0800\\uffff"',
    '"中文弹幕 émoji 😀"', '{"中":"文"}', '[[[[[[[[[[1]]]]]]]]]]', '{"__proto__":{"x":1},"constructor":2}',
    '123456789012345', '-123456789012345', '1234567890123456', '9007199254740993', '1e400', '-1e-400', '0.30000000000000004',
  ];
  for (const text of documents) assert.ok(same(text), `taken: ${text}`);
  // values.ts used to assign "__proto__", which set the JS object's prototype and lost the entry.
  assert.deepEqual(Object.keys(viaParser(Buffer.from('{"__proto__":1}')).value as object), ['__proto__']);
});

test('json-parse: what it does not take is left to JSON.parse (bad JSON, invalid UTF-8, surrogates, limits)', () => {
  const refused: Array<string | Buffer> = [
    '', ' ', '{', '[1,]', '{"a":1,}', '{"a" 1}', '{a:1}', '01', '1.', '.5', '-', '1e', '+1', 'tru', 'nul', 'True', "'s'",
    '"unterminated', '"ctl\u0001"', '"bad \\x escape"', '"\\u12"', '"\\uZZZZ"', '[1] x', '{"a":1}}',
    '"\\ud83d\\ude00"', '"\\ud800"', Buffer.from([0x22, 0xff, 0x22]), Buffer.from([0x22, 0xc3, 0x22]),
    Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), '[' + '['.repeat(70) + ']'.repeat(70) + ']',
  ];
  for (const text of refused) {
    const bytes = typeof text === 'string' ? Buffer.from(text) : text;
    assert.equal(viaParser(bytes).taken, false, `refused: ${bytes.toString('hex')}`);
  }
  lua.lua_settop(L, 0);
  assert.equal(pushJsonDocument(L, Buffer.from('[1,2,3]'), 3), false, 'four values with maxItems 3');
  lua.lua_settop(L, 0);
  assert.equal(pushJsonDocument(L, Buffer.from('[1,2]'), 3), true, 'three values with maxItems 3');
});

test('json-parse: random documents decode as JSON.parse decodes them', () => {
  const rng = prng(12345);
  const characters = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\u0001', 'é', '中', '😀', '\u2028', '{', '}'];
  const randomString = () => Array.from({ length: rng.int(8) }, () => rng.pick(characters)).join('');
  const randomValue = (depth: number): unknown => {
    const kind = rng.int(depth > 4 ? 5 : 7);
    if (kind === 0) return null;
    if (kind === 1) return rng.chance(0.5);
    if (kind === 2) return rng.pick([0, -1, 42, 1.5, -2.25e-7, 1e21, 123456789012, Math.PI]);
    if (kind === 3 || kind === 4) return randomString();
    if (kind === 5) return Array.from({ length: rng.int(5) }, () => randomValue(depth + 1));
    return Object.fromEntries(Array.from({ length: rng.int(5) }, () => [randomString(), randomValue(depth + 1)]));
  };
  let taken = 0;
  for (let i = 0; i < 2000; i++) {
    const value = randomValue(0);
    const text = rng.chance(0.5) ? JSON.stringify(value) : JSON.stringify(value, null, rng.pick([1, '\t']));
    if (same(text)) taken++;
  }
  assert.equal(taken, 2000, 'JSON.stringify output (valid UTF-8, no surrogate escapes) is always taken');
});
