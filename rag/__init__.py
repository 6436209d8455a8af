"""Question answering over your documents, with checked inline citations. Offline by default."""

from . import offline

offline.apply()

from .api import RAG, AnswerStream, QuestionError  # noqa: E402
from .models import Answer, IndexReport, Source  # noqa: E402
from .settings import Settings  # noqa: E402

__all__ = ["RAG", "AnswerStream", "QuestionError", "Answer", "IndexReport", "Source", "Settings"]
