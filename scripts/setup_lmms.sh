#!/usr/bin/env bash
# Creates the lmms-eval venv (.venv-lmms) for the framesel lmms-eval plugin test
# (tests/fslabels/test_lmms_plugin.py): lmms-eval 0.7.3 beside the CPU torch, plus framesel
# (editable) so its `lmms_eval.models` entry point is registered. Idempotent: a second run with
# unchanged inputs returns at once (stamp file). A fresh install takes ≈ 2 min and ≈ 2.4 GB.
#
# Why a venv of its own: lmms-eval pins wandb and pulls opencv, yt-dlp and sentence-transformers,
# and an unpinned install replaces the CPU torch with a CUDA build (an unpinned torchvision
# resolves to 0.29.1, which wants torch 2.14.1 + 15 nvidia wheels, 6.9 GB). What works here
# (../shared/notes/eval-and-ray.md): constraints torch==2.13.0 + torchvision==0.28.0, then
# uninstall torchvision (PyPI's 0.28.0 is a CUDA build whose import fails, which breaks
# `import lmms_eval.tasks`).
#
# Environment:
#   FRAMESEL_LMMS_VENV   where the venv goes (default: .venv-lmms)
#   PYTHON               the interpreter that creates it (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${FRAMESEL_LMMS_VENV:-.venv-lmms}
LMMS_EVAL_VERSION=0.7.3
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0

stamp="$VENV/.framesel-setup-lmms"
want=$(
  {
    echo "lmms-eval==$LMMS_EVAL_VERSION torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
    cat "$0" pyproject.toml
  } | sha256sum | cut -c1-16
)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "setup-lmms: $VENV up to date"
  exit 0
fi

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-lmms: creating $VENV (lmms-eval $LMMS_EVAL_VERSION, torch $TORCH_VERSION+cpu; ≈ 2.4 GB, ≈ 2 min)"
  "$PY" -m venv "$VENV"
else
  echo "setup-lmms: updating $VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
constraints="$VENV/framesel-lmms-constraints.txt"
printf 'torch==%s\ntorchvision==%s\n' "$TORCH_VERSION" "$TORCHVISION_VERSION" > "$constraints"
# pip warns about every name missing from this machine's local indexes: keep the rest of stderr.
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
installed() { "$VENV/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true; }

# 1. The CPU torch first (the wheel on disk, as scripts/setup.sh installs it).
pip install -q -c constraints-cpu.txt -c "$constraints" torch
torch_version=$(installed torch)
if [[ "$torch_version" != *+cpu ]]; then
  echo "setup-lmms: torch in $VENV is $torch_version, not the CPU build; remove $VENV and retry" >&2
  exit 1
fi
# 2. lmms-eval under the constraints (torch stays 2.13.0+cpu). Skipped when present, so a re-run
#    does not bring back the torchvision removed below.
if [ "$(installed lmms-eval)" != "$LMMS_EVAL_VERSION" ]; then
  pip install -q -c "$constraints" "lmms-eval==$LMMS_EVAL_VERSION"
fi
# 3. The CUDA torchvision pulled in as a dependency breaks `import lmms_eval.tasks`.
pip uninstall -q -y torchvision 2>/dev/null || true
# 4. framesel itself (editable, so the plugin is the working tree's code), under the same
#    constraints: its dependencies that lmms-eval lacks are added, the CPU torch stays.
pip install -q -c constraints-cpu.txt -c "$constraints" -e .
torch_version=$(installed torch)
if [[ "$torch_version" != *+cpu ]]; then
  echo "setup-lmms: installing framesel replaced torch with $torch_version; remove $VENV and retry" >&2
  exit 1
fi
# 5. Check the result imports as the plugin test uses it (torchvision must be gone).
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
import importlib.util

import lmms_eval.tasks  # noqa: F401
import torch
import transformers

import fslabels.lmms_plugin  # noqa: F401

assert importlib.util.find_spec("torchvision") is None, "torchvision is still installed"
names = [ep.name for ep in md.entry_points(group="lmms_eval.models")]
note = "registered" if "framesel" in names else "NOT registered (pyproject lacks the entry point)"
print(
    f"setup-lmms: lmms-eval {md.version('lmms-eval')}, torch {torch.__version__}, "
    f"transformers {transformers.__version__}; framesel entry point {note}"
)
EOF
echo "$want" > "$stamp"
echo "setup-lmms: $VENV ready in $(( $(date +%s) - start )) s ($(du -sh "$VENV" | cut -f1))"
