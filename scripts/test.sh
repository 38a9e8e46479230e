#!/usr/bin/env bash
# The project's test command: installs into .venv, then lint, types, tests and
# a quick benchmark smoke. Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
# Quiet on success; the whole log on failure.
if ! { python -m pip install --quiet --upgrade pip &&
       python -m pip install --quiet -e ".[test]"; } >.venv/install.log 2>&1; then
    cat .venv/install.log >&2
    exit 1
fi

echo "== ruff"
ruff check messenger ui tests bench packaging
ruff format --check messenger ui tests bench packaging
echo "== mypy (strict)"
mypy
echo "== pytest"
python -m pytest "$@"
echo "== benchmark smoke"
for bench in bench/bench_*.py; do
    [ -e "$bench" ] || continue
    python "$bench" --quick
done
