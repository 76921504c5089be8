import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { scriptVm } from '../support/lua-harness';

/**
 * string.format's numeric conversions against what gopher-lua v1.1.1, CONNMIX's Lua, prints for the
 * same call (each expected text was printed by gopher-lua's own string.format). Fengari's sprintf-js
 * printed `%f` of 1/3 with 16 decimals, `%e` as `1.23456789e+4`, rounded ties away from even, refused
 * `%x` of 2^32 and 3.7, and ignored the precision of `%g` past six digits.
 */
const CASES: Array<[format: string, args: string, gopher: string]> = [
  ["%f", "1/3", "0.333333"],
  ["%.2f", "2.675", "2.67"],
  ["%.0f", "2.5", "2"],
  ["%.0f", "3.5", "4"],
  ["%.1f", "0.25", "0.2"],
  ["%10.3f|", "3.14159", "     3.142|"],
  ["%08.3f", "-3.14159", "-003.142"],
  ["%-8.2f|", "3.14159", "3.14    |"],
  ["%f", "1e22", "10000000000000000000000.000000"],
  ["%f", "-0.0", "-0.000000"],
  ["%e", "12345.6789", "1.234568e+04"],
  ["%.0e", "5", "5e+00"],
  ["%E", "1.5", "1.500000E+00"],
  ["%.2e", "0.000123456", "1.23e-04"],
  ["%g", "100000", "100000"],
  ["%g", "1000000", "1e+06"],
  ["%g", "0.0001", "0.0001"],
  ["%g", "1e-5", "1e-05"],
  ["%g", "1/3", "0.3333333333333333"],
  ["%g", "2^53", "9.007199254740992e+15"],
  ["%.3g", "1234567", "1.23e+06"],
  ["%.3g", "0.00012345", "0.000123"],
  ["%.10g", "1e6", "1000000"],
  ["%.0g", "7.5", "8"],
  ["%#g", "1.5", "1.50000"],
  ["%#.1G", "1e-7", "1.E-07"],
  ["%G", "1e-10", "1E-10"],
  ["%d", "3.7", "3"],
  ["%d", "-3.7", "-3"],
  ["%d", "2^31", "2147483648"],
  ["%d", "1e15", "1000000000000000"],
  ["%d", "2^63", "-9223372036854775808"],
  ["%d", "1/0", "-9223372036854775808"],
  ["%5d|%-5d|%05d", "42, 42, 42", "   42|42   |00042"],
  ["%+d % d", "5, 5", "+5  5"],
  ["%.3d", "7", "007"],
  ["%.0d|", "0", "|"],
  ["%x %X %o", "255, 255, 8", "ff FF 10"],
  ["%x", "2^32", "100000000"],
  ["%x", "-255", "-ff"],
  ["%#x", "255", "0xff"],
  ["%#o", "8", "010"],
  ["%0#5X", "1", "0X00001"],
  ["%08x", "3735928559", "deadbeef"],
  ["%c%c", "72, 105.9", "Hi"],
  ["%c", "233", "é"],
  ["%5c|", "65", "    A|"],
  ["%f %e %g", "1/0, -1/0, 0/0", "+Inf -Inf NaN"],
  ["%5.1f|", "1/0", " +Inf|"],
  ["% f", "1/0", " Inf"],
  ["%d", "\"12\"", "12"],
];

test('string.format prints numbers as gopher-lua (CONNMIX) does: %c %d %i %o %x %X %e %E %f %g %G, flags, widths, precisions', async () => {
  const { exec, lines } = scriptVm();
  const wrong: string[] = [];
  for (const [format, args, expected] of CASES) {
    const r = await exec(`return string.format(${JSON.stringify(format)}, ${args})`);
    const got = r.error ?? String(r.values[0]);
    if (got !== expected) wrong.push(`string.format(${JSON.stringify(format)}, ${args}): ${JSON.stringify(got)}, gopher-lua ${JSON.stringify(expected)}`);
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual(lines.filter((line) => line.includes('native error')), []);
});

test('string.format leaves %s, %q and %% to Lua, and still refuses a missing argument or a bad conversion', async () => {
  const { exec } = scriptVm();
  const r = await exec('return string.format("%s|%5s|%q|%%|%d", 1.5, "ab", "a\\nb", 7)');
  assert.deepEqual(r.values, ['1.5|   ab|"a\\\nb"|%|7']);
  const missing = await exec('return pcall(string.format, "%d %d", 1)');
  assert.equal(missing.values[0], false);
  assert.match(String(missing.values[1]), /bad argument #3 to '.+' \(no value\)/);
  const letter = await exec('return pcall(string.format, "%y", 1)');
  assert.match(String(letter.values[1]), /invalid (option|conversion) '%y' to 'format'/);
  const wide = await exec('return pcall(string.format, "%100d", 1)');
  assert.equal(wide.values[0], false);
});
