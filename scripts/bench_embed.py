#!/usr/bin/env python
"""The embedding backends side by side (RAG_EMBED_BACKEND): indexing chunks/s, query embedding
latency, cosine to torch. The code lives with the other benchmarks in rageval/embed_bench.py
(options: `--help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rageval.embed_bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
