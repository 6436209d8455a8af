#!/usr/bin/env python
"""Benchmark of the bundled local model (time to first token, answer time,
correctness). The code lives with the other benchmarks in rageval/local_bench.py
(same options: `--help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rageval.local_bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
