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
# in 3 processes (pytest-xdist): most end-to-end time is waiting (steps, scrapes, servers starting), so
# three keep two cores busy. HEADWAY_TEST_WORKERS=0 runs them in this process. The slow directories are
# collected first (pytest skips a path given twice), so their long tests start early instead of
# finishing last on one busy worker.
if [ "$#" = 0 ]; then
  set -- tests/sandbox tests/realparts tests/e2e tests
fi
.venv/bin/python -m pytest -n "${HEADWAY_TEST_WORKERS:-3}" --durations=20 "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
