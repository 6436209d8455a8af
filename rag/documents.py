"""Stage 1: files on disk -> Documents (txt, md, html, pdf), with a reason for each file skipped."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable, Iterator, Union

from .errors import UnreadableFile  # noqa: F401 - re-exported where it used to live
from .models import Document, Skipped

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}


def list_files(docs_dir: Path) -> Iterator[Union[Path, Skipped]]:
    """Supported files under docs_dir; symlinks that lead outside it are reported, not followed."""
    root = docs_dir.resolve()
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
        if supported and path.is_file():
            yield path


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


def pdf_to_text(data: bytes) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableFile:
        raise
    except Exception as exc:  # pypdf raises many kinds for broken files
        raise UnreadableFile(f"broken PDF ({type(exc).__name__})") from exc
    return "\n\n".join(p.strip() for p in pages if p.strip())


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:200]
    return ""


# Leading bytes of file formats that are not text, whatever their name says.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a Word/Excel/OpenDocument file)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document"),
    (b"{\\rtf", "an RTF document"),
    (b"%!PS", "a PostScript document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "a program (ELF)"),
    (b"SQLite format 3\x00", "an SQLite database"),
)


def sniff_kind(data: bytes) -> str | None:
    """What the content is when it is a known non-text format (by its leading bytes), else None."""
    head = data[:64].lstrip(b" \t\r\n")  # a PDF may start after a blank line
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if re.match(rb"BZh[1-9]1AY&SY", head):
        return "a bzip2 archive"
    if head.startswith(b"MZ") and b"\x00" in head:  # "MZ" alone is too common a start of text
        return "a Windows program"
    return None


def parse_bytes(data: bytes, file_name: str) -> tuple[str, str]:
    """(text, title) of a file's bytes, chosen by its suffix; the content must be of that type
    (a PDF named `x.md` is refused, not read as text)."""
    suffix = Path(file_name).suffix.lower()
    kind = sniff_kind(data)
    if suffix != ".pdf" and kind is not None:
        proper = " (rename it to .pdf)" if kind == "a PDF document" else ""
        raise UnreadableFile(f"binary content: the file is {kind}, not a {suffix or 'text'} file{proper}")
    if suffix == ".pdf":
        if not data.startswith(b"%PDF"):
            raise UnreadableFile("not a PDF file")
        text = pdf_to_text(data)
        title = _first_line_title(text)
    elif suffix in (".html", ".htm"):
        text, title = html_to_text(decode_text(data))
        title = title or _first_line_title(text)
    else:
        text = decode_text(data).replace("\r\n", "\n").replace("\r", "\n")
        title = _first_line_title(text)
    if not text.strip():
        raise UnreadableFile("no text in file")
    return text, title or Path(file_name).stem


def load_document(path: Path, docs_dir: Path, max_bytes: int, data: bytes | None = None) -> Document:
    if data is None:
        size = path.stat().st_size
        if size > max_bytes:
            raise UnreadableFile(
                f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit (RAG_MAX_FILE_MB)"
            )
        if size == 0:
            raise UnreadableFile("empty file")
        data = path.read_bytes()
    text, title = parse_bytes(data, path.name)
    return Document(
        doc_id=doc_id_for(path, docs_dir),
        title=title,
        file_name=path.name,
        text=text,
        sha256=file_sha256(data),
    )


def scan(docs_dir: Path, max_bytes: int) -> Iterable[tuple[str, Path, str] | Skipped]:
    """(doc_id, path, sha256) for each readable-looking file, hashing bytes only (cheap)."""
    for item in list_files(docs_dir):
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
