"""The bundled MiniLM on ONNX Runtime (RAG_EMBED_BACKEND=onnx | onnx-int8): exported once from the
weights the project already ships into a cache file, then run without torch.

Export: `torch.onnx.export` of the BERT encoder (eager attention, so ONNX Runtime's BERT fusions find
the attention pattern; opset 17; dynamic batch and length), ONNX Runtime's transformer optimiser
(fused attention, skip-layer-norm, GELU), and for `onnx-int8` dynamic int8 quantisation of the
MatMul weights (per channel). Pooling is done here exactly as sentence-transformers does it for this model:
mean over the attention mask, then L2 normalisation. No download at any step (optimum, which would
do the same, pins transformers 4.x and is not used).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .embeddings import FairLock
from .errors import EmbedderError

BACKENDS = ("torch", "onnx", "onnx-int8")
# Raise when the export recipe changes: cached files of an older recipe are then made anew.
EXPORT_VERSION = 1
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_MAX_TOKENS = 256  # MiniLM's window, as LocalEmbedder sets max_seq_length


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rag-chat" / "embeddings"


def cache_key(model_path: Path, backend: str, label: str = "") -> str:
    """Names the cached file after the model and backend, plus what changes its bytes: the weights
    file (size, mtime), the export recipe and the ONNX Runtime that fused and quantised it."""
    import onnxruntime

    weights = model_path / "model.safetensors"
    st = weights.stat()
    facts = [EXPORT_VERSION, onnxruntime.__version__, st.st_size, st.st_mtime_ns,
             (model_path / "config.json").read_text(encoding="utf-8")]
    digest = hashlib.sha1(json.dumps(facts).encode()).hexdigest()[:12]
    return f"{label or model_path.name}-{backend}-{digest}"


def _export_fp32(model_path: Path, dest: Path) -> None:
    """torch -> ONNX, then ONNX Runtime's BERT fusions (offline: all from the local folder)."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel, AutoTokenizer

    # Eager attention exports as plain MatMul/Softmax, the pattern ONNX Runtime fuses; SDPA does not.
    bert = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):  # named arguments: BertModel.forward's positional order moved in 5.x
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = AutoTokenizer.from_pretrained(str(model_path))(
        ["a short one", "and a somewhat longer second sentence"], padding=True, return_tensors="pt")
    raw = dest.with_name(dest.name + ".raw")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    with torch.no_grad():
        torch.onnx.export(Encoder(bert), tuple(sample[k] for k in _INPUTS), str(raw), input_names=list(_INPUTS),
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
    try:
        cfg = bert.config
        fused = optimize_model(str(raw), model_type="bert", num_heads=cfg.num_attention_heads,
                               hidden_size=cfg.hidden_size, opt_level=1)
        fused.save_model_to_file(str(dest))
    finally:
        raw.unlink(missing_ok=True)


def _quantize(src: Path, dest: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Only the MatMuls (feed-forward and attention output, ~75% of the multiply-adds) go int8: the
    # fused attention and the embedding table stay float, which kept the cosine to torch higher on
    # short queries (min 0.990 against 0.984 with everything quantised) at the same speed.
    # DefaultTensorType: shape inference cannot type the outputs of the fused (contrib) operators.
    quantize_dynamic(str(src), str(dest), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], extra_options={"DefaultTensorType": TensorProto.FLOAT})


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' tracer warnings and the quantiser's advice (logged at WARNING on the root
    logger) say nothing a user can act on; a failed export still raises."""
    previous = logging.root.manager.disable  # nested (int8 exports fp32 first): restore, not reset
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _tmp(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")


def exported_model(model_path: Path, backend: str, cache_dir: Optional[Path] = None, label: str = "") -> Path:
    """The ONNX file of the backend, made on first use and reused after. Files appear by rename, so
    a concurrent or interrupted export never leaves a half-written model behind."""
    if backend not in ("onnx", "onnx-int8"):
        raise ValueError(f"no ONNX export for the backend {backend!r}")
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    dest = folder / f"{cache_key(model_path, backend, label)}.onnx"
    if dest.is_file():
        return dest
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = _tmp(dest)
        try:
            with _quiet():
                if backend == "onnx":
                    _export_fp32(model_path, tmp)
                else:
                    _quantize(exported_model(model_path, "onnx", folder, label), tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise EmbedderError(
            f"cannot write the {backend} embedding model into {folder} ({exc.strerror or exc}): set "
            "RAG_EMBED_CACHE_DIR to a writable folder, or RAG_EMBED_BACKEND=torch") from exc
    return dest


class OnnxEmbedder:
    """The bundled MiniLM on ONNX Runtime; the same interface as embeddings.LocalEmbedder."""

    def __init__(self, model_path: Path, backend: str, name: str, batch_size: int = 32,
                 cache_dir: Optional[Path] = None):
        import onnxruntime as ort
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # chunking tokenizes whole documents: length warnings are noise
        self.name, self.backend, self.batch_size = name, backend, batch_size
        self.model_file = exported_model(Path(model_path), backend, cache_dir, label=name.split("+")[0])
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1  # one encoder graph: parallelism is inside each MatMul
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.model_file), options, providers=["CPUExecutionProvider"])
        self.dims = int(self.session.get_outputs()[0].shape[-1])
        self._tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        # one batch at a time (two would only share the same cores), handed out in turn so a
        # question waits for one batch of an indexing run, not the run
        self._lock = FairLock()

    def tokenize(self, text: str) -> list:
        return self._tokenizer.tokenize(text)

    def _encode(self, texts: list[str]) -> np.ndarray:
        # Under the lock too: a fast tokenizer sets its padding and truncation state per call, and two
        # threads doing so at once fail ("Already borrowed").
        with self._lock:
            enc = self._tokenizer(texts, padding=True, truncation=True, max_length=_MAX_TOKENS, return_tensors="np")
            feeds = {k: enc[k].astype(np.int64) for k in _INPUTS}
            hidden = self.session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        # Longest first, like sentence-transformers: batches of similar length carry little padding.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            out[idx] = self._encode([texts[j] for j in idx])
        return out
