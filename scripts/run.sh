#!/usr/bin/env bash
# Installs what is missing, then starts the chat UI (indexing seeds/ on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec .venv/bin/rag serve "$@"
