#!/bin/sh
# Runs `npm test` beside two busy CPU loops, as on a machine shared with other work: the suite must pass
# there too (functional tests wait with generous bounds; timings belong in bench/). The loops are bounded
# by `timeout` (BUSY_SECONDS, default 3600) and ended by their pids when the suite ends, however it ends.
# With arguments, runs only those test files (e.g. dist/test/browser.test.js) the way `npm test` would.
set -u
seconds=${BUSY_SECONDS:-3600}
pids=""
for n in 1 2; do
  timeout "$seconds" sh -c 'while :; do :; done' &
  pids="$pids $!"
done
stop_loops() {
  # shellcheck disable=SC2086 # one pid per word
  kill $pids 2>/dev/null
}
trap stop_loops EXIT
trap 'exit 130' INT TERM
echo "test:busy: two busy loops running (pids$pids)"
status=0
if [ $# -gt 0 ]; then
  { npm run build && node --test --test-concurrency=1 --test-timeout=180000 --test-force-exit "$@"; } || status=$?
else
  npm test || status=$?
fi
exit "$status"
