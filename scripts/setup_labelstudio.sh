#!/usr/bin/env bash
# Creates the Label Studio server venv (.venv-labelstudio) that tests/review/ and reviewers run
# `label-studio` from. Idempotent: when the venv already holds the pinned label-studio it returns
# at once. A fresh install takes ≈ 110 s (plus ≈ 30 s for the one start-up check) and ≈ 1 GB.
#
# Why a venv of its own: the server pins Django and many exact versions (pyarrow 24.x, pytz below
# 2023) that the main venv must stay free to move. framesel itself talks to the server over plain
# REST (httpx), so nothing of framesel is installed here.
#
# Environment:
#   FRAMESEL_LS_VENV   where the venv goes (default: .venv-labelstudio)
#   PYTHON             the interpreter that creates it (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${FRAMESEL_LS_VENV:-.venv-labelstudio}
LS_VERSION=1.23.2

# The installed version, read from the venv's package metadata (instant). Not `label-studio
# --version`: in 1.23.2 that flag falls through to `start` and leaves a server listening on
# 0.0.0.0:8080; `label-studio version` works but runs every migration first (~30 s).
installed_version() {
  [ -x "$VENV/bin/label-studio" ] && [ -x "$VENV/bin/python" ] || return 0
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))' 2>/dev/null || true
}

if [ "$(installed_version)" = "$LS_VERSION" ]; then
  echo "setup-labelstudio: $VENV up to date (label-studio $LS_VERSION)"
  exit 0
fi

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-labelstudio: creating $VENV (label-studio $LS_VERSION; ≈ 1 GB, ≈ 2 min on a fresh machine)"
  "$PY" -m venv "$VENV"
else
  echo "setup-labelstudio: updating $VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip warns about every name missing from this machine's local indexes: keep the rest of stderr.
"$VENV/bin/python" -m pip install -q "label-studio==$LS_VERSION" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

got=$(installed_version)
if [ "$got" != "$LS_VERSION" ]; then
  echo "setup-labelstudio: $VENV holds label-studio '${got:-nothing}', not $LS_VERSION" >&2
  exit 1
fi
# Once per install: the server itself starts far enough to print its version (this runs the
# migrations into a throw-away data dir; the environment keeps it offline and off ~/.local).
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
said=$(env LABEL_STUDIO_BASE_DATA_DIR="$probe_dir" LABEL_STUDIO_LATEST_VERSION_CHECK=false \
  LABEL_STUDIO_COLLECT_ANALYTICS=false SENTRY_DSN= FRONTEND_SENTRY_DSN= \
  timeout 300 "$VENV/bin/label-studio" version </dev/null 2>&1 || true)
if [[ "$said" != *"Label Studio version: $LS_VERSION"* ]]; then
  echo "setup-labelstudio: '$VENV/bin/label-studio version' does not run; remove $VENV and retry" >&2
  exit 1
fi
echo "setup-labelstudio: $VENV ready in $(( $(date +%s) - start )) s ($(du -sh "$VENV" | cut -f1))"
