#!/usr/bin/env python
"""Load test: questions per second with N users asking at once. The code lives with the other
benchmarks in rageval/load_test.py (same options: `--help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rageval.load_test import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
