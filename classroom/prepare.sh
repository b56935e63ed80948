#!/usr/bin/env bash
# The one preparation step for the whole class (as root): the student notebooks, the embedded
# model converted once and the base model's scores computed once into the shared cache, which
# is then sealed (students read it; none can write it). Run again after updating ftlab.
# Usage: sudo classroom/prepare.sh [CLASS_ROOT]
set -euo pipefail
ROOT=${1:-/srv/ftlab-class}
PY="$ROOT/venv/bin/python"
[ "$(id -u)" = 0 ] || { echo "prepare.sh: run as root (sudo)" >&2; exit 2; }
rm -rf "$ROOT/notebooks"
"$PY" -m ftlab.exercises student "$ROOT/notebooks"
chmod -R a+rX,go-w "$ROOT/notebooks"
"$PY" -m ftlab.classroom prepare --root "$ROOT"
