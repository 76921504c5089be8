import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, TestClient, EVAL, type TestNode } from '../support/helpers';
import { phpPack, phpUnpack, PackError, type PackArg } from '../../src/lua/mix/php-pack';

// Expected bytes are written by hand from PHP's pack()/unpack() documentation and source.

/** Pack arguments as Lua would pass them: strings (with their number if numeric) and numbers. */
function args(...values: Array<string | number>): PackArg[] {
  return values.map((value) =>
    typeof value === 'number'
      ? { text: Buffer.from(String(value)), number: value, type: 'number' }
      : { text: Buffer.from(value, 'latin1'), number: value.trim() !== '' && !Number.isNaN(Number(value)) ? Number(value) : null, type: 'string' });
}

function pack(format: string, ...values: Array<string | number>): string {
  return phpPack(format, args(...values)).toString('hex');
}

function packError(format: string, ...values: Array<string | number>): string {
  try {
    phpPack(format, args(...values));
  } catch (error) {
    assert.ok(error instanceof PackError);
    return error.message;
  }
  throw new Error(`pack("${format}") did not fail`);
}

function unpack(format: string, hex: string): Record<string, string | number> {
  return Object.fromEntries(phpUnpack(format, Buffer.from(hex, 'hex')));
}

function unpackError(format: string, hex: string): string {
  try {
    phpUnpack(format, Buffer.from(hex, 'hex'));
  } catch (error) {
    assert.ok(error instanceof PackError);
    return error.message;
  }
  throw new Error(`unpack("${format}") did not fail`);
}

test('pack: integers in every byte order, wrapping like PHP', () => {
  assert.equal(pack('nvc*', 0x1234, 0x5678, 65, 66), '123478564142'); // the PHP manual's example
  assert.equal(pack('N', 1), '00000001');
  assert.equal(pack('V', 1), '01000000');
  assert.equal(pack('n', 0x10002), '0002');
  assert.equal(pack('c', -1), 'ff');
  assert.equal(pack('C', 256), '00');
  assert.equal(pack('C', 65.9), '41');
  assert.equal(pack('C', '66'), '42');
  assert.equal(pack('s', -2), 'feff');
  assert.equal(pack('S', 0xabcd), 'cdab');
  assert.equal(pack('i', -1), 'ffffffff');
  assert.equal(pack('l', 1), '01000000');
  assert.equal(pack('L', 0x01020304), '04030201');
  assert.equal(pack('J', 1), '0000000000000001');
  assert.equal(pack('P', 1), '0100000000000000');
  assert.equal(pack('q', -1), 'ffffffffffffffff');
  assert.equal(pack('Q', 2 ** 40), '0000000000010000');
  assert.equal(pack('N2', 1, 2), '0000000100000002');
  assert.equal(pack('C0'), '');
});

test('pack: floats', () => {
  assert.equal(pack('E', 1.5), '3ff8000000000000');
  assert.equal(pack('e', 1.5), '000000000000f83f');
  assert.equal(pack('d', 1.5), '000000000000f83f');
  assert.equal(pack('G', 1.5), '3fc00000');
  assert.equal(pack('g', 1.5), '0000c03f');
  assert.equal(pack('f', 1.5), '0000c03f');
});

test('pack: strings a, A, Z and hex h, H', () => {
  assert.equal(pack('a5', 'ab'), '6162000000');
  assert.equal(pack('A5', 'ab'), '6162202020');
  assert.equal(pack('a2', 'abc'), '6162');
  assert.equal(pack('a*', 'abc'), '616263');
  assert.equal(pack('a', 'abc'), '61');
  assert.equal(pack('Z5', 'ab'), '6162000000');
  assert.equal(pack('Z2', 'ab'), '6100');
  assert.equal(pack('Z*', 'ab'), '616200');
  assert.equal(pack('a3', 12), '313200');
  assert.equal(pack('H*', '48656c6c6f'), '48656c6c6f');
  assert.equal(pack('h*', '8456c6c6f6'), '48656c6c6f');
  assert.equal(pack('H3', 'abc'), 'abc0');
  assert.equal(pack('h3', 'abc'), 'ba0c');
  assert.equal(pack('H*', 'ABcd'), 'abcd');
});

test('pack: x, X and @ move the position', () => {
  assert.equal(pack('x2'), '0000');
  assert.equal(pack('a3X', 'abc'), '6162');
  assert.equal(pack('a3X2a', 'abc', 'z'), '617a');
  assert.equal(pack('a@3', 'a'), '610000');
  assert.equal(pack('a4@2', 'abcd'), '6162');
  assert.equal(pack('nNx', 1, 2), '00010000000200');
});

