#!/usr/bin/env bash
# Creates .venv from scripts/locks/main.txt (framesel's dev extra, the CPU torch, uv) and installs
# framesel from the working tree (editable). Idempotent: returns at once when the lock is unchanged.
# On a machine with an NVIDIA GPU (or FRAMESEL_TORCH=cuda) torch is the locked version's CUDA build
# instead; everything else is the lock. See scripts/lib.sh for the environment it reads.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
VENV=${FRAMESEL_VENV:-.venv}
torch=$(torch_flavour)
py=$(lock_python)
start=$(date +%s)
if [ ! -x "$VENV/bin/uv" ]; then
  # uv itself, once, with pip at the version and hash the lock gives it.
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
  # pip warns about every name missing from this machine's local indexes: keep the rest of stderr.
  "$VENV/bin/python" -m pip install -q --require-hashes --no-deps \
    -r <("$py" scripts/locks.py only main uv) \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
FRAMESEL_UV=$VENV/bin/uv install_locked "$VENV" main editable "$torch"
if [ "$INSTALLED" = 1 ]; then
  echo "setup: $VENV ready in $(($(date +%s) - start)) s ($("$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
fi
