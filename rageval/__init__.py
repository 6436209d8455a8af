"""Measuring the `rag` package: retrieval on BEIR data sets, answers on question files (with a stock
LlamaIndex pipeline as the peer), and speed benchmarks. Beside `rag/`, not in it: the runtime never
imports this package; `rag eval` and `rag bench` load it on demand."""
