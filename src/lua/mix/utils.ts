import type { LuaFunction } from '../fengari/index';
import { jsonEncode, jsonDecode } from './json';
import { base64Encode, base64Decode } from './base64';
import { strSplit, bytesToString } from './strings';
import { digest } from './digest';
import { parseUrlFn } from './url';

/**
 * The pure utilities of CONNMIX's `mix` table (CONNMIX docs, lua-api), in JS because Lua versions are far
 * slower in Fengari. Register with `luaL_setfuncs(L, MIX_UTILS, 0)` on the `mix` table. Wrong argument
 * types raise the standard `bad argument #n to 'name' (...)`; bad data gives `nil, err`.
 */
export const MIX_UTILS: Record<string, LuaFunction> = {
  json_encode: jsonEncode,
  json_decode: jsonDecode,
  base64_encode: base64Encode,
  base64_decode: base64Decode,
  str_split: strSplit,
  parse_url: parseUrlFn,
  parse_str: parseUrlFn,
  url_parse: parseUrlFn,
  bytes_tostring: bytesToString,
  md5: digest('md5', false),
  md5_bin: digest('md5', true),
  sha1: digest('sha1', false),
  sha1_bin: digest('sha1', true),
};
