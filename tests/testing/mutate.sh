#!/bin/sh
# Mutation testing of the conformance checks: mutmut mutates
# bufkit/testing/_sendcheck.py and _recvcheck.py and runs the tests that judge
# them against each mutant. Run from the repository root, with mutmut and the
# test extra installed (pip install mutmut -e ".[test]"):
#
#     sh tests/testing/mutate.sh            # then: mutmut results, mutmut show NAME
#
# The run happens in a copy of the tree (printed at the start), so that the
# configuration below stays out of the project's own files.
set -eu
work=${MUTATE_DIR:-$(mktemp -d)}
echo "mutation run in $work"
git ls-files -z | xargs -0 cp --parents -t "$work"
cp --parents bufkit/testing/*.py tests/testing/*.py "$work"  # uncommitted work too
cat >> "$work/pyproject.toml" <<'CONFIG'

[tool.mutmut]
source_paths = ["bufkit"]
only_mutate = ["bufkit/testing/_sendcheck.py", "bufkit/testing/_recvcheck.py"]
pytest_add_cli_args = [
    "-p", "no:cacheprovider", "--hypothesis-seed=0", "-x", "--timeout=20",
]
pytest_add_cli_args_test_selection = [
    "tests/testing/test_checks.py",
    "tests/testing/test_gallery.py",
    "tests/testing/test_verdicts.py",
    "tests/testing/test_defaults.py",
]
CONFIG
cd "$work"
${MUTMUT:-mutmut} run "$@"
${MUTMUT:-mutmut} results --all true > "$work/results.txt" 2>&1 || true
echo "mutants: $(grep -c ': ' "$work/results.txt"), killed: $(grep -c ': killed' \
    "$work/results.txt"), survived: $(grep -c ': survived' "$work/results.txt")"
