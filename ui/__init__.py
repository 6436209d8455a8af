"""The Gradio chat UI: a thin layer over rag.RAG."""
