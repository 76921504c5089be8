/**
 * gmatch and gsub as Lua 5.1 and gopher-lua (CONNMIX's Lua) step through a subject (see ./patches,
 * "empty matches after a match count, as in Lua 5.1"): after a match, the next try starts where it
 * ended, and an empty match there counts. Lua 5.3.6, which fengari follows, skips it.
 */

/** The match steps of gmatch and gsub in lstrlib.js, as Lua 5.1 wrote them. */
export const MATCHES_51: Readonly<Record<string, string>> = {
  'if ((e = match(gm.ms, src, gm.p)) !== null && e !== gm.lastmatch) {\n            gm.src = gm.lastmatch = e;':
    'if ((e = match(gm.ms, src, gm.p)) !== null) {\n            gm.src = e === src ? src + 1 : e;',
  'if ((e = match(ms, src, p)) !== null && e !== lastmatch) {  /* match? */\n            n++;\n            add_value(ms, b, src, e, tr);  /* add replacement to buffer */\n            src = lastmatch = e;\n        } else if (src < ms.src_end)':
    'if ((e = match(ms, src, p)) !== null) {\n            n++;\n            add_value(ms, b, src, e, tr);\n        }\n        if (e !== null && e > src) src = e;\n        else if (src < ms.src_end)',
};
