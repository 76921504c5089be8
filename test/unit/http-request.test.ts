import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { pathMatches } from '../../src/wire/http-request';

test('pathMatches follows Go ServeMux: an exact path, or anything below a path that ends with "/", the query ignored', () => {
  const cases: Array<[string, string | undefined, boolean]> = [
    ['/barrage-videos', '/barrage-videos', true],
    ['/barrage-videos', '/barrage-videos?uid=1&token=a?b', true],
    ['/barrage-videos', '/barrage-videos/', false],
    ['/barrage-videos', '/barrage-videos-2', false],
    ['/barrage-videos', '/other?/barrage-videos', false],
    ['/', undefined, true],
    ['/', '/anything/below?x=1', true],
    ['/ws/', '/ws/', true],
    ['/ws/', '/ws/v1?x', true],
    ['/ws/', '/ws', false],
    ['/ws/', '/w?s/', false],
  ];
  for (const [path, url, expected] of cases) assert.equal(pathMatches(path, url), expected, `${path} against ${url}`);
});
