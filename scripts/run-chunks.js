// Runs Lua chunks on connmix-ts's Lua (after `npm run build`), printing one line per chunk as
// scripts/gopher-oracle does: see scripts/gopher-diff.sh.
const { scriptVm } = require('../dist/test/support/lua-harness.js');

const chunks = require('node:fs').readFileSync(0, 'utf8').split('\n----\n').filter((chunk) => chunk.trim() !== '');
(async () => {
  const { exec } = scriptVm({ callBudget: 2000 });
  for (const chunk of chunks) {
    const r = await exec(`local r = table.pack((function(...)\n${chunk}\nend)())
      local out = {} for i = 1, r.n do out[i] = tostring(r[i]) end return table.concat(out, " | ")`);
    console.log(r.error ? `ERR: ${r.error.split('\nstack traceback')[0].replace(/\n/g, ' ')}` : String(r.values[0]).replace(/\n/g, '\\n'));
  }
})();
