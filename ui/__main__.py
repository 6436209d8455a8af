"""python -m ui [--docs DIR] [--store DIR] [--host 127.0.0.1] [--port 7860]: same as `rag serve`."""

import sys

from .serve import main

sys.exit(main())
