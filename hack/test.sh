#!/usr/bin/env bash
# Set up and run every check CI runs: generated CRDs in sync, then the whole test suite.
#   hack/test.sh                 # everything
#   hack/test.sh tests/unit -x   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh
.venv/bin/python hack/gen_crds.py --check
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
