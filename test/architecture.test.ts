/**
 * The layer rule, checked on the source: every import in src/ runs downward or sideways, and no files import
 * each other in a circle (type-only imports count, since they couple the files just the same).
 *
 *   wire < config, metrics, queue, log < session < mesh < lua < server < api < engine, center, workers < cli
 *
 * src/client (the SDK shipped to backends) may import only wire/; src/index.ts may import whatever it re-exports.
 * Fengari (the package, and the raw internals of our private copy) is imported only inside src/lua/fengari/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '..', '..');
const SRC = path.join(ROOT, 'src');

/** Layer numbers, bottom up; files in one layer may import each other. */
const LAYERS: ReadonlyArray<readonly [RegExp, number, string]> = [
  [/^wire\//, 0, 'wire'],
  [/^(config|metrics|queue)\/|^log(-file)?\.ts$/, 1, 'config/metrics/queue/log'],
  [/^session\//, 2, 'session'],
  [/^mesh\//, 3, 'mesh'],
  [/^lua\//, 4, 'lua'],
  [/^server\//, 5, 'server'],
  [/^api\//, 6, 'api'],
  [/^(engine|center|workers)\.ts$/, 7, 'engine/center/workers'],
  [/^cli\.ts$/, 8, 'cli'],
];

function listSources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listSources(full));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out.sort();
}

/** What a file imports: the src/ files (relative specifiers, resolved) and the packages, from one parse. */
function importsOf(file: string): { files: string[]; packages: string[] } {
  const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
  const found: string[] = [];
  const packages: string[] = [];
  for (const ref of info.importedFiles) {
    if (!ref.fileName.startsWith('.')) {
      packages.push(ref.fileName);
      continue;
    }
    const base = path.resolve(path.dirname(file), ref.fileName);
    const candidates = [base, `${base}.ts`, `${base}.d.ts`, path.join(base, 'index.ts')];
    const hit = candidates.find((c) => c.endsWith('.ts') && fs.existsSync(c) && fs.statSync(c).isFile());
    if (hit === undefined) throw new Error(`${rel(file)} imports ${ref.fileName}, which does not resolve`);
    found.push(hit);
  }
  return { files: found, packages };
}

/** Where fengari may be reached: only src/lua/fengari/ imports the package or the folder's raw internals. */
const FENGARI_DOOR = 'lua/fengari/';
const FENGARI_INSIDE = new Set(['lua/fengari/internals.ts', 'lua/fengari/load.ts']);

/** Each src/ file's imports: src/ files as paths relative to src/, packages by their specifier. */
function buildSpecifierGraph(): Graph {
  const graph: Graph = new Map();
  for (const file of listSources(SRC)) {
    const { files, packages } = importsOf(file);
    graph.set(rel(file), [...files.map(rel), ...packages]);
  }
  return graph;
}

/** Imports of fengari (the package or this folder's internals) from outside src/lua/fengari/. */
function fengariViolations(graph: Graph): string[] {
  const bad: string[] = [];
  for (const [from, targets] of graph) {
    if (from.startsWith(FENGARI_DOOR)) continue;
    for (const to of targets) {
      if (to === 'fengari' || to.startsWith('fengari/') || FENGARI_INSIDE.has(to)) bad.push(`${from} -> ${to}`);
    }
  }
  return bad;
}

function rel(file: string): string {
  return path.relative(SRC, file).split(path.sep).join('/');
}

type Graph = Map<string, string[]>;

function buildGraph(): Graph {
  const graph: Graph = new Map();
  for (const file of listSources(SRC)) graph.set(rel(file), importsOf(file).files.map(rel));
  return graph;
}

/** What breaks the layer rule, one line per import. */
function layerViolations(graph: Graph): string[] {
  const bad: string[] = [];
  for (const [from, targets] of graph) {
    if (from === 'index.ts') continue; // the package entry re-exports across layers by design
    for (const to of targets) {
      if (from.startsWith('client/')) {
        if (!to.startsWith('client/') && !to.startsWith('wire/')) bad.push(`${from} -> ${to} (the SDK imports only wire/)`);
        continue;
      }
      if (to.startsWith('client/')) {
        bad.push(`${from} -> ${to} (nothing in the engine depends on the SDK)`);
        continue;
      }
      const a = layerOf(from);
      const b = layerOf(to);
      if (b[0] > a[0]) bad.push(`${from} (${a[1]}) -> ${to} (${b[1]})`);
    }
  }
  return bad;
}

function layerOf(file: string): readonly [number, string] {
  if (file === 'index.ts') return [Number.MAX_SAFE_INTEGER, 'index'];
  const hit = LAYERS.find(([re]) => re.test(file));
  if (hit === undefined) throw new Error(`src/${file} has no layer: add its folder to LAYERS in this test`);
  return [hit[1], hit[2]];
}

/** Every circle in the graph, each reported once as a path a -> b -> ... -> a. */
function circles(graph: Graph): string[] {
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const s = state.get(next);
      if (s === 'open') found.push([...stack.slice(stack.indexOf(next)), next].join(' -> '));
      else if (s === undefined) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

test('every import in src/ runs to its own layer or below (client/ imports only wire/)', () => {
  const graph = buildGraph();
  assert.ok(graph.size > 50, `read only ${graph.size} files from ${SRC}`);
  assert.deepEqual(layerViolations(graph), []);
});

test('no circle of imports in src/, type-only imports included', () => {
  assert.deepEqual(circles(buildGraph()), []);
});

test('only src/lua/fengari/ imports fengari: the package, its internals and the private copy\'s loader', () => {
  assert.deepEqual(fengariViolations(buildSpecifierGraph()), []);
});

test('the layer check itself catches an upward import and a circle', () => {
  const graph: Graph = new Map([
    ['wire/frame.ts', ['mesh/hub.ts']],
    ['mesh/hub.ts', ['wire/frame.ts']],
    ['client/client.ts', ['api/errors.ts']],
    ['api/errors.ts', []],
  ]);
  assert.deepEqual(layerViolations(graph), [
    'wire/frame.ts (wire) -> mesh/hub.ts (mesh)',
    'client/client.ts -> api/errors.ts (the SDK imports only wire/)',
  ]);
  assert.deepEqual(circles(graph), ['wire/frame.ts -> mesh/hub.ts -> wire/frame.ts']);
  const fengari: Graph = new Map([
    ['lua/limits.ts', ['lua/fengari/index.ts', 'lua/fengari/internals.ts']],
    ['lua/vm.ts', ['fengari/src/ldo.js', 'fengari']],
    ['lua/fengari/runtime-patches.ts', ['lua/fengari/internals.ts']],
  ]);
  assert.deepEqual(fengariViolations(fengari), [
    'lua/limits.ts -> lua/fengari/internals.ts',
    'lua/vm.ts -> fengari/src/ldo.js',
    'lua/vm.ts -> fengari',
  ]);
});
