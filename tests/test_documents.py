
import pytest

from rag.documents import UnreadableFile, decode_text, html_to_text, load_document, parse_bytes, scan
from rag.models import Skipped


def make_pdf(text: str) -> bytes:
    """A minimal valid one-page PDF with the text in Helvetica."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def test_txt_title_is_first_line(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("\n\nMy Title\nBody text here.", encoding="utf-8")
    doc = load_document(p, tmp_path, 10**6)
    assert doc.title == "My Title" and doc.doc_id == "a.txt" and len(doc.sha256) == 64


def test_markdown_heading_title(tmp_path):
    p = tmp_path / "sub" / "b.md"
    p.parent.mkdir()
    p.write_text("# Heading One\n\nSome *text*.", encoding="utf-8")
    doc = load_document(p, tmp_path, 10**6)
    assert doc.title == "Heading One" and doc.doc_id == "sub/b.md"


def test_html_uses_title_and_drops_scripts():
    text, title = html_to_text(
        "<html><head><title>Page &amp; Co</title><script>alert(1)</script></head>"
        "<body><h1>Head</h1><p>Visible <b>text</b>.</p><script>evil()</script><style>p{}</style></body></html>"
    )
    assert title == "Page & Co"
    assert "Visible text." in text and "evil" not in text and "alert" not in text


def test_pdf_text_extracted():
    text, title = parse_bytes(make_pdf("Solar panels in Xinjiang"), "x.pdf")
    assert "Solar panels in Xinjiang" in text


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("broken.pdf", b"%PDF-1.4\n garbage \x00\x01", "broken PDF"),
        ("fake.pdf", b"hello, not a pdf", "not a PDF"),
        ("bin.txt", bytes(range(256)) * 10, "binary"),
        ("blank.md", b"   \n\n  ", "no text"),
    ],
)
def test_unreadable_files_have_reasons(name, data, reason):
    with pytest.raises(UnreadableFile, match=reason):
        parse_bytes(data, name)


def test_non_utf8_text_is_decoded():
    assert decode_text("Café déjà vu".encode("cp1252")) == "Café déjà vu"
    assert decode_text("\ufeffBOM text".encode("utf-8")) == "BOM text"
    assert decode_text("UTF-16 text".encode("utf-16")) == "UTF-16 text"


def test_scan_reports_empty_huge_and_outside_symlinks(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("fine")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "huge.txt").write_bytes(b"x" * 2000)
    (docs / "notes.bin").write_bytes(b"\x00")
    (docs / ".hidden.bin").write_bytes(b"\x00")
    (docs / ".git").mkdir()
    (docs / ".git" / "HEAD").write_text("ref")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (docs / "link.txt").symlink_to(outside)
    items = list(scan(docs, max_bytes=1000))
    skipped = {s.file: s.reason for s in items if isinstance(s, Skipped)}
    ok = [i[0] for i in items if not isinstance(i, Skipped)]
    assert ok == ["ok.txt"]
    assert "empty" in skipped["empty.txt"]
    assert "limit" in skipped["huge.txt"]
    assert "outside" in skipped["link.txt"]
    assert skipped["notes.bin"] == "unsupported type .bin"  # reported, not silently dropped
    assert not any(f.startswith(".") for f in skipped)  # hidden files and folders are not looked at
