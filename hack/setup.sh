#!/usr/bin/env bash
# Set up the development environment: a virtualenv in .venv with Headway and its test
# dependencies, and (as root, when missing) the Debian packages the real-parts tests run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet uv
fi
[ -x .venv/bin/python ] || uv venv --quiet --python python3 .venv
uv pip install --quiet --python .venv/bin/python -e '.[test]'

if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "note: prometheus is not installed; tests that need a real Prometheus will be skipped" >&2
  fi
fi
