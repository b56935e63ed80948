#!/usr/bin/env bash
# Start the class server (as root: each student's server runs as that student).
# Usage: sudo classroom/start.sh [CLASS_ROOT]      (default /srv/ftlab-class)
# Settings (port, who may log in) are environment variables: see classroom/jupyterhub_config.py.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export FTLAB_CLASS_ROOT=${1:-${FTLAB_CLASS_ROOT:-/srv/ftlab-class}}
PY="$FTLAB_CLASS_ROOT/venv/bin/python"
[ "$(id -u)" = 0 ] || { echo "start.sh: run as root (sudo): the hub starts servers as the students" >&2; exit 2; }
[ -x "$PY" ] || { echo "start.sh: no class install in $FTLAB_CLASS_ROOT: run classroom/install.sh first" >&2; exit 2; }
cd "$FTLAB_CLASS_ROOT"
exec "$PY" -m jupyterhub -f "$HERE/jupyterhub_config.py"
