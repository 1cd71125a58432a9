#!/usr/bin/env bash
# Re-writes the locks in scripts/locks/ from their inputs (`make lock`). Review the diff and commit
# it like any change: `make test` then builds every venv from the new locks and tells whether they
# work. Pins that still satisfy the inputs are kept; `make lock UPGRADE=1` moves everything to the
# newest versions the inputs allow.
#
#   bash scripts/lock.sh [NAME ...]     # default: every scripts/locks/*.in
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
uv=$(framesel_uv)
py=$(lock_python)
torch_source
upgrade=()
[ -n "${UPGRADE:-}" ] && upgrade=(--upgrade)
names=("$@")
[ ${#names[@]} -gt 0 ] || mapfile -t names < <("$py" scripts/locks.py names)

for name in "${names[@]}"; do
  sources=()
  if extra=$("$py" scripts/locks.py pyproject-extra "$name"); then
    sources=(pyproject.toml)
    [ -n "$extra" ] && sources+=(--extra "$extra")
  fi
  exclude=()
  for pkg in $("$py" scripts/locks.py exclude "$name"); do exclude+=(--no-emit-package "$pkg"); done
  torch_args=("${TORCH_ARGS[@]}")
  [ "$("$py" scripts/locks.py torch "$name")" = pypi ] && torch_args=()
  out=scripts/locks/$name.txt
  tmp=$(mktemp)
  [ -f "$out" ] && grep -v '^# framesel-lock:' "$out" >"$tmp"
  "$uv" pip compile -q "${sources[@]}" "scripts/locks/$name.in" "${exclude[@]}" "${upgrade[@]}" \
    --generate-hashes --python-version "$LOCK_PYTHON_VERSION" --python-platform "$LOCK_PLATFORM" \
    "${torch_args[@]}" --custom-compile-command "make lock" --no-header -o "$tmp"
  {
    echo "# The exact environment of this venv, compiled from scripts/locks/$name.in by 'make lock'"
    echo "# (uv pip compile --generate-hashes, CPython $LOCK_PYTHON_VERSION, $LOCK_PLATFORM). Do not edit."
    echo "# framesel-lock: inputs=$("$py" scripts/locks.py inputs-hash "$name") exclude=$("$py" scripts/locks.py exclude "$name" | tr ' ' ,)"
    cat "$tmp"
  } >"$out"
  rm -f "$tmp"
  echo "lock: $out ($(grep -cE '^[A-Za-z0-9].*==' "$out") packages)"
done
