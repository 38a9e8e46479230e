#!/usr/bin/env bash
# Installs the project into .venv and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
# Quiet on success; the whole log on failure.
if ! { python -m pip install --quiet --upgrade pip &&
       python -m pip install --quiet -e .; } >.venv/install.log 2>&1; then
    cat .venv/install.log >&2
    exit 1
fi
exec python -m messenger.client demo "$@"
