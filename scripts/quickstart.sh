#!/usr/bin/env bash
# Installs mssante with its server extras in a virtual environment, starts the sandbox operator
# (state in .sandbox/) and runs the end-to-end demo, then keeps serving the webmail until Ctrl-C.
# Extra arguments go to `mssante demo` (e.g. --once to stop after the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[sandbox,bridge]'
exec .venv/bin/mssante demo --state-dir .sandbox "$@"
