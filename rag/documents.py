"""Stage 1: files on disk -> Documents (text, Markdown, HTML here; PDF, Office, CSV and images by
rag/readers.py), with a reason for each file skipped, unsupported types included."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable, Iterator, Union

from .errors import UnreadableFile  # noqa: F401 - re-exported where it used to live
from .filetypes import check_content, sniff_kind  # noqa: F401 - sniff_kind re-exported
from .models import Document, Skipped
from .readers import BINARY_READERS, Parsed, ReadLimits, read_csv
from .titles import document_title

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".csv"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | set(BINARY_READERS)


def list_files(docs_dir: Path, exclude: Path | None = None) -> Iterator[Union[Path, Skipped]]:
    """Supported files under docs_dir; every other file is reported with its reason (hidden files
    and folders are not looked at); symlinks that lead outside it are reported, not followed."""
    root = docs_dir.resolve()
    # The index's own folder, when it lies inside the documents folder (not when the documents
    # folder lies inside it, as an evaluation's copy of a corpus does).
    inner = exclude.resolve() if exclude is not None else None
    if inner is not None and (inner == root or root.is_relative_to(inner)):
        inner = None
    for path in sorted(docs_dir.rglob("*")):
        rel = path.relative_to(docs_dir).as_posix()
        if any(part.startswith(".") for part in path.relative_to(docs_dir).parts):
            continue
        supported = path.suffix.lower() in SUPPORTED_SUFFIXES
        if path.is_symlink() and (supported or path.is_dir()):
            # rglob does not enter linked folders; either way what lies outside is not indexed
            if not path.resolve().is_relative_to(root):
                yield Skipped(rel, "symlink points outside the documents folder")
                continue
        if not path.is_file() or (inner is not None and path.resolve().is_relative_to(inner)):
            continue
        if supported:
            yield path
        else:
            yield Skipped(rel, f"unsupported type {path.suffix.lower()}" if path.suffix else
                          "unsupported type (no file extension)")


def doc_id_for(path: Path, docs_dir: Path) -> str:
    return path.relative_to(docs_dir).as_posix()


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM; other encodings (Shift-JIS, GBK, Big5,
    cp1251, ...) detected with charset-normalizer, else cp1252/latin-1; binary is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _refuse_binary(data.decode("utf-16"))
        except UnicodeDecodeError:
            raise UnreadableFile("not valid UTF-16 text (cut short, or binary content)") from None
    if b"\x00" in data[:8192]:
        raise UnreadableFile("binary content, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    detected = _detect_encoding(data)
    if detected is not None:
        return _refuse_binary(detected)
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return _refuse_binary(text)


# Multi-byte encodings of Chinese, Japanese and Korean text, which charset-normalizer tells apart well.
_CJK_ENCODINGS = {"cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004",
                  "euc_jisx0213", "iso2022_jp", "gb18030", "gb2312", "gbk", "cp936", "hz", "big5", "big5hkscs",
                  "cp950", "cp949", "euc_kr", "johab", "iso2022_kr"}


def _detect_encoding(data: bytes) -> str | None:
    """The text of non-UTF-8 bytes when charset-normalizer is sure of an encoding that is not a
    Western one: a CJK multi-byte encoding, or a single-byte one of a non-Latin script (Cyrillic,
    Greek, Hebrew, Arabic, Thai ...). None otherwise: short Western text is where its guesses are
    weakest (it reads cp1252 curly quotes as cp852), so that is left to cp1252."""
    from charset_normalizer import from_bytes

    try:
        best = from_bytes(data).best()
    except Exception:  # noqa: BLE001 - detection is a heuristic; cp1252 remains
        return None
    if best is None or best.encoding in (None, "utf_8", "cp1252", "latin_1", "ascii") or best.chaos > 0.1:
        return None
    text = str(best)
    if not _mostly_non_latin(text):
        return None
    if best.encoding in _CJK_ENCODINGS or best.coherence >= 0.2:
        return text
    return None


def _mostly_non_latin(text: str) -> bool:
    letters = [c for c in text if ord(c) > 127 and c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    return latin <= len(letters) * 0.2


def _refuse_binary(text: str) -> str:
    # Lots of control characters means this was never text in that encoding.
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\r\n\t\f")
    if controls > max(5, len(text) // 100):
        raise UnreadableFile("binary content, not text")
    return text


class _HTMLText(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "head"}
    _BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
              "article", "header", "footer", "blockquote", "pre", "table", "ul", "ol"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip:
            self.parts.append(data)


def html_to_text(source: str) -> tuple[str, str]:
    """Visible text and <title> of an HTML page; scripts and styles are dropped."""
    parser = _HTMLText()
    parser.feed(source)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n[ \n]*", "\n", text).strip()
    # convert_charrefs has already unescaped the title once: `&amp;amp;` is shown as `&amp;`
    return text, " ".join("".join(parser.title_parts).split())


def read_bytes(data: bytes, file_name: str, limits: ReadLimits | None = None) -> Parsed:
    """Text, title and segments (pages, slides, sheets) of a file's bytes, read by its suffix within
    limits (characters, pages, OCR on or off)."""
    limits = limits or ReadLimits()
    suffix = Path(file_name).suffix.lower()
    check_content(data, suffix)
    if suffix in BINARY_READERS:
        parsed = BINARY_READERS[suffix](data, limits)
    elif suffix == ".csv":
        parsed = read_csv(_bounded(decode_text(data), limits), Path(file_name).stem, limits)
    elif suffix in (".html", ".htm"):
        text, title = html_to_text(_bounded(decode_text(data), limits))
        parsed = Parsed(text, title)
    else:
        parsed = Parsed(_bounded(decode_text(data), limits).replace("\r\n", "\n").replace("\r", "\n"))
    if not parsed.text.strip():
        raise UnreadableFile("no text in file")
    if suffix in (".xlsx", ".png", ".jpg", ".jpeg"):  # a first sheet's name or OCR line is no title
        parsed.title = parsed.title or Path(file_name).stem
    html = decode_text(data) if suffix in (".html", ".htm") else None  # og:title, <h1>: rag/titles.py
    parsed.title = document_title(file_name, parsed.text, data, html, parsed.title) or Path(file_name).stem
    return parsed


def _bounded(text: str, limits: ReadLimits) -> str:
    if len(text) > limits.max_chars:
        raise limits.too_long(len(text))
    return text


def parse_bytes(data: bytes, file_name: str, limits: ReadLimits | None = None) -> tuple[str, str]:
    """(text, title) of a file's bytes (see read_bytes)."""
    parsed = read_bytes(data, file_name, limits)
    return parsed.text, parsed.title


