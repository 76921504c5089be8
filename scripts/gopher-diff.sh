#!/bin/sh
# Runs the Lua chunks of FILE (separated by lines "----", each ending in a return) on gopher-lua, the
# Lua CONNMIX runs, and on connmix-ts, and prints each chunk whose answers differ. Needs Go and, once,
# the Go module proxy (`cd scripts/gopher-oracle && go mod tidy`), and a build (`npm run build`).
# Error messages differ in wording by design; values, printing and formatting should not.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
file=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
(cd "$here/gopher-oracle" && go run . ) < "$file" > "$out/gopher"
node "$here/run-chunks.js" < "$file" > "$out/ours"
node -e '
  const fs = require("node:fs");
  const [file, gopher, ours] = process.argv.slice(1);
  const chunks = fs.readFileSync(file, "utf8").split("\n----\n").filter((c) => c.trim() !== "");
  const a = fs.readFileSync(gopher, "utf8").split("\n");
  const b = fs.readFileSync(ours, "utf8").split("\n");
  let differ = 0;
  chunks.forEach((chunk, i) => {
    if (a[i] === b[i]) return;
    differ++;
    console.log(`${chunk.trim()}\n  gopher-lua: ${a[i]}\n  connmix-ts: ${b[i]}`);
  });
  console.log(`${differ} of ${chunks.length} chunks differ`);
' "$file" "$out/gopher" "$out/ours"
