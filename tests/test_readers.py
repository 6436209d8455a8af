"""Office files, CSV, scanned PDFs and images (OCR), and where each chunk is in its file: a folder
with one file of every supported type, written here with the same libraries the readers use, indexed
into a real store; the caps that stop a document bomb; one reading per upload."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from rag.chunks import Chunker
from rag.documents import UnreadableFile, read_bytes
from rag.embeddings import get_embedder
from rag.readers import BINARY_READERS, ReadLimits
from rag.settings import Settings

from .test_documents import make_pdf

VAULT = ["Inspection of the Tallinn vault", "", "The vault holds 4,812 golden spoons.",
         "They were counted in March 2024."]
SUPPORTED = ["book.xlsx", "deck.pptx", "photo.png", "prices.csv", "report.docx", "scan.pdf"]


# ---- the files ------------------------------------------------------------------------------------
def text_image(lines: list[str], size=(1240, 900)):
    """A white page with black text: what a scanner gives."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    for i, line in enumerate(lines):
        draw.text((100, 120 + i * 70), line, fill=0, font=font)
    return image


def scanned_pdf(text_page: str, scan_lines: list[str]) -> bytes:
    """Page 1 with a text layer, page 2 an image only (PIL writes an image as an image-only PDF)."""
    from pypdf import PdfReader, PdfWriter

    scan = io.BytesIO()
    text_image(scan_lines).save(scan, "PDF", resolution=150)
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(make_pdf(text_page))))
    writer.append(PdfReader(scan))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(path: Path, rows: int = 3):
    import docx

    d = docx.Document()
    d.add_heading("Field report", 0)
    d.add_heading("Findings", 1)
    d.add_paragraph("The survey found two problems:")
    d.add_paragraph("Rust on the north bridge", style="List Bullet")
    d.add_paragraph("Loose railings", style="List Bullet")
    table = d.add_table(rows=rows, cols=2)
    for i, row in enumerate([("Site", "Defects"), ("North", "12"), ("South", "3")] +
                            [(f"Site number {n} of the eastern district", str(n)) for n in range(rows - 3)]):
        for j, value in enumerate(row):
            table.cell(i, j).text = value
    d.add_heading("Costs", 1)
    d.add_paragraph("Repairs will cost 40,000 euros.")
    d.save(path)


def make_pptx(path: Path):
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Roadmap 2025"
    body = slide.placeholders[1].text_frame
    body.text = "Launch the Zorblax app"
    sub = body.add_paragraph()
    sub.text, sub.level = "Hire four engineers", 1
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Budget"
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (i, j), value in {(0, 0): "Item", (0, 1): "Cost", (1, 0): "Servers", (1, 1): "9000"}.items():
        table.cell(i, j).text = value
    slide.notes_slide.notes_text_frame.text = "Ask finance about the servers."
    deck.save(path)


def make_xlsx(path: Path, rows: int = 60):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Inventory"
    sheet.append(["Warehouse", "Item", "Quantity"])
    for i in range(rows):
        sheet.append([f"Depot {i}", f"widget type {i}", i * 7 + 3])
    sheet.append(["Tromsø", "golden spoons", 731])
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Role"])
    staff.append(["Ada Lindqvist", "Engineer"])
    book.save(path)


def make_folder(docs: Path) -> Path:
    docs.mkdir(parents=True, exist_ok=True)
    make_docx(docs / "report.docx")
    make_pptx(docs / "deck.pptx")
    make_xlsx(docs / "book.xlsx")
    (docs / "prices.csv").write_text("Product;Price\nApples;3.20\nPears;4.10\n", encoding="utf-8")
    (docs / "scan.pdf").write_bytes(scanned_pdf("Annual report of the Zorblax mining company for 2024.", VAULT))
    text_image(["The lighthouse keeper is Ingrid Solberg."], size=(1240, 300)).save(docs / "photo.png")
    (docs / "slides.key").write_bytes(b"PK\x03\x04 a Keynote file")
    (docs / ".DS_Store").write_bytes(b"\x00\x01")
    return docs


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """The folder indexed once into a real store (the bundled embedder, extractive answers)."""
    from rag import RAG

    base = tmp_path_factory.mktemp("readers")
    docs = make_folder(base / "docs")
    bot = RAG(docs_dir=docs, store_dir=base / "store", generator="extractive")
    stages: list[tuple[str, int, int]] = []
    report = bot.index(progress=lambda *p: stages.append(p))
    return bot, report, stages


def cited(answer):
    return [s for s in answer.sources if s.marker in answer.cited_markers()]


