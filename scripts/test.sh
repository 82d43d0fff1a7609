#!/usr/bin/env bash
# The one test command: set up a virtual environment if needed, then run every
# check bufkit makes (lint, format, types, tests, docs).
#
#   bash scripts/test.sh              everything, on python3 (3.11 or newer)
#   PYTHON=python3.12 VENV=.venv-3.12 bash scripts/test.sh --pytest-only
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
MODE="${1:-all}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.bufkit-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    if [ "$MODE" = "--pytest-only" ]; then
        "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    else
        "$VENV/bin/python" -m pip install --quiet -e ".[test,docs]"
    fi
    touch "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
echo "== $("$VENV/bin/python" --version) in $VENV"

if [ "$MODE" != "--pytest-only" ]; then
    echo "== ruff check"
    ruff check .
    echo "== ruff format --check"
    ruff format --check .
    echo "== mypy --strict (bufkit, tests, typings, benchmarks)"
    mypy --strict
fi

echo "== pytest"
HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-${CI:+ci}}" \
    python -m coverage run -m pytest -q
# coverage starts before pytest loads plugins, so bufkit's own pytest plugin
# (which imports bufkit) does not hide the import-time lines of the core.
python -m coverage report

if [ "$MODE" != "--pytest-only" ]; then
    echo "== sphinx (warnings are errors)"
    python -m sphinx -W --keep-going -n -q -b html docs docs/_build/html
    python -m sphinx -W --keep-going -n -q -b doctest docs docs/_build/doctest
fi
echo "== all checks passed"
