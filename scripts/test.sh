#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs the
# static checks and every test (unit, property, integration) against real
# memcached / redis processes started by the test harness on loopback.
# Ends with the test runner's summary and a plain "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; exit 1; }

status=0
echo "== typecheck"; npm run --silent typecheck || status=1
echo "== lint"; npm run --silent lint || status=1
echo "== format"; npm run --silent format:check || status=1

report=$(mktemp)
echo "== tests"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=1
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" || status=1
rm -f "$report"
exit $status