# ---- the folder, indexed ---------------------------------------------------------------------------
def test_every_file_is_accounted_for_in_added_or_skipped(indexed):
    bot, report, stages = indexed
    assert report.added == len(SUPPORTED)
    assert [(s.file, s.reason) for s in report.skipped] == [("slides.key", "unsupported type .key")]
    assert sorted(e.doc_id for e in bot.documents()) == SUPPORTED  # .DS_Store is hidden: not looked at
    # the two images read by OCR (page 2 of scan.pdf, photo.png) report their progress
    assert stages.count(("ocr", 1, 1)) == 2


def test_an_answer_from_the_scanned_page_cites_page_2(indexed):
    bot, _, _ = indexed
    answer = bot.ask("How many golden spoons does the Tallinn vault hold?")
    assert answer.answered and "4,812" in answer.answer
    source = cited(answer)[0]
    assert (source.doc_id, source.page, source.location) == ("scan.pdf", 2, "p. 2 (OCR)")
    public = source.public()
    assert public["page"] == 2 and public["location"] == "p. 2 (OCR)"
    assert answer.to_dict()["sources"][source.marker - 1]["page"] == 2


def test_a_table_cell_is_answered_from_its_row_read_with_the_header(indexed):
    bot, _, _ = indexed
    answer = bot.ask("What is the quantity of golden spoons in the Tromsø warehouse?")
    assert answer.answered and "Quantity: 731" in answer.answer
    source = cited(answer)[0]
    assert (source.doc_id, source.page, source.location) == ("book.xlsx", None, "sheet Inventory")
    lines = source.text.splitlines()
    row = next(i for i, line in enumerate(lines) if "Tromsø" in line)
    assert lines[row - 1] == "| Warehouse | Item | Quantity |"  # the block repeats its header
    assert source.spans and "Tromsø" in source.text[slice(*source.spans[0])]  # the row is what is marked


@pytest.mark.parametrize("question,doc_id,location,expected", [
    ("How many defects were found at the North site?", "report.docx", "§ Findings", "Defects: 12"),
    ("What does the servers item cost?", "deck.pptx", "slide 2", "Cost: 9000"),
    ("What is the price of pears?", "prices.csv", "", "Price: 4.10"),
])
def test_office_tables_answer_with_their_place(indexed, question, doc_id, location, expected):
    bot, _, _ = indexed
    answer = bot.ask(question)
    assert answer.answered and expected in answer.answer
    assert (cited(answer)[0].doc_id, cited(answer)[0].location) == (doc_id, location)


def test_chunks_carry_pages_slides_and_sheets_in_the_store(indexed):
    bot, _, _ = indexed
    places = {(m["doc_id"], m.get("page"), m.get("location")) for _, m, _ in bot.store.iter_chunk_metadata()}
    assert {("deck.pptx", 1, "slide 1"), ("deck.pptx", 2, "slide 2"), ("scan.pdf", 1, "p. 1"),
            ("scan.pdf", 2, "p. 2 (OCR)"), ("book.xlsx", None, "sheet Staff"), ("photo.png", None, "OCR")} <= places
    image = bot.retrieve("Who is the lighthouse keeper?")[0]
    assert image.doc_id == "photo.png" and "Solberg" in image.text


