#!/usr/bin/env bash
# Installs what is missing, then starts the chat UI (indexing seeds/ on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
# A sourced script sees the caller's "$@" when given none of its own: source it from a function
# called without arguments, so `run.sh --port 8000` reaches `rag serve`, not setup.sh's extras.
setup() { source scripts/setup.sh; }
setup
exec .venv/bin/rag serve "$@"
