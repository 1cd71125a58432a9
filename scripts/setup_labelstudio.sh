#!/usr/bin/env bash
# Creates the Label Studio server venv (.venv-labelstudio) that tests/review/ and reviewers run
# `label-studio` from, from scripts/locks/labelstudio.txt. Idempotent: returns at once when the
# lock is unchanged. ≈ 1 GB; after an install the server is started once (≈ 30 s of migrations).
#
# Why a venv of its own: the server pins Django and many exact versions (pyarrow 24.x, pytz below
# 2023) that the main venv must stay free to move. framesel talks to the server over plain REST
# (httpx), so nothing of framesel is installed here.
#
# Environment: FRAMESEL_LS_VENV (default .venv-labelstudio), and those of scripts/lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
VENV=${FRAMESEL_LS_VENV:-.venv-labelstudio}
start=$(date +%s)
install_locked "$VENV" labelstudio none
[ "$INSTALLED" = 1 ] || exit 0
version=$(sed -n 's/^label-studio==\([^ ]*\).*/\1/p' scripts/locks/labelstudio.txt)
# The server starts far enough to print its version (migrations into a throw-away data dir; the
# environment keeps it offline and off ~/.local). Not `label-studio --version`: in 1.23.2 that
# flag falls through to `start` and leaves a server listening on 0.0.0.0:8080.
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
said=$(env LABEL_STUDIO_BASE_DATA_DIR="$probe_dir" LABEL_STUDIO_LATEST_VERSION_CHECK=false \
  LABEL_STUDIO_COLLECT_ANALYTICS=false SENTRY_DSN= FRONTEND_SENTRY_DSN= \
  timeout 300 "$VENV/bin/label-studio" version </dev/null 2>&1 || true)
if [[ "$said" != *"Label Studio version: $version"* ]]; then
  rm -f "$VENV/.framesel-lock"
  echo "setup-labelstudio: '$VENV/bin/label-studio version' does not run: ${said: -400}" >&2
  exit 1
fi
echo "setup-labelstudio: $VENV ready in $(($(date +%s) - start)) s ($(du -sh "$VENV" | cut -f1))"