def test_a_store_without_page_metadata_still_answers(tmp_path, make_bot):
    """Chunks written before pages existed carry neither `page` nor `location`: page None, location ""."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The Zorblax reactor in Tallinn makes 42 megawatts of power.\n", encoding="utf-8")
    bot = make_bot(docs, generator="extractive")
    bot.index()
    got = bot.store.chunks.get(include=["metadatas", "documents", "embeddings"])
    old = [{k: v for k, v in m.items() if k not in ("page", "location")} for m in got["metadatas"]]
    bot.store.chunks.delete(ids=got["ids"])
    bot.store.chunks.add(ids=got["ids"], embeddings=got["embeddings"], documents=got["documents"], metadatas=old)
    source = bot.retrieve("How much power does the Zorblax reactor make?")[0]
    assert (source.doc_id, source.page, source.location) == ("a.txt", None, "")


# ---- readers, without a store ----------------------------------------------------------------------
def test_office_structure_is_kept_as_markdown(tmp_path):
    make_docx(tmp_path / "r.docx")
    make_pptx(tmp_path / "d.pptx")
    docx_text = read_bytes((tmp_path / "r.docx").read_bytes(), "r.docx")
    assert docx_text.title == "Field report"
    # a list stays with its lead-in (one paragraph: chunked as one piece)
    assert "# Findings\n\nThe survey found two problems:\n- Rust on the north bridge\n- Loose railings" in \
        docx_text.text
    assert "| Site | Defects |\n| North | 12 |\n| South | 3 |" in docx_text.text
    deck = read_bytes((tmp_path / "d.pptx").read_bytes(), "d.pptx")
    assert "# Roadmap 2025\n\n- Launch the Zorblax app\n  - Hire four engineers" in deck.text
    assert "| Item | Cost |\n| Servers | 9000 |" in deck.text and "Notes: Ask finance about the servers." in deck.text
    assert [(s.page, s.location) for s in deck.segments] == [(1, "slide 1"), (2, "slide 2")]
    assert deck.text[deck.segments[1].start:].startswith("# Budget")


@pytest.mark.parametrize("kind", ["xlsx", "docx"])
def test_no_table_row_is_chunked_without_its_header(tmp_path, kind):
    """Long tables are cut into blocks of one chunk each, every block starting with the header row."""
    settings = Settings()
    embedder = get_embedder(settings)
    path = tmp_path / f"t.{kind}"
    (make_xlsx if kind == "xlsx" else make_docx)(path, 300 if kind == "xlsx" else 120)  # Word tables build slowly
    headers = {"| Warehouse | Item | Quantity |", "| Name | Role |"} if kind == "xlsx" else {"| Site | Defects |"}
    from rag.documents import load_document

    limits = ReadLimits.from_settings(settings, tokenize=embedder.tokenize)
    doc = load_document(path, tmp_path, 10**8, limits=limits)
    chunks = Chunker(embedder.tokenize, settings.chunk_size, settings.chunk_overlap).chunk(doc)
    rows = 0
    for chunk in chunks:
        lines = [line for line in chunk.text.splitlines() if line.strip()]
        table = [line.startswith("| ") for line in lines]
        starts = [i for i, is_row in enumerate(table) if is_row and not (i and table[i - 1])]
        assert all(lines[i] in headers for i in starts), chunk.text  # every run of rows opens with its header
        rows += sum(1 for line in lines if line.startswith("| ") and line not in headers)
    assert rows >= (300 if kind == "xlsx" else 119) and len(chunks) > 5  # every row is in some chunk


def test_ocr_off_skips_images_and_scanned_pdfs_with_a_reason():
    off = ReadLimits(ocr=False)
    png = io.BytesIO()
    text_image(["Nothing to see"], size=(600, 200)).save(png, "PNG")
    with pytest.raises(UnreadableFile, match=r"OCR, which is off \(RAG_OCR=false\)"):
        read_bytes(png.getvalue(), "a.png", off)
    from pypdf import PdfReader, PdfWriter

    only_scan = PdfWriter()
    only_scan.append(PdfReader(io.BytesIO(scanned_pdf("x", VAULT))), pages=[1])
    data = io.BytesIO()
    only_scan.write(data)
    with pytest.raises(UnreadableFile, match=r"scanned PDF .* OCR is off \(RAG_OCR=false\)"):
        read_bytes(data.getvalue(), "scan.pdf", off)
    # a PDF with text pages keeps them; its scanned page waits for OCR
    mixed = read_bytes(scanned_pdf("Annual report of the Zorblax mining company.", VAULT), "m.pdf", off)
    assert "Zorblax" in mixed.text and "spoons" not in mixed.text
    assert Settings(ocr=False).ocr is False and Settings().ocr is True


# ---- document bombs --------------------------------------------------------------------------------
def test_files_over_the_caps_are_refused_while_reading(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for _ in range(5):
        writer.append(PdfReader(io.BytesIO(make_pdf("A page of the Zorblax report with some words on it."))))
    pages = io.BytesIO()
    writer.write(pages)
    with pytest.raises(UnreadableFile, match=r"5 pages, over the 4-page limit \(RAG_MAX_PAGES\)"):
        read_bytes(pages.getvalue(), "p.pdf", ReadLimits(max_pages=4))
    with pytest.raises(UnreadableFile, match=r"more than 200 characters .*RAG_MAX_FILE_CHARS"):
        read_bytes(pages.getvalue(), "p.pdf", ReadLimits(max_chars=200, max_pages=10))  # 5 x 52 characters
    assert "Zorblax" in read_bytes(pages.getvalue(), "p.pdf", ReadLimits(max_chars=1000, max_pages=5)).text
    for name, data in [("t.txt", b"word " * 300), ("t.csv", b"a,b\n" + b"1,2\n" * 300)]:
        with pytest.raises(UnreadableFile, match="RAG_MAX_FILE_CHARS"):
            read_bytes(data, name, ReadLimits(max_chars=1000))
    make_xlsx(tmp_path / "big.xlsx", 300)
    with pytest.raises(UnreadableFile, match="RAG_MAX_FILE_CHARS"):
        read_bytes((tmp_path / "big.xlsx").read_bytes(), "big.xlsx", ReadLimits(max_chars=1000))


def test_a_zip_bomb_posing_as_a_word_file_is_refused_before_it_is_unpacked(tmp_path):
    make_docx(tmp_path / "r.docx")
    bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO((tmp_path / "r.docx").read_bytes())) as z, \
            zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for item in z.infolist():
            out.writestr(item, z.read(item))
        out.writestr("word/padding.xml", b" " * 12_000_000)  # 12 MB unpacked, about 12 KB packed
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(UnreadableFile, match="zip bomb"):
        read_bytes(bomb.getvalue(), "r.docx", ReadLimits(max_chars=1000))


def test_over_the_cap_is_skipped_not_half_indexed_and_an_upload_is_read_once(tmp_path, make_bot, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("The Zorblax reactor makes 42 megawatts.\n", encoding="utf-8")
    (docs / "big.md").write_text("Zorblax words. " * 200, encoding="utf-8")
    bot = make_bot(docs, max_file_chars=1000, generator="extractive")
    report = bot.index()
    assert report.added == 1 and [s.file for s in report.skipped] == ["big.md"]
    assert "RAG_MAX_FILE_CHARS" in report.skipped[0].reason and bot.store.chunk_count() == 1
    calls = []
    real = BINARY_READERS[".pdf"]
    monkeypatch.setitem(BINARY_READERS, ".pdf", lambda data, limits: calls.append(1) or real(data, limits))
    doc_id, report = bot.add_document("upload.pdf", make_pdf("The Zorblax upload arrived on Tuesday."))
    assert (doc_id, report.added, len(calls)) == ("upload.pdf", 1, 1)  # read to check it, and not again


# ---- the link beside a citation --------------------------------------------------------------------
def test_citations_show_their_place_and_link_to_it_inertly():
    from rag.models import Answer, Source
    from ui import render

    pdf = Source(1, "reports/scan 1.pdf", "scan 1.pdf", "Annual report", "The vault holds 4,812 spoons.", 0, 29,
                 1.0, 0.6, page=7, location="p. 7")
    sheet = Source(2, "book.xlsx", "book.xlsx", "book", "| A | B |\n| x | 1 |", 10, 30, 0.9, 0.5,
                   location='sheet <img src=x onerror="alert(1)">')
    assert render.document_url(pdf) == "document/reports/scan%201.pdf#page=7"
    assert render.document_url(sheet) == "document/book.xlsx?start=10&end=30#passage"
    a = Answer("q?", "It holds 4,812 spoons [1]. The sheet says so [2].", True, "extractive", [pdf, sheet])
    for html in (render.answer_html(a, 1), render.sources_html([a])):
        assert 'href="document/reports/scan%201.pdf#page=7"' in html and ">p. 7<" in html
        assert "<img" not in html and "sheet &lt;img" in html  # a sheet's name is the document's text


def test_the_documents_tab_counts_unsupported_files_by_type():
    from rag.models import IndexReport, Skipped
    from ui.documents import report_text

    skipped = [Skipped("a.key", "unsupported type .key"), Skipped("b/c.key", "unsupported type .key"),
               Skipped("d.zip", "unsupported type .zip"), Skipped("bad.pdf", "broken PDF (x)")]
    report = IndexReport(added=1, skipped=skipped)
    text = report_text(report)
    assert "bad.pdf: broken PDF (x)" in text and "3 files of types that are not read (.key ×2, .zip)" in text


def pdf_bomb(pages: int, chars: int) -> bytes:
    """A few KB of PDF: `pages` pages sharing one compressed content stream of `chars` characters."""
    import zlib

    text = "Zorblax " * (chars // 8)
    stream = zlib.compress(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode(), 9)
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode()]
    objs += [f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {3 + pages} 0 R "
             f"/Resources << /Font << /F1 {4 + pages} 0 R >> >> >>".encode() for _ in range(pages)]
    objs += [b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
             b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)


def test_a_pdf_bomb_is_refused_at_the_page_that_passes_the_cap(monkeypatch):
    from pypdf import PageObject

    bomb = pdf_bomb(pages=20, chars=60_000)
    assert len(bomb) < 5_000  # 20 x 60,000 characters of text in under 5 KB
    pages_read = []
    real = PageObject.extract_text
    monkeypatch.setattr(PageObject, "extract_text", lambda self, *a, **k: pages_read.append(1) or real(self, *a, **k))
    with pytest.raises(UnreadableFile, match="more than 100,000 characters"):
        read_bytes(bomb, "bomb.pdf", ReadLimits(max_chars=100_000))
    assert len(pages_read) == 2  # refused while reading: the third page is never extracted


def test_an_index_kept_inside_the_documents_folder_is_not_reported_as_documents(tmp_path, make_bot):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The Zorblax reactor makes 42 megawatts.\n", encoding="utf-8")
    bot = make_bot(docs, store_dir=docs / "index_store")
    bot.index()
    assert any((docs / "index_store").rglob("*.sqlite3"))
    again = bot.index()
    assert (again.unchanged, again.skipped) == (1, [])
