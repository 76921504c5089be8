/**
 * The numeric conversions of `string.format` (`%c %d %i %o %x %X %e %E %f %F %g %G`) as gopher-lua, CONNMIX's
 * Lua, prints them: it hands the number to Go's fmt. Fengari's sprintf-js got most of them wrong for
 * Lua: `%f` of 1/3 printed 16 decimals instead of 6, `%e` printed `1.23456789e+4`, `%x` refused 2^32 and
 * 3.7, and `%.3g` of 1234567 printed `1230000`.
 *
 * Go's rules, where they differ from C's: an integer conversion truncates a float (one out of int64's
 * range, infinities and NaN become -2^63, as Go converts them); a negative number prints with a minus
 * sign in `%x` and `%o` (`-ff`), not as two's complement; `%g` without a precision prints the shortest
 * digits that read back to the number (`0.3333333333333333`, `1e+06`); infinities and NaN print as
 * `+Inf`, `-Inf` and `NaN`; `%c` is a code point, UTF-8 encoded.
 */

/** One parsed conversion: `%[flags][width][.precision]conversion`. */
export interface NumberSpec {
  /** Any of `-+ #0`. */
  flags: string;
  width: number;
  /** null when the spec has no `.precision`. */
  precision: number | null;
  /** The conversion letter. */
  conversion: string;
}

/** Conversion letters formatted here. */
export const NUMBER_CONVERSIONS = new Set(['c', 'd', 'i', 'o', 'x', 'X', 'e', 'E', 'f', 'F', 'g', 'G']);

/** The text of `value` under `spec`, padded to its width. */
export function formatNumber(spec: NumberSpec, value: number): string {
  const { flags, conversion } = spec;
  if ('cdioxX'.includes(conversion)) {
    let n = Math.trunc(value);
    if (!(n >= -INT64 && n < INT64)) n = -INT64;
    // %c is the character with that code point (UTF-8 once encoded), U+FFFD for none.
    if (conversion === 'c') return pad(spec, '', isCodePoint(n) ? String.fromCodePoint(n) : '\ufffd', true);
    // A zero with precision 0 prints no digits, no sign and no prefix, only the padding.
    if (spec.precision === 0 && n === 0) return ' '.repeat(spec.width);
    const sign = n < 0 ? '-' : flags.includes('+') ? '+' : flags.includes(' ') ? ' ' : '';
    // Go zero-fills an integer by taking the width, less the sign, as its precision: a 0x prefix comes on top.
    const zeroFill = flags.includes('0') && !flags.includes('-') && spec.precision === null;
    const precision = zeroFill ? spec.width - sign.length : spec.precision;
    const [prefix, digits] = integerDigits(Math.abs(n), conversion, precision, flags.includes('#'));
    return pad(spec, sign + prefix, digits, false);
  }
  let sign = '';
  if (value < 0 || Object.is(value, -0)) sign = '-';
  else if (flags.includes('+')) sign = '+';
  else if (flags.includes(' ')) sign = ' ';
  else if (value === Infinity) sign = '+';
  if (!Number.isFinite(value)) return pad(spec, sign, Number.isNaN(value) ? 'NaN' : 'Inf', false);
  return pad(spec, sign, floatDigits(Math.abs(value), conversion, spec.precision, flags.includes('#')), true);
}

const INT64 = 2 ** 63;

const isCodePoint = (n: number) => n >= 0 && n <= 0x10ffff && (n < 0xd800 || n > 0xdfff);

/** `lead` (sign and prefix) and `body` padded to the spec's width: left-justified, zero-filled after `lead`, or right-justified. */
function pad(spec: NumberSpec, lead: string, body: string, zeroable: boolean): string {
  // Go counts characters (a code point past U+FFFF is one, not two UTF-16 units).
  const room = spec.width - lead.length - [...body].length;
  if (room <= 0) return lead + body;
  if (spec.flags.includes('-')) return lead + body + ' '.repeat(room);
  if (zeroable && spec.flags.includes('0')) return lead + '0'.repeat(room) + body;
  return ' '.repeat(room) + lead + body;
}

/** Prefix (`#`: 0x, 0X or 0) and digits of a whole number >= 0 in base 10, 8 or 16, at least `precision` digits. */
function integerDigits(n: number, conversion: string, precision: number | null, alternate: boolean): [string, string] {
  const radix = conversion === 'o' ? 8 : conversion === 'x' || conversion === 'X' ? 16 : 10;
  let digits = Number.isSafeInteger(n) ? n.toString(radix) : BigInt(n).toString(radix);
  if (precision !== null) digits = digits.padStart(precision, '0');
  if (conversion === 'X') digits = digits.toUpperCase();
  if (!alternate || radix === 10) return ['', digits];
  if (radix === 8) return ['', digits.startsWith('0') ? digits : `0${digits}`];
  return [conversion === 'X' ? '0X' : '0x', digits];
}

