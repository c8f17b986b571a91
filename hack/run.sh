#!/usr/bin/env bash
# Set up and run Headway.
#   hack/run.sh                      # no cluster needed: a local tour (emulated API server + the real operator)
#   hack/run.sh operator [flags]     # run the operator against your current kubeconfig (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh
if [ "${1:-}" = "operator" ]; then
  shift
  exec .venv/bin/headway operator "$@"
fi
exec .venv/bin/python hack/demo.py
