"""Question answering over your documents, with checked inline citations. Offline by default."""

from . import offline

offline.apply()

from .api import RAG, AnswerStream  # noqa: E402
from .errors import DocumentError, GeneratorError, QuestionError, RagError, StoreError  # noqa: E402
from .models import Answer, IndexReport, Source  # noqa: E402
from .settings import Settings  # noqa: E402

__all__ = ["offline", "RAG", "AnswerStream", "Answer", "IndexReport", "Source", "Settings",
           "RagError", "QuestionError", "DocumentError", "GeneratorError", "StoreError"]
