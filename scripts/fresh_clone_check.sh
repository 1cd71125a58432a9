#!/usr/bin/env bash
# Clones HEAD into a temporary directory (with ../shared beside it, as CI lays it) and runs the
# README's Quick start commands there exactly as written, with empty pip and uv caches, then prints
# the time of each, of each venv's set-up and of pytest. `make fresh-check`; ≈ 10–15 min.
# What it cannot make fresh: packages installed system-wide (Debian's chromium stays if present).
#
#   bash scripts/fresh_clone_check.sh [--keep]     # --keep: leave the clone (and its venvs) behind
set -euo pipefail
cd "$(dirname "$0")/.."
keep=${1:-}
top=$(pwd)
work=$(mktemp -d /tmp/framesel-fresh-XXXX)
cleanup() {
  if [ "$keep" = --keep ]; then echo "fresh-check: left $work"; return; fi
  chmod -R u+w "$work/shared" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

git clone -q --no-local "$top" "$work/main"
[ -d ../shared ] && cp -r ../shared "$work/shared" && chmod -R a-w "$work/shared"
export UV_CACHE_DIR=$work/cache/uv PIP_CACHE_DIR=$work/cache/pip
echo "fresh-check: $(git rev-parse --short HEAD) cloned into $work/main (empty pip/uv caches)"

# The Quick start block's commands, in order.
mapfile -t commands < <(awk '/^## Quick start/{on=1} on && /^make /{sub(/ *#.*/, ""); print} on && /^## / && !/Quick start/{exit}' README.md)
[ ${#commands[@]} -gt 0 ] || { echo "fresh-check: no make commands under '## Quick start' in README.md" >&2; exit 1; }

summary=()
status=0
for cmd in "${commands[@]}"; do
  log=$work/$(echo "$cmd" | tr ' ' _).log
  start=$(date +%s)
  echo "fresh-check: running '$cmd' (log: $log)"
  if (cd "$work/main" && CI=true bash -c "$cmd") >"$log" 2>&1; then result=passed; else result=FAILED; status=1; fi
  took=$(($(date +%s) - start))
  summary+=("$(printf '%-12s %-7s %5d s' "$cmd" "$result" "$took")")
  while IFS= read -r line; do summary+=("    $line"); done < <(
    grep -hoE '^setup[a-z-]*: .* ready in [0-9]+ s.*' "$log" || true
    grep -hoE '^=+ .*(passed|failed|error).* in [0-9.]+s.*=+$' "$log" | tr -d '=' | sed 's/^ *//' || true
  )
  [ "$result" = passed ] || tail -n 30 "$log" | sed 's/^/    | /'
done
echo
echo "fresh-check summary ($(nproc --all) cores, $(date -u +%F)):"
printf '%s\n' "${summary[@]}"
exit $status
