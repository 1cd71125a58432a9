#!/usr/bin/env bash
# Installs Debian's `chromium` for the headless check that a Label Studio task renders
# (tests/review/test_browser.py, scripts/review_screenshot.py). Idempotent: returns at once when
# `chromium --version` works. Needs root or passwordless sudo for apt-get.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && chromium --version >/dev/null 2>&1; then
  echo "setup-chromium: $(chromium --version) already installed"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "setup-chromium: chromium is missing and apt-get needs root (no passwordless sudo);" \
    "install Debian's 'chromium' package by hand" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
# Fonts so the UI's text renders (the screenshot is read by a person).
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
echo "setup-chromium: $(chromium --version)"
