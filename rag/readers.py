"""Readers of the file types that are not plain text: PDF (OCR for pages without a text layer), Word
(.docx), PowerPoint (.pptx), Excel (.xlsx), CSV and images (OCR). Each turns a file into Markdown-ish
text the chunker understands: headings as `# ...`, list items as `- ...`, tables as pipe tables whose
every block starts with the header row, and Segments saying where each part is (page, slide, sheet).

Work per file is bounded while reading (ReadLimits): a file with more pages or more characters of
text than allowed is refused with a reason, never half-indexed."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

from .errors import UnreadableFile
from .models import Segment

Progress = Callable[[str, int, int], None]  # (stage, done, total), as the indexer reports


@dataclass
class ReadLimits:
    """What a reader may do with one file. `measure`/`block_budget` size table blocks so each fits one
    chunk whole (the indexer passes the embedding model's token count and the chunk size)."""

    max_chars: int = 2_000_000
    max_pages: int = 2_000
    ocr: bool = True
    measure: Callable[[str], int] = len
    block_budget: int = 500
    progress: Optional[Progress] = None

    @classmethod
    def from_settings(cls, settings, tokenize: Optional[Callable[[str], list]] = None,
                      progress: Optional[Progress] = None) -> "ReadLimits":
        limits = cls(max_chars=settings.max_file_chars, max_pages=settings.max_pages, ocr=settings.ocr,
                     progress=progress)
        if tokenize is not None:
            limits.measure = lambda text: len(tokenize(text))
            limits.block_budget = max(16, settings.chunk_size - 8)  # a little room for the chunker's own count
        return limits

    def too_long(self, chars: int) -> UnreadableFile:
        return UnreadableFile(f"more than {self.max_chars:,} characters of text (RAG_MAX_FILE_CHARS); "
                              "split the file, or raise the limit")


@dataclass
class Parsed:
    text: str
    title: str = ""  # empty: the caller takes the first heading or line
    segments: list[Segment] = field(default_factory=list)


class TextBuilder:
    """Blocks of text joined by blank lines, with the segment each block belongs to; counts characters
    as they come, so a file over the limit is refused before it is all read."""

    def __init__(self, limits: ReadLimits):
        self.limits = limits
        self.blocks: list[str] = []
        self.marks: list[tuple[int, Optional[int], str]] = []  # (first block, page, location)
        self.size = 0

    def segment(self, page: Optional[int], location: str) -> None:
        self.marks.append((len(self.blocks), page, location))

    def add(self, block: str) -> None:
        block = block.strip()
        if block:
            self.blocks.append(block)
            self._grow(len(block) + 2)

    def attach(self, line: str) -> None:
        """Add line to the last block (a list item to its lead-in): they stay one piece when chunked."""
        if self.blocks and (not self.marks or self.marks[-1][0] < len(self.blocks)):
            self.blocks[-1] += "\n" + line
            self._grow(len(line) + 1)
        else:
            self.add(line)

    def _grow(self, n: int) -> None:
        self.size += n
        if self.size > self.limits.max_chars:
            raise self.limits.too_long(self.size)

    def build(self, title: str = "") -> Parsed:
        offsets, pos = [], 0
        for block in self.blocks:
            offsets.append(pos)
            pos += len(block) + 2
        segments = [Segment(offsets[first], page, location) for first, page, location in self.marks
                    if first < len(self.blocks)]
        # a segment with no text of its own (an empty slide) would start where the next one does
        segments = [s for i, s in enumerate(segments) if i + 1 == len(segments) or segments[i + 1].start != s.start]
        return Parsed("\n\n".join(self.blocks), title.strip(), segments)


# ---- tables -------------------------------------------------------------------------------------
def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif hasattr(value, "isoformat"):
        value = value.isoformat().removesuffix("T00:00:00")
    # a pipe would end the cell early; a newline would end the row
    return " ".join(str(value).replace("|", "/").split())


def table_blocks(rows: Iterable[Iterable], limits: ReadLimits, caption: str = "") -> list[str]:
    """A table as pipe-table blocks, each starting with the header row and small enough for one chunk,
    so no row is ever read without its header. With a caption each block opens with a line naming
    the table and its rows ("Sheet Sales, rows 13-24 of 40:"); without one, only continued blocks do."""
    cells = [[_cell(v) for v in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return []
    width = max(max((i + 1 for i, c in enumerate(row) if c), default=0) for row in cells)
    cells = [(row + [""] * width)[:width] for row in cells]
    header = [h or f"column {i + 1}" for i, h in enumerate(cells[0])]
    data = cells[1:]
    head_line = "| " + " | ".join(header) + " |"
    if not data:
        return [head_line]
    lines = ["| " + " | ".join(row) + " |" for row in data]
    sizes = [limits.measure(line) for line in lines]
    base = limits.measure(head_line) + limits.measure(f"{caption or 'Table'}, rows 0000-0000 of 0000:")
    groups, start = [], 0
    while start < len(lines):
        end, used = start + 1, base + sizes[start]
        while end < len(lines) and used + sizes[end] <= limits.block_budget:
            used += sizes[end]
            end += 1
        groups.append((start, end))
        start = end
    out = []
    for start, end in groups:
        label = caption or ("Table" if len(groups) > 1 and start > 0 else "")
        lead = f"{label}, rows {start + 1}-{end} of {len(lines)}:\n" if label else ""
        out.append(lead + head_line + "\n" + "\n".join(lines[start:end]))
    return out


# ---- Office files ---------------------------------------------------------------------------------
def _check_zip(data: bytes, kind: str, limits: ReadLimits) -> None:
    """An Office file is a ZIP of XML parts: refuse one that is not, or whose XML unpacks to far more
    than the text limit could need (a zip bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            xml = sum(i.file_size for i in z.infolist() if i.filename.endswith((".xml", ".rels")))
    except zipfile.BadZipFile:
        raise UnreadableFile(f"not a {kind} file (broken or not a ZIP package)") from None
    cap = 10_000_000 + 50 * limits.max_chars
    if xml > cap:
        raise UnreadableFile(f"its XML unpacks to {xml / 1e6:,.0f} MB, over the {cap / 1e6:,.0f} MB that "
                             "RAG_MAX_FILE_CHARS allows (a zip bomb?)")


def _heading_level(style_name: str) -> int:
    """1-6 for Word's Title / Heading N styles, 0 for anything else."""
    name = style_name.lower()
    if name == "title":
        return 1
    m = re.match(r"heading\s*(\d)", name)
    return min(6, int(m.group(1))) if m else 0


def read_docx(data: bytes, limits: ReadLimits) -> Parsed:
    import docx
    from docx.table import Table

    _check_zip(data, "Word (.docx)", limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many kinds for a package that is not Word's
        raise UnreadableFile(f"not a readable Word document ({type(exc).__name__})") from None
    out = TextBuilder(limits)
    lead_in = False  # the last block is prose ending in ":", which a following list belongs to
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for part in table_blocks(([c.text for c in row.cells] for row in block.rows), limits):
                out.add(part)
            lead_in = False
            continue
        text = " ".join(block.text.split())
        if not text:
            continue
        style = block.style.name if block.style is not None else ""
        level = _heading_level(style or "")
        p_pr = block._p.pPr
        if level:
            out.add("#" * level + " " + text)
            lead_in = False
        elif style.lower().startswith("list") or (p_pr is not None and p_pr.numPr is not None):
            (out.attach if lead_in or _last_is_list(out) else out.add)("- " + text)
        else:
            out.add(text)
            lead_in = text.endswith(":")
    return out.build(document.core_properties.title or "")


def _last_is_list(out: TextBuilder) -> bool:
    return bool(out.blocks) and out.blocks[-1].rsplit("\n", 1)[-1].startswith("- ")


def _shapes(shapes) -> Iterator:
    """Every shape of a slide, the shapes inside groups included, in the slide's order."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _slide_blocks(slide, limits: ReadLimits) -> Iterator[str]:
    title_shape = slide.shapes.title
    if title_shape is not None and title_shape.text_frame.text.strip():
        yield "# " + " ".join(title_shape.text_frame.text.split())
    for shape in _shapes(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if getattr(shape, "has_table", False) and shape.has_table:
            yield from table_blocks(([c.text for c in row.cells] for row in shape.table.rows), limits)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            bullets = shape.is_placeholder  # body placeholders are bulleted; plain text boxes are not
            lines = []
            for para in shape.text_frame.paragraphs:
                text = " ".join("".join(r.text for r in para.runs).split())
                if text:
                    lines.append(("  " * para.level + "- " + text) if bullets else text)
            if lines:
                yield "\n".join(lines)
    if slide.has_notes_slide:
        notes = " ".join(slide.notes_slide.notes_text_frame.text.split()) if slide.notes_slide.notes_text_frame else ""
        if notes:
            yield "Notes: " + notes


def read_pptx(data: bytes, limits: ReadLimits) -> Parsed:
    import pptx

    _check_zip(data, "PowerPoint (.pptx)", limits)
    try:
        deck = pptx.Presentation(io.BytesIO(data))
    except Exception as exc:
        raise UnreadableFile(f"not a readable PowerPoint presentation ({type(exc).__name__})") from None
    if len(deck.slides) > limits.max_pages:
        raise UnreadableFile(f"{len(deck.slides):,} slides, over the {limits.max_pages:,}-page limit (RAG_MAX_PAGES)")
    out = TextBuilder(limits)
    for n, slide in enumerate(deck.slides, start=1):
        out.segment(n, f"slide {n}")
        for block in _slide_blocks(slide, limits):
            out.add(block)
    return out.build(deck.core_properties.title or "")


def read_xlsx(data: bytes, limits: ReadLimits) -> Parsed:
    import openpyxl

    _check_zip(data, "Excel (.xlsx)", limits)
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise UnreadableFile(f"not a readable Excel workbook ({type(exc).__name__})") from None
    out = TextBuilder(limits)
    try:
        for sheet in book.worksheets:
            rows = list(_bounded_rows(sheet.iter_rows(values_only=True), limits))
            blocks = table_blocks(rows, limits, caption=f"Sheet {sheet.title}")
            if blocks:
                out.segment(None, f"sheet {sheet.title}")
                out.add(f"# {sheet.title}")
                for block in blocks:
                    out.add(block)
        title = book.properties.title or ""
    finally:
        book.close()
    return out.build(title)


def _bounded_rows(rows: Iterable[Iterable], limits: ReadLimits) -> Iterator[list]:
    """The rows, refused as soon as their cells hold more text than the limit allows."""
    size = 0
    for row in rows:
        row = list(row)
        size += sum(len(str(v)) + 3 for v in row if v is not None)
        if size > limits.max_chars:
            raise limits.too_long(size)
        yield row


def read_csv(text: str, name: str, limits: ReadLimits) -> Parsed:
    """A CSV (or semicolon / tab separated) file's text as one table, its first row the header."""
    sample = text[:20_000]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(_bounded_rows(csv.reader(io.StringIO(text), dialect), limits))
    except csv.Error as exc:
        raise UnreadableFile(f"broken CSV ({exc})") from None
    out = TextBuilder(limits)
    for block in table_blocks(rows, limits, caption=name):
        out.add(block)
    return out.build(name)


# ---- PDF and images ---------------------------------------------------------------------------------
def _has_text(text: str) -> bool:
    # a page number or a scanner's stamp ("Scanned by CamScanner") on a scanned page is no text layer
    return len(re.findall(r"\w", text)) >= 40


def read_pdf(data: bytes, limits: ReadLimits) -> Parsed:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("encrypted PDF")
        count = len(reader.pages)
        if count > limits.max_pages:
            raise UnreadableFile(f"{count:,} pages, over the {limits.max_pages:,}-page limit (RAG_MAX_PAGES)")
        texts, size = [], 0
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            size += len(text)
            if size > limits.max_chars:  # a few KB of PDF can expand to millions of characters
                raise limits.too_long(size)
            texts.append(text)
        scanned = [i for i, t in enumerate(texts) if not _has_text(t) and _image_count(reader.pages[i])]
    except UnreadableFile:
        raise
    except Exception as exc:  # pypdf raises many kinds for broken files
        raise UnreadableFile(f"broken PDF ({type(exc).__name__})") from exc
    ocr_pages: set[int] = set()
    if scanned and limits.ocr:
        ocr_pages = _ocr_pages(reader, scanned, texts, limits)
    elif scanned and not any(t for i, t in enumerate(texts) if i not in scanned):
        raise UnreadableFile("a scanned PDF (no text layer) and OCR is off (RAG_OCR=false)")
    out = TextBuilder(limits)
    for i, text in enumerate(texts):
        if text:
            out.segment(i + 1, f"p. {i + 1}" + (" (OCR)" if i in ocr_pages else ""))
            out.add(text)
    return out.build()


def _image_count(page) -> int:
    try:
        return len(page.images)  # counts the page's image objects without decoding them
    except Exception:  # noqa: BLE001 - a page whose images pypdf cannot list has none OCR could read
        return 0


def _page_images(page) -> list:
    try:
        return list(page.images)
    except Exception:  # noqa: BLE001 - an image pypdf cannot list is one OCR cannot read either
        return []


def _ocr_pages(reader, pages: list[int], texts: list[str], limits: ReadLimits) -> set[int]:
    """OCR the pages without a text layer, in place in texts; the pages that gave text."""
    from . import ocr

    done, size = set(), sum(len(t) for t in texts)
    for n, i in enumerate(pages, start=1):
        if limits.progress:
            limits.progress("ocr", n - 1, len(pages))
        parts = []
        for image in _page_images(reader.pages[i]):
            try:
                parts.append(ocr.image_text(image.image))
            except Exception:  # noqa: BLE001 - an image in a format PIL cannot decode: the page stays empty
                continue
        text = "\n\n".join(p for p in parts if p.strip())
        size += len(text)
        if size > limits.max_chars:
            raise limits.too_long(size)
        if text:
            texts[i] = f"{texts[i]}\n\n{text}".strip()  # what little text the page had stays too
            done.add(i)
    if limits.progress:
        limits.progress("ocr", len(pages), len(pages))
    return done


def read_image(data: bytes, limits: ReadLimits) -> Parsed:
    if not limits.ocr:
        raise UnreadableFile("an image: reading its text needs OCR, which is off (RAG_OCR=false)")
    from PIL import Image

    from . import ocr

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Image.DecompressionBombError:
        raise UnreadableFile("an image of too many pixels (a decompression bomb?)") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for broken images
        raise UnreadableFile(f"broken image ({type(exc).__name__})") from None
    if limits.progress:
        limits.progress("ocr", 0, 1)
    text = ocr.image_text(image)
    if limits.progress:
        limits.progress("ocr", 1, 1)
    if not text.strip():
        raise UnreadableFile("no text found in the image (OCR)")
    if len(text) > limits.max_chars:
        raise limits.too_long(len(text))
    return Parsed(text, "", [Segment(0, None, "OCR")])


# suffix -> reader of the file's bytes (CSV is text: rag/documents.py decodes it first)
BINARY_READERS: dict[str, Callable[[bytes, ReadLimits], Parsed]] = {
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".pptx": read_pptx,
    ".xlsx": read_xlsx,
    ".png": read_image,
    ".jpg": read_image,
    ".jpeg": read_image,
}
