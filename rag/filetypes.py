"""What a file is by its content, not its name: the leading bytes of the binary formats a document
folder may hold, and the check that a file's bytes are of the type its suffix says (a PDF named
`x.md` is refused, not read as text; a `.docx` must be a ZIP package)."""

from __future__ import annotations

import re

from .errors import UnreadableFile

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


# What the leading bytes of each binary type must be (sniff_kind's words); text types must be none.
_CONTENT = {".pdf": {"a PDF document"}, ".png": {"a PNG image", "a JPEG image"},
            ".jpg": {"a PNG image", "a JPEG image"}, ".jpeg": {"a PNG image", "a JPEG image"},
            ".docx": {"a ZIP archive (or a Word/Excel/OpenDocument file)"}}
_CONTENT[".pptx"] = _CONTENT[".xlsx"] = _CONTENT[".docx"]
_PROPER = {"a PDF document": ".pdf", "a PNG image": ".png", "a JPEG image": ".jpg"}


def check_content(data: bytes, suffix: str) -> None:
    """The content must be of the type the name says: a PDF named `x.md` is refused, not read as text."""
    kind = sniff_kind(data)
    expected = _CONTENT.get(suffix, {None})
    if kind in expected:
        return
    if suffix == ".pdf":
        raise UnreadableFile("not a PDF file")
    proper = f" (rename it to {_PROPER[kind]})" if kind in _PROPER else ""
    if kind is None:
        raise UnreadableFile(f"not a {suffix} file: its content is text or of an unknown type")
    raise UnreadableFile(f"binary content: the file is {kind}, not a {suffix or 'text'} file{proper}")
