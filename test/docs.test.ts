import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

// Compiled to dist/test/, so the repository is two folders up.
const ROOT = path.join(__dirname, '..', '..');

/** Markdown without fenced blocks and with inline code blanked, so text in code never counts as a link or heading. */
function prose(markdown: string): string[] {
  const lines: string[] = [];
  let fence: string | null = null;
  for (const line of markdown.split('\n')) {
    const marker = /^\s*(```|~~~)/.exec(line)?.[1];
    if (marker !== undefined && (fence === null || fence === marker)) {
      fence = fence === null ? marker : null;
      lines.push('');
      continue;
    }
    lines.push(fence === null ? line.replace(/`[^`]*`/g, 'code') : '');
  }
  return lines;
}

/** The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  const raw = markdown.split('\n');
  prose(markdown).forEach((line, i) => {
    if (!/^#{1,6} /.test(line)) return;
    const text = raw[i].replace(/^#{1,6} /, '').replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    out.add(count === 0 ? slug : `${slug}-${count}`);
  });
  return out;
}

/** Every relative link of a markdown file that does not lead where it says, as `file:line: target (why)`. */
export function brokenLinks(file: string, markdown: string): string[] {
  const problems: string[] = [];
  prose(markdown).forEach((line, i) => {
    for (const match of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = match[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: and the like
      const hash = target.indexOf('#');
      const filePart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
      const anchor = hash < 0 ? null : target.slice(hash + 1);
      const where = `${path.relative(ROOT, file)}:${i + 1}: ${target}`;
      const resolved = filePart === '' ? file : path.resolve(path.dirname(file), filePart);
      if (filePart !== '' && !fs.existsSync(resolved)) {
        problems.push(`${where} (no such file)`);
        continue;
      }
      if (anchor === null) continue;
      if (!resolved.endsWith('.md')) {
        problems.push(`${where} (an anchor into a file that is not markdown)`);
        continue;
      }
      const text = resolved === file ? markdown : fs.readFileSync(resolved, 'utf8');
      if (!anchors(text).has(decodeURIComponent(anchor))) problems.push(`${where} (no such heading)`);
    }
  });
  return problems;
}

function documents(): string[] {
  const docs = fs.readdirSync(path.join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).sort();
  return [path.join(ROOT, 'README.md'), ...docs.map((name) => path.join(ROOT, 'docs', name))];
}

test('every relative link in README.md and docs/*.md leads to a file that exists, and each #anchor to a heading in it', () => {
  const files = documents();
  assert.ok(files.length >= 10, `README.md and the docs/ guides, found ${files.length}`);
  const problems = files.flatMap((file) => brokenLinks(file, fs.readFileSync(file, 'utf8')));
  assert.deepEqual(problems, []);
});

test('the link check reports a missing file, a missing heading and a missing anchor in the same file, and passes good ones', () => {
  const file = path.join(ROOT, 'docs', 'example.md');
  const markdown = [
    '# Example',
    '## `protocol: socket` servers',
    'Good: [api](api.md), [hooks](lua.md#how-hooks-run), [here](#protocol-socket-servers), [web](https://example.com/x.md).',
    'Bad: [gone](nowhere.md), [heading](lua.md#no-such-heading), [self](#nothing-here).',
    '```',
    '[in a code block](nowhere-either.md)',
    '```',
    'And `[in code](nowhere-too.md)` is not a link.',
  ].join('\n');
  assert.deepEqual(brokenLinks(file, markdown), [
    'docs/example.md:4: nowhere.md (no such file)',
    'docs/example.md:4: lua.md#no-such-heading (no such heading)',
    'docs/example.md:4: #nothing-here (no such heading)',
  ]);
});

test('README.md stays a short front page: under 250 lines, the rest lives in docs/', () => {
  const lines = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n').length;
  assert.ok(lines < 250, `README.md has ${lines} lines`);
});