test('pack: errors where PHP warns or throws', () => {
  assert.equal(packError('N'), 'Type N: too few arguments');
  assert.equal(packError('N*a', 1), 'Type a: not enough arguments');
  assert.equal(packError('y', 1), 'Type y: unknown format code');
  assert.equal(packError('N', 1, 2), '1 arguments unused');
  assert.equal(packError('H*', 'zz'), 'Type H: illegal hex digit z');
  assert.equal(packError('H4', 'ab'), 'Type H: not enough characters in string');
  assert.equal(packError('X'), 'Type X: outside of string');
  assert.equal(packError('x*'), "Type x: '*' ignored");
  assert.equal(packError('N', 'abc'), 'Type N: argument 1 is not a number (got string)');
  assert.equal(packError('x99999999'), 'result longer than 16777216 bytes');
});

test('unpack: names, repeat counts and PHP numbering', () => {
  // The PHP manual's example: "c2chars/nint".
  assert.deepEqual(unpack('c2chars/nint', '01020005'), { chars1: 1, chars2: 2, int: 5 });
  assert.deepEqual(unpack('Nlen/a*data', '00000003616263'), { len: 3, data: 'abc' });
  assert.deepEqual(unpack('N2x', '0000000100000002'), { x1: 1, x2: 2 });
  assert.deepEqual(unpack('N', '00000001'), { 1: 1 });
  assert.deepEqual(unpack('C*', '010203'), { 1: 1, 2: 2, 3: 3 });
  assert.deepEqual(unpack('C*', ''), {});
  assert.deepEqual(unpack('C2/C', '010203'), { 1: 3, 2: 2 });
  assert.deepEqual(unpack('C0', '01'), {});
  assert.deepEqual(unpack('Ca/X/Cb', '07'), { a: 7, b: 7 });
  assert.deepEqual(unpack('x/C', '0102'), { 1: 2 });
  assert.deepEqual(unpack('@1/C', '0102'), { 1: 2 });
  assert.deepEqual(unpack('x*/a*s', '0102'), { s: '' });
});

test('unpack: integer and float codes', () => {
  assert.deepEqual(unpack('cv', 'ff'), { v: -1 });
  assert.deepEqual(unpack('Cv', 'ff'), { v: 255 });
  assert.deepEqual(unpack('nv', '1234'), { v: 0x1234 });
  assert.deepEqual(unpack('vv', '1234'), { v: 0x3412 });
  assert.deepEqual(unpack('sv', 'feff'), { v: -2 });
  assert.deepEqual(unpack('Sv', 'feff'), { v: 0xfffe });
  assert.deepEqual(unpack('Nv', 'ffffffff'), { v: 4294967295 });
  assert.deepEqual(unpack('Vv', '01000000'), { v: 1 });
  assert.deepEqual(unpack('lv', 'ffffffff'), { v: -1 });
  assert.deepEqual(unpack('Lv', 'ffffffff'), { v: 4294967295 });
  assert.deepEqual(unpack('iv', 'feffffff'), { v: -2 });
  assert.deepEqual(unpack('Iv', 'feffffff'), { v: 4294967294 });
  assert.deepEqual(unpack('Jv', '0000000000000102'), { v: 258 });
  assert.deepEqual(unpack('Pv', '0201000000000000'), { v: 258 });
  assert.deepEqual(unpack('qv', 'ffffffffffffffff'), { v: -1 });
  // PHP integers are signed 64-bit, so Q, J and P wrap too.
  assert.deepEqual(unpack('Jv', 'ffffffffffffffff'), { v: -1 });
  assert.deepEqual(unpack('Ev', '3ff8000000000000'), { v: 1.5 });
  assert.deepEqual(unpack('ev', '000000000000f83f'), { v: 1.5 });
  assert.deepEqual(unpack('Gv', '3fc00000'), { v: 1.5 });
  assert.deepEqual(unpack('gv', '0000c03f'), { v: 1.5 });
  assert.deepEqual(unpack('fv', 'cdcccc3d'), { v: Math.fround(0.1) });
});

