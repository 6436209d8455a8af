"""Question answering over your documents, with checked inline citations. Offline by default."""

from . import offline

offline.apply()

from .api import RAG, AnswerStream  # noqa: E402
from .errors import (  # noqa: E402
    ConversationError,
    DocumentError,
    DocumentFilterError,
    GeneratorError,
    QuestionError,
    RagError,
    SettingsError,
    StoreError,
    StoreLocked,
)
from .models import Answer, IndexReport, Source  # noqa: E402
from .settings import Settings  # noqa: E402
from .watch import Change, FolderWatcher  # noqa: E402
from .watch import describe as describe_changes  # noqa: E402

__all__ = ["offline", "RAG", "AnswerStream", "Answer", "IndexReport", "Source", "Settings",
           "RagError", "QuestionError", "ConversationError", "DocumentError", "DocumentFilterError",
           "GeneratorError", "SettingsError", "StoreError", "StoreLocked",
           "Change", "FolderWatcher", "describe_changes"]
