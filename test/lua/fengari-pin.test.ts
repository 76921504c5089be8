import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../support/helpers';

/**
 * The fengari 0.1.5 source files our patches were reviewed against (sha256). Our private copy runs
 * every one of them, and the files of src/lua/fengari/ (patches.ts, internals.ts, runtime-patches.ts,
 * memory.ts) rely on their internals, so any change is a review, not an upgrade.
 */
const REVIEWED: Record<string, string> = {
  'defs.js': 'fb33b082a4fad624a69f41eab16a7de9441b6801acd087d0af145127c19ab706',
  'fengari.js': '1c3c2fc82fdb843dfb085b28811a3818de63cb616b649f296ab72edb3097b568',
  'fengaricore.js': 'a9aaeaf5f51fffb0f020cdb3168a5c7324742269d84f6ed1a0c9a35fc0ea4603',
  'fengarilib.js': '38e0932d4a6b47067ba05671cade42416cc37cd8ded128f159f8a980e218ad10',
  'lapi.js': '49c1d89b701beeca32b1359807220ecf907c91df3336df929209e0b484150d15',
  'lauxlib.js': 'e15a84ad70d038174c8cea97db2d218e0febc025d99ac42bc10cc2c95992108d',
  'lbaselib.js': '59f1ab5a1e4b11d5e9e0a6c6297f334d73bd02271c60595cff2b74be1d02ae5c',
  'lcode.js': '892f534d4ae48287179cbaf0440b2b7f4c39b9d53a01cd139f94e5c980c9243c',
  'lcorolib.js': '8d78fc21541d4f79d8870709ab6a2089a28ec45f050e14e4aa044617a91177b6',
  'ldblib.js': 'cd4176c11d9cf43c59eb43f8ad91d61b5cda0c2aea0c88d326a5fc712c407524',
  'ldebug.js': '624f81be3133cae7d91ec88dbb3bec9f265c5394babe3e1fa864d612a1b6ac85',
  'ldo.js': '675bda3021b0d9b6c47e36e81b83c7956ff6542ad56ee2a811790255a826adf2',
  'ldump.js': '53642ae7cca7974b3f2dbc553932d6ecc8f2c4600d267c59e5e89b9c6af97ed9',
  'lfunc.js': 'd13616d58669f6cfc917fa721141afaa8c390a7c73694acfffc1fddc388aba3e',
  'linit.js': '0f2d0ade376ea535de145049a632de2c228f13c0983571f143c572c841abb030',
  'liolib.js': '2da5efcce13f6530f865586aef385c3ff63d5cfca0ef9c319504160dd71d4918',
  'ljstype.js': 'a414645dcd2bd5e014a35bcb186bb080a73874da017bf2172c8a06992847bfca',
  'llex.js': '4d760c53d1f97416d4b19760dfb196ff29ef56b9d5becf264734f90a44482382',
  'llimits.js': 'bd4263a9286c55949129b66d21f7fdc2335d9a7dbf0ecd62cabbfd68d8274de8',
  'lmathlib.js': '47993c9cabfe4b6bff18a7cf2eb66585ea566282a37550ea929a981dc4a5c595',
  'loadlib.js': '6bc1febfdc86442e245bf0eaed1a6fd9df7de2856ccea1e017f874150c06da6b',
  'lobject.js': '3984c89e245469ff79a72f19eaac96566800fdf06ad7bf5361fe2017d30362b2',
  'lopcodes.js': '05ff44648c2d2069e64a76e5125a7434ac98c50ee63c0341d7683d2524dc977e',
  'loslib.js': 'd5163ad3dec9d1b4854e84d0191a52791889745d326e038d10154b45aed123a6',
  'lparser.js': '23c6f045e91254d9aea1dde39dc886515252190a8d5255c71651c6801da95178',
  'lstate.js': '328179088667b512d9500333c445e07db84edd36b5698d2d7cbe3b8b09acc1ee',
  'lstring.js': '0552ef9782c35b8d6a8cf772771df43471cd3299304c4f35b6c58c8dce257235',
  'lstrlib.js': 'ede28093d6a71e5258d38472413d23caf47dc125013a53292d50cba6ec9c4367',
  'ltable.js': '388122d035f1f2e594586ddea68b30daa548953c438e1c817408c71a3e134146',
  'ltablib.js': 'd1348e28ee1dd8ad162e26f74f3e2cb49e2ab0b6d44f6f7f54b6ecd459a78712',
  'ltm.js': 'ced7bb56f13543b5f5119c45ead7da47e7bf6ce20174585f562f29dcbf754eda',
  'lua.js': 'f9c79d9315acaa265f5c6e4785f74083c5e5e62b7ad862ea6d09fa0f2f664698',
  'luaconf.js': 'b541739ac7c6a29b021c804ca1cb53eb8da32c3b12ff4cf9fa4d6cff83551e8c',
  'lualib.js': '363f078832dd0509e005072174b09f894eecdb7c411f4264b23eac811ac7fd30',
  'lundump.js': 'e979182d533d8238126625a8320856b254fe9b778100f5d3c586df8a31878274',
  'lutf8lib.js': 'ebd06c825e3971ee0db32933797539103f8e49353828ac44ab2a3db3657e8bf1',
  'lvm.js': 'b693090a36fddc1cdc152e731dbd008fa96cf67dbe930b96110abd7ec2676f0d',
  'lzio.js': 'a2cebc55a0ff60aed1536546325afec78dafed543b3bb4cd8dfb7bb2ff9ed37b',
};

test('fengari is pinned to the exact version whose sources were reviewed, and its files are unchanged', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(pkg.dependencies.fengari, '0.1.5', 'package.json must pin fengari to an exact version (the patches fit one version only)');
  const dir = path.dirname(require.resolve('fengari'));
  const installed = JSON.parse(fs.readFileSync(path.join(dir, '..', 'package.json'), 'utf8')) as { version: string };
  assert.equal(installed.version, '0.1.5');
  const files = fs.readdirSync(dir).filter((name) => name.endsWith('.js')).sort();
  const changed = files.filter((name) => REVIEWED[name] !== crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, name))).digest('hex'));
  const missing = Object.keys(REVIEWED).filter((name) => !files.includes(name));
  assert.deepEqual({ changed, missing }, { changed: [], missing: [] },
    'fengari\'s source differs from the reviewed 0.1.5: review every entry of src/lua/fengari/patches.ts (source patches, ' +
    'the replaced lstring.js, runtime patches) and the internals read by src/lua/fengari/internals.ts, runtime-patches.ts, ' +
    'and memory.ts against the new files, run the Lua tests, then record the new hashes here');
});
