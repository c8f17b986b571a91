#!/usr/bin/env bash
# Set up and run every check CI runs: generated CRDs in sync, then the whole test suite.
#   hack/test.sh                 # everything
#   hack/test.sh tests/unit -x   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh
.venv/bin/python hack/gen_crds.py --check
set +e
# The slowest tests are listed at the end: the suite is kept under 15 minutes on two cores. Tests run
# in 4 processes (pytest-xdist): most end-to-end time is waiting (steps, scrapes, servers starting; three
# processes kept the two cores half idle), and work stealing (--dist worksteal) lets an idle process take
# tests queued on a busy one: with the default split the real-parts tests, collected together, ran one
# after another on one process for the last six minutes. The slow directories are collected first, so
# their long tests start early. HEADWAY_TEST_WORKERS=0 runs everything in this process.
if [ "$#" = 0 ]; then
  set -- tests/sandbox tests/realparts tests/e2e tests
fi
workers="${HEADWAY_TEST_WORKERS:-4}"
if [ "$workers" = 0 ]; then
  .venv/bin/python -m pytest --durations=20 "$@"
else
  .venv/bin/python -m pytest -n "$workers" --dist worksteal --durations=20 "$@"
fi
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
