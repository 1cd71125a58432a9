#!/usr/bin/env bash
# Creates the lmms-eval venv (.venv-lmms) from scripts/locks/lmms.txt: lmms-eval on PyPI's torch and
# torchvision (the CUDA build, which runs on a CPU-only machine too), plus framesel (editable) so
# its `lmms_eval.models` entry point is registered, and pytest. It runs the framesel lmms-eval
# plugin test (tests/fslabels/test_lmms_plugin.py) and every test marked `torchvision` (the stock
# Qwen2-VL processor path). Idempotent: returns at once when the lock is unchanged. ≈ 7 GB.
#
# Why a venv of its own: lmms-eval pins wandb and pulls opencv, yt-dlp and sentence-transformers,
# and the CUDA torch cannot sit in .venv beside the CPU one.
#
# Environment: FRAMESEL_LMMS_VENV (default .venv-lmms), and those of scripts/lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
VENV=${FRAMESEL_LMMS_VENV:-.venv-lmms}
start=$(date +%s)
install_locked "$VENV" lmms editable
[ "$INSTALLED" = 1 ] || exit 0
trap 'rm -f "$VENV/.framesel-lock"' ERR  # a failed check below means: install again next time
# The imports the plugin test makes.
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md

import lmms_eval.tasks  # noqa: F401
import torch
import torchvision  # noqa: F401
import transformers

import fslabels.evaluation.lmms_plugin  # noqa: F401

names = [ep.name for ep in md.entry_points(group="lmms_eval.models")]
note = "registered" if "framesel" in names else "NOT registered (pyproject lacks the entry point)"
print(
    f"setup-lmms: lmms-eval {md.version('lmms-eval')}, torch {torch.__version__}, "
    f"torchvision {torchvision.__version__}, "
    f"transformers {transformers.__version__}; framesel entry point {note}"
)
PY
echo "setup-lmms: $VENV ready in $(($(date +%s) - start)) s ($(du -sh "$VENV" | cut -f1))"
