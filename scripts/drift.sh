#!/usr/bin/env bash
# Would the newest releases break the course? Installs the newest versions pyproject.toml's
# ranges allow (not constraints.txt) into a scratch environment, says which differ from
# constraints.txt and which releases lie outside the ranges, then runs the tests that touch
# those libraries most, with the generate()-against-manual-decode check that caught
# transformers 5.24. Nothing outside the scratch folder changes.
# Usage: scripts/drift.sh            (make drift)
#   DRIFT_DIR=/tmp/d   where the scratch environment goes (default: a new temporary folder)
#   DRIFT_TESTS="..."  pytest arguments instead of the default selection
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DRIFT_DIR:-$(mktemp -d /tmp/ftlab-drift.XXXXXX)}
PY=$DIR/venv/bin/python
echo "drift: scratch environment in $DIR"
python3 -m venv "$DIR/venv"
FTLAB_CONSTRAINTS=none scripts/install.sh "$PY" test > "$DIR/install.log" 2>&1 \
  || { echo "drift: the newest allowed versions do not install (log: $DIR/install.log)"; tail -5 "$DIR/install.log"; exit 1; }
"$PY" -m ftlab prepare > /dev/null
"$PY" scripts/drift_report.py constraints.txt
TESTS=${DRIFT_TESTS:-"tests/test_train.py tests/test_generation.py tests/test_answer_loss.py \
tests/test_config.py tests/test_cli.py tests/test_environment.py tests/test_export.py \
tests/test_quant.py tests/test_rl.py \
tests/test_methods.py::test_generate_matches_manual_greedy_decode_for_prompt_learning"}
set +e
# shellcheck disable=SC2086
FTLAB_RUNS=$DIR/runs "$PY" -m pytest $TESTS -q -p no:cacheprovider -n 2 --timeout=1800 \
  > "$DIR/tests.log" 2>&1
rc=$?
set -e
tail -1 "$DIR/tests.log"
if [ $rc -eq 0 ]; then
  echo "drift: the newest allowed versions pass (full log: $DIR/tests.log)"
else
  grep -E "^(FAILED|ERROR)" "$DIR/tests.log" | head -20
  echo "drift: the newest allowed versions FAIL: keep constraints.txt and narrow the range in pyproject.toml (log: $DIR/tests.log)"
fi
exit $rc
