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

.venv/bin/ruff check rag ui tests scripts
.venv/bin/mypy rag ui

# A real Chroma server for the server-mode tests (tests/test_chroma_server.py), stopped on exit.
chroma_dir=$(mktemp -d)
chroma_port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/chroma run --path "$chroma_dir" --host 127.0.0.1 --port "$chroma_port" >"$chroma_dir/server.log" 2>&1 &
chroma_pid=$!
trap 'kill "$chroma_pid" 2>/dev/null || true; wait "$chroma_pid" 2>/dev/null || true; rm -rf "$chroma_dir"' EXIT
if .venv/bin/python - "$chroma_port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/api/v2/heartbeat"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
PY
then
    export RAG_TEST_CHROMA_PORT=$chroma_port
else
    echo "warning: chroma run did not start (see below); the server tests start their own" >&2
    tail -n 20 "$chroma_dir/server.log" >&2 || true
fi

.venv/bin/python -m pytest "$@"
