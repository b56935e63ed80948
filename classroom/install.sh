#!/usr/bin/env bash
# Install a class on this server (as root, once): a class root every student can read.
# Usage: sudo classroom/install.sh [CLASS_ROOT]     (default /srv/ftlab-class)
#   CLASS_PYTHON  the Python to build the class's venv from (default /usr/bin/python3): it must
#                 be one that every account can run, not one inside root's home.
# Then: the class's venv (ftlab copied in, JupyterHub, configurable-http-proxy from npm), the
# student version of the notebooks, and the shared cache (model converted once, the base
# model's scores computed once, sealed read-only): classroom/prepare.sh. Nothing is fetched
# later: the hub and the notebooks run offline.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${1:-/srv/ftlab-class}
PYTHON=${CLASS_PYTHON:-/usr/bin/python3}
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 2; }
mkdir -p "$ROOT"
chmod 755 "$ROOT"
"$PYTHON" -m venv "$ROOT/venv"
# ftlab copied into the venv (not editable): students need not read this checkout.
"$HERE/../scripts/install.sh" "$ROOT/venv/bin/python" lab,class copy
if ! runuser -u nobody -- "$ROOT/venv/bin/python" -c "import jupyterhub" 2>/dev/null; then
  echo "install.sh: other accounts cannot run $ROOT/venv/bin/python (is $PYTHON, or a folder" \
       "above $ROOT, private?). Set CLASS_PYTHON to a system Python, e.g. /usr/bin/python3." >&2
  exit 2
fi
"$HERE/prepare.sh" "$ROOT"
echo "Class installed in $ROOT. Start it with: sudo classroom/start.sh $ROOT"
