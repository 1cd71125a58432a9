#!/usr/bin/env bash
# Creates .venv with framesel installed (editable) and its dev extras. Idempotent: a second run
# with unchanged pyproject.toml / constraints returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${FRAMESEL_VENV:-.venv}
EXTRAS=${FRAMESEL_EXTRAS:-dev}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.framesel-setup"
want=$(cat pyproject.toml constraints-cpu.txt | sha256sum | cut -c1-16)-$EXTRAS
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# CPU torch first, from the wheel on disk, so nothing later resolves a CUDA build.
"$VENV/bin/pip" install -q -c constraints-cpu.txt torch
"$VENV/bin/pip" install -q -c constraints-cpu.txt -e ".[$EXTRAS]"
echo "$want" > "$stamp"
echo "setup: $VENV ready ($("$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
