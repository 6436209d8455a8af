"""python -m ui [--docs DIR] [--store DIR] [--host 127.0.0.1] [--port 7860]: same as `rag serve`."""

import sys

from rag.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