def load_document(path: Path, docs_dir: Path, max_bytes: int, data: bytes | None = None,
                  limits: ReadLimits | None = None) -> Document:
    if data is None:
        size = path.stat().st_size
        if size > max_bytes:
            raise UnreadableFile(
                f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit (RAG_MAX_FILE_MB)"
            )
        if size == 0:
            raise UnreadableFile("empty file")
        data = path.read_bytes()
    parsed = read_bytes(data, path.name, limits)
    return Document(
        doc_id=doc_id_for(path, docs_dir),
        title=parsed.title,
        file_name=path.name,
        text=parsed.text,
        sha256=file_sha256(data),
        segments=parsed.segments,
    )


def scan(docs_dir: Path, max_bytes: int, exclude: Path | None = None) -> Iterable[tuple[str, Path, str] | Skipped]:
    """(doc_id, path, sha256) for each readable-looking file, hashing bytes only (cheap)."""
    for item in list_files(docs_dir, exclude):
        if isinstance(item, Skipped):
            yield item
            continue
        rel = doc_id_for(item, docs_dir)
        try:
            size = item.stat().st_size
            if size == 0:
                yield Skipped(rel, "empty file")
                continue
            if size > max_bytes:
                yield Skipped(rel, f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit "
                                   "(RAG_MAX_FILE_MB)")
                continue
            yield rel, item, file_sha256(item.read_bytes())
        except OSError as exc:
            yield Skipped(rel, f"cannot read file: {exc.strerror or exc}")
