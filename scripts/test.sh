#!/usr/bin/env bash
# Installs what the tests need (Debian packages, a virtual environment with mssante[test])
# and runs the whole suite: ruff, then pytest with branch coverage and its gates, with mypy --strict
# on src/ and lint-imports running beside pytest. Arguments, if any, go to pytest and run that
# subset alone (no coverage gates). Each stage's heading shows the seconds elapsed since the start.
# Works on a fresh Debian 12 machine with Python 3.11, as root (or with the packages present).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages used by the tests: openssl (PKI checks), curl and msmtp (independent IMAP/SMTP
# clients), redis-server (bridge replicas), dovecot (a real operator for interop tests),
# poppler-utils and fonts-dejavu-core (PDF/A companions: text extraction, embedded fonts),
# chromium (webmail tests through playwright, which drives Debian's browser; it never downloads one),
# openjdk-17-jdk-headless (javac and java for the Java LPS of docs/examples/java, tests/java).
# The tests start their own server instances on loopback ports; the system services are stopped.
DEB_PACKAGES=(openssl curl ca-certificates msmtp redis-server
  dovecot-core dovecot-imapd dovecot-submissiond dovecot-lmtpd poppler-utils fonts-dejavu-core
  chromium openjdk-17-jdk-headless)
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/test.sh: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Packages may start their system services: the tests run their own, on free ports.
  for service in dovecot redis-server; do
    service "$service" stop >/dev/null 2>&1 || true
  done
fi

# Python's bytecode cache on, whatever the caller's environment says: with PYTHONDONTWRITEBYTECODE set
# (as in some containers), every xdist worker and every Python subprocess the tests start (sandboxes,
# CLIs, fleet workers) compiled again each module it imported, and pytest rewrote every test module's
# asserts again in each worker (13 CPU s of collection per worker instead of 3.7 s with the cache).
unset PYTHONDONTWRITEBYTECODE

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# --no-compile: pip does not byte-compile every installed module (playwright, babel, mypy, fontTools…,
# most never imported by the tests); the ones the tests import are compiled on first import and
# cached in __pycache__ as usual. It halves the install on a busy machine (135 s instead of 242 s
# with a warm wheel cache and a load of 8; 34 s before on a quieter one).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-compile -e '.[test]'

echo "== ruff (${SECONDS} s)"
.venv/bin/ruff check src tests benchmarks
if (($#)); then
  echo "== mypy --strict src/"
  .venv/bin/mypy src
  echo "== lint-imports (the layer order in pyproject.toml)"
  .venv/bin/lint-imports
  echo "== pytest"
  # A chosen subset (e.g. a file or -k): no coverage gates, which hold for the whole suite only.
  exec .venv/bin/pytest "$@"
fi
mkdir -p reports
# The CPU seconds of the processes each stage waited for (pip, ruff, pytest with its workers and the
# servers, JVMs and CLIs the tests start; then mypy and lint-imports): on a shared machine, a measure
# that the load beside the run changes much less than the wall time. Bash's ``times``, in this shell.
cpu_so_far() {
  times >reports/cpu-times.txt
  CPU=$(tail -n 1 reports/cpu-times.txt | awk '{print $1 " user, " $2 " system"}')
}
# The static checks run beside the tests (mostly waiting on sockets and subprocesses, they leave CPU
# free): their output is printed, and their verdict counts, once pytest is done.
( .venv/bin/mypy src && .venv/bin/lint-imports ) >reports/static-checks.log 2>&1 &
static=$!
# The whole suite: six workers on two cores (the modules mostly wait on sockets, subprocesses and
# JVMs, each worker using about 0.2 of a core: with four, bare-clone runs at load 6-8 took 440 s of
# tests against 361-402 s with six; PYTEST_WORKERS overrides it), a module's tests on one worker
# (module fixtures stay whole), the longest modules dealt first (tests/conftest.py); branch coverage,
# gated per package in pyproject.toml ([tool.mssante.coverage-gates]). HTML report: .venv/bin/coverage html
echo "== pytest (${SECONDS} s)"
# One collection first, in this process: it fills the bytecode cache (our modules, the dependencies
# pip did not compile, the test modules with pytest's rewritten asserts), so the workers below each
# collect from the cache instead of all compiling the same modules at once.
.venv/bin/pytest --collect-only -q -p no:cacheprovider >/dev/null 2>&1 || true
status=0
.venv/bin/pytest -n "${PYTEST_WORKERS:-6}" --dist loadfile --no-loadscope-reorder \
  --cov --cov-report=json:reports/coverage.json --junitxml=reports/junit.xml || status=$?
# Which module ran on which worker, when: the balance of the workers (scripts/module_seconds.py
# --write refreshes tests/module_seconds.json from the same report).
.venv/bin/python scripts/module_seconds.py reports/junit.xml || true
cpu_so_far
echo "== pytest done (${SECONDS} s; CPU of pip, ruff and pytest: ${CPU})"
echo "== mypy --strict src/, lint-imports (the layer order in pyproject.toml) (${SECONDS} s)"
static_status=0
wait "$static" || static_status=$?
cat reports/static-checks.log
if ((status)); then exit "$status"; fi
if ((static_status)); then exit "$static_status"; fi
echo "== coverage gates (${SECONDS} s)"
.venv/bin/python scripts/coverage_gates.py reports/coverage.json
cpu_so_far
echo "== done (${SECONDS} s; CPU of all stages: ${CPU})"
