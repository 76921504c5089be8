/**
 * Numbers as gopher-lua (CONNMIX's Lua) has them, in fengari's source (see ./patches, "integer results
 * past 32 bits become floats" and "numbers print as gopher-lua prints them").
 *
 * gopher-lua has one number type, float64. Fengari has Lua 5.3's integers, 32 bits wide: `100000 * 100000`
 * wrapped to 1410065408, a sum past 2^31 turned negative, and `0xffffffff` was -1. An integer operation
 * whose exact result leaves 32 bits now gives that result as a float, which is what float64 arithmetic
 * gives (for `*` the same rounding). `n % 0` is NaN, as for floats, rather than an error.
 *
 * gopher-lua's library functions truncate a float where they take an integer (`s:sub(1, #s / 2)`,
 * `math.random(1, n / 2)`); fengari's raised "number has no integer representation" for any fraction.
 *
 * gopher-lua prints an integral number in [-2^63, 2^63) in full, and any other as Go's shortest "%g"
 * (exponent below -4 or from 6 up: `1.2345675e+06`, `1e-05`; `+Inf`, `-Inf`, `NaN`). Fengari printed
 * floats with 14 significant digits and JS's exponent rules: 123456789012345 became "123456789012350",
 * a changed id in any key or message built from it.
 */

/** fengari's lvm.js and lobject.js integer arithmetic, and what each becomes. */
export const EXACT_INTEGER_ARITHMETIC: Readonly<Record<string, string>> = {
  'L.stack[ra].setivalue((op1.value + op2.value)|0);': 'setexact(L.stack[ra], op1.value + op2.value);',
  'L.stack[ra].setivalue((op1.value - op2.value)|0);': 'setexact(L.stack[ra], op1.value - op2.value);',
  'L.stack[ra].setivalue(luaV_imul(op1.value, op2.value));': 'setexact(L.stack[ra], op1.value * op2.value);',
  'L.stack[ra].setivalue((-op.value)|0);': 'setexact(L.stack[ra], -op.value);',
  'L.stack[ra].setivalue(luaV_mod(L, op1.value, op2.value));':
    'if (op2.value === 0) L.stack[ra].setfltvalue(NaN); else L.stack[ra].setivalue(luaV_mod(L, op1.value, op2.value));',
  // A for loop stays on integers only while its last step fits: `(idx + step)|0` wrapped and never ended.
  '(forlim = forlimit(plimit, pstep.value))': '(forlim = forlimit32(init.value, plimit, pstep.value))',
  'const luaV_imul = Math.imul ||': `/** Stores a result of integer operands: an integer while it fits in 32 bits, else the exact float. */
const setexact = function(o, r) {
    if (r === (r|0)) o.setivalue(r|0);
    else o.setfltvalue(r);
};
/** forlimit for an all-integer loop that can run on 32-bit integers to its end; false for a float loop. */
const forlimit32 = function(init, obj, step) {
    const ilimit = luaV_tointeger(obj, step < 0 ? 2 : 1);
    if (ilimit === false) return false;
    const past = ilimit + step, before = init - step;
    if (past !== (past|0) || before !== (before|0)) return false;
    return { stopnow: false, ilimit: ilimit };
};
const luaV_imul = Math.imul ||`,
  // Constant folding and lua_arith.
  'case LUA_OPADD:  return (v1 + v2)|0;': 'case LUA_OPADD:  return v1 + v2;',
  'case LUA_OPSUB:  return (v1 - v2)|0;': 'case LUA_OPSUB:  return v1 - v2;',
  'case LUA_OPMUL:  return lvm.luaV_imul(v1, v2);': 'case LUA_OPMUL:  return v1 * v2;',
  'case LUA_OPUNM:  return (0 - v1)|0;': 'case LUA_OPUNM:  return 0 - v1;',
  'res.setivalue(intarith(L, op, p1.value, p2.value));': 'lvm.setexact(res, intarith(L, op, p1.value, p2.value));',
  'module.exports.luaV_imul        = luaV_imul;': 'module.exports.luaV_imul        = luaV_imul;\nmodule.exports.setexact         = setexact;',
  // A hex numeral past 32 bits is read as a float (l_str2d reads hex too) instead of wrapping.
  'a = (a * 16 + luaO_hexavalue(s[i]))|0;': 'a = a * 16 + luaO_hexavalue(s[i]);',
  'if (empty || (i !== s.length && s[i] !== 0)) return null;':
    'if (empty || (i !== s.length && s[i] !== 0) || (neg ? -a : a) !== ((neg ? -a : a)|0)) return null;',
  // tonumber(s, base): digits the base does not have make it nil (parseInt stopped at them), and a
  // value past 32 bits is a float.
  'let v = parseInt(r[1]+r[2], base);\n    if (isNaN(v)) return null;\n    return v|0;':
    'for (const c of r[2]) if (parseInt(c, 36) >= base) return null;\n    let v = parseInt(r[1]+r[2], base);\n    if (isNaN(v)) return null;\n    return v;',
  'lua_pushinteger(L, n);\n            return 1;': 'if (n === (n|0)) lua_pushinteger(L, n); else lua_pushnumber(L, n);\n            return 1;',
  '    lua_pushinteger,\n    lua_pushliteral,': '    lua_pushinteger,\n    lua_pushnumber,\n    lua_pushliteral,',
};

/** fengari's float formatting (luaconf.js), replaced by gopher-lua's. */
export const GOPHER_NUMBER_TO_STRING = `const lua_number2str = function(n) {
    if (Number.isInteger(n) && n >= -9223372036854775808 && n < 9223372036854775808)
        return Number.isSafeInteger(n) ? String(n) : BigInt(n).toString();
    if (n !== n) return "NaN";
    if (n === Infinity) return "+Inf";
    if (n === -Infinity) return "-Inf";
    const shortest = n.toExponential();
    const e = shortest.indexOf("e");
    const exponent = Number(shortest.slice(e + 1));
    if (exponent >= -4 && exponent < 6) return String(n);
    return shortest.slice(0, e) + (exponent < 0 ? "e-" : "e+") + String(Math.abs(exponent)).padStart(2, "0");
};`;

/** fengari's luaL_checkinteger (lauxlib.js), truncating a float as gopher-lua's CheckInt does. */
export const TRUNCATING_CHECKINTEGER: Readonly<Record<string, string>> = {
  'let d = lua_tointegerx(L, arg);\n    if (d === false)\n        interror(L, arg);': `let d = lua_tointegerx(L, arg);
    if (d === false) {  /* a float truncates toward zero, clamped to the 32-bit integers; only a non-number fails */
        const n = lua_tonumberx(L, arg);
        if (n === false) interror(L, arg);
        d = n !== n ? -2147483648 : Math.max(-2147483648, Math.min(2147483647, Math.trunc(n)));
    }`,
};
