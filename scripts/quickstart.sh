#!/usr/bin/env bash
# Installs mssante with its server extras in a virtual environment and starts the sandbox
# operator (state in .sandbox/). Ctrl-C stops it. Extra arguments go to `mssante sandbox up`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[sandbox,bridge]'
exec .venv/bin/mssante sandbox up --state-dir .sandbox "$@"