/** A finite float >= 0 as `%e`, `%f` or `%g` (upper case for E, F, G). */
function floatDigits(x: number, conversion: string, precision: number | null, alternate: boolean): string {
  const lower = conversion.toLowerCase();
  let text: string;
  if (lower === 'f') text = fixed(x, precision ?? 6);
  else if (lower === 'e') text = exponential(x, precision ?? 6);
  else text = general(x, precision, alternate);
  if (alternate && !text.includes('.')) text = text.replace(/^(\d+)/, '$1.');
  return conversion === lower ? text : text.toUpperCase();
}

/** `x` with `decimals` digits after the point, rounded half to even on its exact value, as C and Go do. */
function fixed(x: number, decimals: number): string {
  const digits = scaledRound(x, decimals).toString().padStart(decimals + 1, '0');
  return decimals === 0 ? digits : `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

/** `d.ddde+XX` with `decimals` digits after the point; the exponent has at least two digits, as C and Go print it. */
function exponential(x: number, decimals: number): string {
  const [digits, exponent] = significantDigits(x, decimals + 1);
  const mantissa = decimals === 0 ? digits : `${digits[0]}.${digits.slice(1)}`;
  return mantissa + exponentText(exponent);
}

/** `e+XX` / `e-XX`, at least two digits. */
function exponentText(exponent: number): string {
  return `e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
}

/** The first `count` significant digits of x > 0, correctly rounded, and the decimal exponent of the first. */
function significantDigits(x: number, count: number): [string, number] {
  if (x === 0) return ['0'.repeat(count), 0];
  let exponent = Number(x.toExponential().split('e')[1]);
  for (;;) {
    const digits = scaledRound(x, count - 1 - exponent).toString();
    if (digits.length > count) exponent++;
    else if (digits.length < count) exponent--;
    else return [digits, exponent];
  }
}

/** |x| * 10^power rounded half to even, computed exactly from x's binary value. */
function scaledRound(x: number, power: number): bigint {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biased = Number(bits >> 52n);
  const fraction = bits & 0xfffffffffffffn;
  // x = mantissa * 2^shift exactly; subnormals have no implicit leading bit.
  const mantissa = biased === 0 ? fraction : fraction | 0x10000000000000n;
  const shift = (biased === 0 ? 1 : biased) - 1075;
  let numerator = shift >= 0 ? mantissa << BigInt(shift) : mantissa;
  let denominator = shift >= 0 ? 1n : 1n << BigInt(-shift);
  if (power >= 0) numerator *= 10n ** BigInt(power);
  else denominator *= 10n ** BigInt(-power);
  const quotient = numerator / denominator;
  const twice = (numerator % denominator) * 2n;
  return twice > denominator || (twice === denominator && (quotient & 1n) === 1n) ? quotient + 1n : quotient;
}

/**
 * `%g`: with a precision p, p significant digits, in e-notation when the exponent is below -4 or at
 * least p, trailing zeros dropped unless `#`; without one, the shortest digits, in e-notation when the
 * exponent is below -4 or at least 6 (Go's rule for its shortest form).
 */
function general(x: number, precision: number | null, alternate: boolean): string {
  const trim = (text: string) => (alternate || !text.includes('.') ? text : text.replace(/\.?0+$/, ''));
  if (precision === null) {
    const [mantissa, shortestExponent] = x.toExponential().split('e');
    const exponent = Number(shortestExponent);
    // `#` keeps the shortest digits and adds zeros up to six significant ones, as Go does.
    const missing = alternate ? 6 - mantissa.replace('.', '').length : 0;
    if (exponent >= -4 && exponent < 6) return missing > 0 ? withZeros(String(x), missing) : String(x);
    return (missing > 0 ? withZeros(mantissa, missing) : mantissa) + exponentText(exponent);
  }
  const significant = Math.max(precision, 1);
  const [, exponent] = significantDigits(x, significant);
  if (exponent < -4 || exponent >= significant) {
    const text = exponential(x, significant - 1);
    const at = text.indexOf('e');
    return trim(text.slice(0, at)) + text.slice(at);
  }
  return trim(fixed(x, significant - 1 - exponent));
}

/** `text` (digits, maybe a point) with `count` more zeros after its last digit, and a point before them. */
function withZeros(text: string, count: number): string {
  return (text.includes('.') ? text : `${text}.`) + '0'.repeat(count);
}
