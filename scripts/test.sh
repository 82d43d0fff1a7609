#!/usr/bin/env bash
# The one test command: set up a virtual environment if needed, then run every
# check bufkit makes (lint, format, types, tests, docs).
#
#   bash scripts/test.sh              everything, on python3 (3.11 or newer)
#   PYTHON=python3.12 VENV=.venv-3.12 bash scripts/test.sh --pytest-only
#                                     pytest alone, without coverage
#   VENV=.venv-compiled bash scripts/test.sh --compiled
#
# --compiled installs the mypyc-compiled build (BUFKIT_COMPILE=1 pip install .,
# a regular install, recompiled from the current sources on every run) and
# runs the whole pytest suite against it, without coverage, from a copy of
# the tree without bufkit/ so that only the installed build can be imported.
# Every run checks that it imported the build it asked for (tests/test_build.py).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
MODE="${1:-all}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.bufkit-installed"
fresh=""
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    if [ "$MODE" = "--compiled" ]; then
        started=$SECONDS
        BUFKIT_COMPILE=1 "$VENV/bin/python" -m pip install --quiet ".[test]"
        fresh="compiled and installed with the test dependencies in $((SECONDS - started))s"
    elif [ "$MODE" = "--pytest-only" ]; then
        BUFKIT_COMPILE= "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    else
        BUFKIT_COMPILE= "$VENV/bin/python" -m pip install --quiet -e ".[test,docs]"
    fi
    touch "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
echo "== $("$VENV/bin/python" --version) in $VENV"

if [ "$MODE" = "--compiled" ]; then
    if [ -z "$fresh" ]; then
        started=$SECONDS
        BUFKIT_COMPILE=1 "$VENV/bin/python" -m pip install --quiet \
            --force-reinstall --no-deps .
        fresh="compiled and installed in $((SECONDS - started))s"
    fi
    echo "== bufkit $fresh: $("$VENV/bin/bufkit" --version)"
    python_abs="$(cd "$VENV/bin" && pwd)/python"
    stage="$(mktemp -d)"
    trap 'rm -rf "$stage"' EXIT
    tar --exclude=./bufkit --exclude='./.venv*' --exclude=./.git \
        --exclude=./docs/_build -cf - . | tar -xf - -C "$stage"
    echo "== pytest against the compiled build"
    started=$SECONDS
    (cd "$stage" && BUFKIT_EXPECT_BUILD=compiled \
        HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-${CI:+ci}}" \
        "$python_abs" -m pytest -q)
    echo "== compiled build passed in $((SECONDS - started))s"
    exit 0
fi
export BUFKIT_EXPECT_BUILD=pure

if [ "$MODE" != "--pytest-only" ]; then
    echo "== ruff check"
    ruff check .
    echo "== ruff format --check"
    ruff format --check .
    echo "== mypy --strict (bufkit, tests, typings, benchmarks)"
    mypy --strict
fi

echo "== pytest"
if [ "$MODE" = "--pytest-only" ]; then
    # Another Python: the same tests, without coverage (measured once, on
    # the main run).
    HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-${CI:+ci}}" python -m pytest -q
else
    HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-${CI:+ci}}" \
        python -m coverage run -m pytest -q
    # coverage starts before pytest loads plugins, so bufkit's own pytest
    # plugin (which imports bufkit) does not hide the import-time lines of
    # the core.
    python -m coverage report
fi

if [ "$MODE" != "--pytest-only" ]; then
    echo "== sphinx (warnings are errors)"
    python -m sphinx -W --keep-going -n -q -b html docs docs/_build/html
    python -m sphinx -W --keep-going -n -q -b doctest docs docs/_build/doctest
fi
echo "== all checks passed"
