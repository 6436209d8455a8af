"""`python -m ui.bench` still works: the UI benchmark lives with the other benchmarks, in
rageval/ui_bench.py (`python -m rageval.ui_bench`)."""

if __name__ == "__main__":
    import sys

    from rageval.ui_bench import main

    sys.exit(main())
