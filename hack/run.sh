#!/usr/bin/env bash
# Set up and run Headway.
#   hack/run.sh                      # no cluster needed: the sandbox plays three scenes on this machine (the embedded
#                                    # API server, the real operator, real BentoML servers, a real Prometheus, live traffic)
#   hack/run.sh [sandbox flags]      # e.g. --fast, -f my-model.yaml --keep, --fault errors=5%  (see --help)
#   hack/run.sh operator [flags]     # run the operator against your current kubeconfig (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh
if [ "${1:-}" = "operator" ]; then
  shift
  exec .venv/bin/headway operator "$@"
fi
exec .venv/bin/headway sandbox "$@"
