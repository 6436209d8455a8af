"""Every error the package raises on purpose, in one module that imports nothing of the package,
so any stage can raise or catch them without importing another stage (no import cycles).

Each message is written for the person who hit it: what went wrong and what to do."""


class RagError(Exception):
    """Base of every error the package raises on purpose."""


class QuestionError(RagError, ValueError):
    """The question cannot be asked as it is; the message tells the user why."""


class DocumentFilterError(QuestionError):
    """The documents a question is limited to name no indexed document (an unknown id, a glob
    matching nothing); the message names what was not found."""


class DocumentError(RagError, ValueError):
    """A document cannot be added or deleted; the message tells the user why."""


class ConversationError(RagError, ValueError):
    """A kept conversation cannot be read, changed or exported as asked (none of that id for that
    owner, no such turn, an unknown rating or format); the message says which."""


class UnreadableFile(RagError):
    """The file cannot be turned into text; the message says why."""


class StoreError(RagError, RuntimeError):
    """A problem with the store the user can act on; the message says how."""


class StoreLocked(StoreError):
    """Another process is writing the store."""


class StoreBroken(StoreError):
    """The on-disk store cannot be opened (a damaged or foreign file); `rag index --rebuild` moves
    it aside and builds a new one."""


class StoreReadOnly(StoreError):
    """The store cannot be written: it answers questions (from a copy) but cannot be indexed."""


class GeneratorError(RagError, RuntimeError):
    """The generator could not answer; the engine falls back to extractive and says why."""


class ModelFileError(GeneratorError):
    """The local model file is missing, incomplete or not the expected one."""


class EmbedderError(RagError, RuntimeError):
    """The embedding model cannot be made ready (e.g. its ONNX export cannot be written)."""


class SettingsError(RagError, ValueError):
    """A setting names something that cannot be used as it says (a folder that does not exist, a
    model of the wrong kind); the message names the setting and what it points at."""


class EvalDataError(RagError, ValueError):
    """The eval data is missing or malformed; the message says which file and why."""


class CommandMissing(RagError):
    """A command's entry point is absent or cannot be imported: an installation problem."""
