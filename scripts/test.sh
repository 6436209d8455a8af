#!/usr/bin/env bash
# Installs what is missing (project, test tools, Debian chromium for the browser tests), runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
    else
        sudo apt-get update -q >/dev/null && sudo apt-get install -y -q chromium >/dev/null
    fi
fi
source scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
