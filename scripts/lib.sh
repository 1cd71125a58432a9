# Shared by scripts/setup*.sh and scripts/lock.sh (sourced, not run): every framesel venv is
# installed the same way, from its lock in scripts/locks/ (see scripts/locks.py).
#
# Environment:
#   PYTHON                    the CPython 3.11 that creates the venvs (default: python3, then python3.11)
#   FRAMESEL_TORCH            cpu | cuda: which torch build .venv gets (default: cuda when
#                             `nvidia-smi -L` lists a GPU, else cpu); a test venv takes the build
#                             its lock names (CPU; PyPI's CUDA build for .venv-lmms)
#   FRAMESEL_TORCH_WHEELS     a directory holding the CPU torch wheel (default: /opt/wheels when it
#                             holds it); without one, uv takes it from the PyTorch CPU index
#   FRAMESEL_UV               the uv to use (default: .venv/bin/uv, installed by scripts/setup.sh)

# The platform the locks are compiled for (`make lock`); wheels of other platforms are not hashed.
LOCK_PYTHON_VERSION=3.11
LOCK_PLATFORM=x86_64-manylinux_2_28
export UV_PYTHON_DOWNLOADS=never PIP_DISABLE_PIP_VERSION_CHECK=1
# Bytecode at install: where PYTHONDONTWRITEBYTECODE is set (as on these machines) nothing would
# ever write it, and every process would compile torch and transformers again (import 9 s → 4 s).
export UV_COMPILE_BYTECODE=1

# The interpreter the locks are for, or a one-line error.
lock_python() {
  local py
  for py in "${PYTHON:-python3}" python3.11; do
    if command -v "$py" >/dev/null 2>&1 &&
      [ "$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$LOCK_PYTHON_VERSION" ]; then
      command -v "$py"
      return 0
    fi
  done
  echo "setup: the locks in scripts/locks/ are for CPython $LOCK_PYTHON_VERSION on x86_64 Linux;" \
    "set PYTHON to one, or install by hand with pip (README, 'Other machines')" >&2
  return 1
}

framesel_uv() {
  local uv=${FRAMESEL_UV:-.venv/bin/uv}
  if [ ! -x "$uv" ]; then
    echo "setup: $uv is missing: run scripts/setup.sh (or make setup) first" >&2
    return 1
  fi
  echo "$uv"
}

# Where uv finds the CPU torch wheel: the directory that holds it, else the PyTorch CPU index
# (uv's --torch-backend cpu). Sets the array TORCH_ARGS.
torch_source() {
  local wheels=${FRAMESEL_TORCH_WHEELS:-/opt/wheels} version
  version=$(sed -n 's/^torch==\([^ ]*\).*/\1/p' scripts/locks/main.txt)
  if compgen -G "$wheels/torch-$version-*.whl" >/dev/null; then
    TORCH_ARGS=(--find-links "$wheels")
  else
    TORCH_ARGS=(--torch-backend cpu)
  fi
}

torch_flavour() {
  if [ -n "${FRAMESEL_TORCH:-}" ]; then
    case "$FRAMESEL_TORCH" in
      cpu | cuda) echo "$FRAMESEL_TORCH" ;;
      *) echo "setup: FRAMESEL_TORCH must be cpu or cuda, not '$FRAMESEL_TORCH'" >&2 && return 1 ;;
    esac
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo cuda
  else
    echo cpu
  fi
}

# install_locked VENV NAME FRAMESEL [TORCH]
#   Makes VENV hold exactly scripts/locks/NAME.txt (uv pip sync: missing packages installed,
#   others moved to the locked version, extra ones removed), then framesel from the working tree
#   when FRAMESEL is "editable" (never its dependencies: the lock has them), then checks that what
#   is installed equals the lock. TORCH is cpu (default) or cuda (the locked torch version, the
#   build uv picks for this machine's driver, from the PyTorch index). A no-op when the lock,
#   this file and the calling script are unchanged since the last install (stamp in VENV).
#   Sets INSTALLED=1 when it installed something.
install_locked() {
  local venv=$1 name=$2 framesel=$3 torch=${4:-cpu}
  local lock=scripts/locks/$name.txt uv py stamp want
  INSTALLED=0
  stamp="$venv/.framesel-lock"
  # pyproject.toml too where framesel is installed: its entry points and scripts are written then.
  local inputs=("$lock" scripts/lib.sh "scripts/${0##*/}")
  [ "$framesel" = editable ] && inputs+=(pyproject.toml)
  want=$(cat "${inputs[@]}" | sha256sum | cut -c1-16)-$torch
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
    return 0
  fi
  uv=$(framesel_uv) && py=$(lock_python) || return 1
  if [ ! -x "$venv/bin/python" ]; then
    "$uv" venv -q --python "$py" "$venv"
  fi
  torch_source
  if [ "$("$py" scripts/locks.py torch "$name")" = pypi ]; then
    # PyPI's torch: `torch==X` is also met by an installed X+cpu, which sync would keep.
    TORCH_ARGS=(--reinstall-package torch)
  fi
  local sync_lock=$lock
  if [ "$torch" = cuda ]; then
    sync_lock=$(mktemp)
    "$py" scripts/locks.py without "$name" torch >"$sync_lock"
  fi
  "$uv" pip sync -q --python "$venv/bin/python" --require-hashes "${TORCH_ARGS[@]}" "$sync_lock"
  if [ "$torch" = cuda ]; then
    rm -f "$sync_lock"
    local version
    version=$(sed -n 's/^torch==\([^+ ]*\).*/\1/p' "$lock")
    "$uv" pip install -q --python "$venv/bin/python" --torch-backend auto "torch==$version"
  fi
  if [ "$framesel" = editable ]; then
    "$uv" pip install -q --python "$venv/bin/python" --no-deps --no-build-isolation -e .
  fi
  local check=(scripts/locks.py check-venv "$name")
  [ "$torch" = cuda ] && check+=(--cuda-torch)
  "$venv/bin/python" "${check[@]}" || return 1
  echo "$want" >"$stamp"
  INSTALLED=1
}
