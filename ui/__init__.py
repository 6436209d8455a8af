"""The Gradio chat UI: a thin layer over rag.RAG.

    app.py        builds the page from the parts below and launches it
    chat.py       the chat column and the Settings tab: streamed answers, Stop, New chat
    conversations.py kept conversations: the list, Delete, Export .md/.json, thumbs up/down
    documents.py  the Documents tab: upload, delete, re-index
    status.py     the index summary at the top of the page and in the Documents tab
    api_routes.py the `ask` API for scripts (gradio_client)
    jobs.py       the one indexing run at a time, in a background thread
    render.py     HTML from the Jinja2 templates in templates/
    serve.py      `rag serve` / `python -m ui`
    security.py   what the server trusts: Host and Origin checks, login limits, TLS, share links
"""

from rag import offline

offline.apply()  # before any ui module imports gradio: it reads GRADIO_ANALYTICS_ENABLED at import