test('unpack: strings a, A, Z and hex h, H', () => {
  assert.deepEqual(unpack('a4s', '61620000'), { s: 'ab\0\0' });
  assert.deepEqual(unpack('A*s', '6162200d0a0900'), { s: 'ab' });
  assert.deepEqual(unpack('Z*s', '6162006364'), { s: 'ab' });
  assert.deepEqual(unpack('Z2s/a*rest', '61626364'), { s: 'ab', rest: 'cd' });
  assert.deepEqual(unpack('a', '6162'), { 1: 'a' });
  assert.deepEqual(unpack('H*h', '48656c6c6f'), { h: '48656c6c6f' });
  assert.deepEqual(unpack('h*h', '48656c6c6f'), { h: '8456c6c6f6' });
  assert.deepEqual(unpack('H3h', 'abcd'), { h: 'abc' });
  assert.deepEqual(unpack('h3h', 'abcd'), { h: 'bad' });
});

test('unpack: errors where PHP warns or fails', () => {
  assert.equal(unpackError('C', ''), 'Type C: not enough input, need 1, have 0');
  assert.equal(unpackError('N', '0102'), 'Type N: not enough input, need 4, have 2');
  assert.equal(unpackError('a4', '61'), 'Type a: not enough input, need 4, have 1');
  assert.equal(unpackError('y', '00'), 'Invalid format type y');
  assert.equal(unpackError('X', ''), 'Type X: outside of string');
  assert.equal(unpackError('@5', '00'), 'Type @: outside of string');
  assert.equal(unpackError('x2', '00'), 'Type x: not enough input, need 1, have 0');
  assert.equal(unpackError('C9999999999', '00'), 'Type C: integer overflow');
});

test('round trips', () => {
  const format = 'nNvVcCa3A4Z4H4JqEg';
  const values = [0xbeef, 0xdeadbeef, 0x1234, 0x89abcdef, -5, 200, 'ab', 'xy', 'hi', 'c0de', 2 ** 50, -(2 ** 40), -2.25, 0.5];
  const packed = phpPack(format, args(...values));
  const names = 'na/Nb/vc/Vd/ce/Cf/a3g/A4h/Z4i/H4j/Jk/ql/Em/gn';
  const unpacked = phpUnpack(names, packed);
  assert.deepEqual([...unpacked.values()], [0xbeef, 0xdeadbeef, 0x1234, 0x89abcdef, -5, 200, 'ab\0', 'xy', 'hi', 'c0de', 2 ** 50, -(2 ** 40), -2.25, 0.5]);
});

describeLua();

/** The Lua functions on a real node: argument conversion, tables keyed like PHP arrays, `nil, err`. */
function describeLua(): void {
  let node: TestNode;
  let client: TestClient;
  before(async () => {
    node = await startNode({ lua: { 'lua/entry.websocket.lua': EVAL }, path: '/pack' });
    client = await TestClient.open(node.wsUrl);
  });
  after(async () => {
    client.close();
    await node.stop();
  });
  const run = async (lua: string): Promise<unknown[]> => JSON.parse(await client.request(lua));

  test('mix.php_pack / mix.php_unpack from Lua', async () => {
    assert.deepEqual(await run('return { mix.php_pack("nvc*", 0x1234, 0x5678, 65, 66):byte(1, -1) }'), [[0x12, 0x34, 0x78, 0x56, 65, 66]]);
    assert.deepEqual(await run('local s = mix.php_pack("Na*", 3, "a\\0b") return mix.php_unpack("Nlen/a*data", s)'), [{ len: 3, data: 'a\u0000b' }]);
    assert.deepEqual(await run('local t = mix.php_unpack("C*", "\\1\\2\\3") return #t, t[1], t[3]'), [3, 1, 3]);
    assert.deepEqual(await run('local t = mix.php_unpack("N2x", mix.php_pack("N2", 7, 8)) return t.x1, t.x2'), [7, 8]);
    assert.deepEqual(await run('return mix.php_pack("a3", 1.5)'), ['1.5']);
    assert.deepEqual(await run('local s, err = mix.php_pack("N") return tostring(s), err'), ['nil', 'Type N: too few arguments']);
    assert.deepEqual(await run('local s, err = mix.php_pack("N", {}) return tostring(s), err'), ['nil', 'Type N: argument 1 is not a number (got table)']);
    assert.deepEqual(await run('local t, err = mix.php_unpack("N", "ab") return tostring(t), err'), ['nil', 'Type N: not enough input, need 4, have 2']);
    const [ok, message] = await run('return pcall(function() return mix.php_unpack("N") end)');
    assert.equal(ok, false);
    assert.match(String(message), /bad argument #2 to 'php_unpack' \(string expected, got no value\)/);
  });
}
