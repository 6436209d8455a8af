"""Stage 4b, optional: a local cross-encoder rescores the fused candidates (RAG_RERANK_MODEL).

No reranker ships with the app: flashrank and swiftrank download their cross-encoders at run time,
and no wheel was found that holds cross-encoder weights. A user who has one on disk names its
folder; it is read from there only, never looked up on the hub."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Sequence

from .errors import SettingsError

SETTING = "RAG_RERANK_MODEL"

_MODELS: dict[Path, tuple[Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()


def _refuse(folder: Path, why: str) -> SettingsError:
    return SettingsError(f"{SETTING}={folder} {why}; name the folder of a local cross-encoder "
                         "(sentence-transformers CrossEncoder), or unset it to retrieve without reranking")


def check_folder(folder: Path) -> Path:
    """The folder, resolved, when it holds a cross-encoder; SettingsError naming the setting otherwise.
    Checked before sentence-transformers sees the name: given anything but a folder, it would try the
    hub, and given a bi-encoder folder it would quietly bolt an untrained scoring head onto it."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise _refuse(folder, "is not an existing folder (models are never downloaded)")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _refuse(folder, f"holds no readable config.json ({exc.__class__.__name__})") from exc
    try:
        st_config = json.loads((path / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        st_config = {}
    archs = [str(a) for a in config.get("architectures") or []]
    if st_config.get("model_type") != "CrossEncoder" and not any(
            a.endswith("ForSequenceClassification") for a in archs):
        kind = ", ".join(archs) or "no architecture"
        raise _refuse(folder, f"is not a cross-encoder (its config.json names {kind}, not a "
                              "*ForSequenceClassification model)")
    return path.resolve()


def _load(folder: Path) -> tuple[Any, threading.Lock]:
    """The cross-encoder of the folder, loaded once per process (seconds), and the lock its calls take."""
    path = check_folder(folder)
    with _LOAD_LOCK:
        if path not in _MODELS:
            from sentence_transformers import CrossEncoder
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            try:
                model = CrossEncoder(str(path), device="cpu", local_files_only=True)
                probe = model.predict([("question", "passage")], show_progress_bar=False)
            except Exception as exc:  # noqa: BLE001 - whatever breaks the load, the user fixes the folder
                raise _refuse(folder, f"could not be loaded as a cross-encoder ({exc})") from exc
            if getattr(probe, "shape", None) != (1,):
                raise _refuse(folder, f"gives {getattr(probe, 'shape', '?')} scores for one pair, not one "
                                      "relevance score")
            _MODELS[path] = (model, threading.Lock())
        return _MODELS[path]


class Reranker:
    """Rescores (question, passage) pairs with the cross-encoder of a folder, loaded on first use."""

    def __init__(self, folder: Path, batch_size: int = 32):
        self.folder, self.batch_size = folder, batch_size
        self._loaded: tuple[Any, threading.Lock] | None = None

    def scores(self, question: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, higher is better."""
        if not texts:
            return []
        if self._loaded is None:
            self._loaded = _load(self.folder)
        model, lock = self._loaded
        with lock:  # torch is not re-entrant across threads here (as for the embedder)
            out = model.predict([(question, t) for t in texts], batch_size=self.batch_size,
                                show_progress_bar=False, convert_to_numpy=True)
        return [float(x) for x in out]
