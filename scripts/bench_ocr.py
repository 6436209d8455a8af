"""OCR speed and quality: scanned A4 pages (11 pt serif text, about 3,300 characters a page) written as
image-only PDFs at 150, 200 and 300 dpi, read through rag.readers.read_pdf as indexing reads them.

    .venv/bin/python scripts/bench_ocr.py [--pages 6]

Prints pages/s per resolution and the share of words read exactly (the recogniser's weak point is
the space between words)."""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import offline  # noqa: E402

offline.apply()

WORDS = ("the report says that revenue grew in the northern region while costs fell sharply after the new "
         "plant opened in March and staff numbers rose by twelve percent across all sites").split()
FONTS = ["/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"]


def scanned_page(dpi: int, rng: random.Random) -> tuple[object, list[str]]:
    from PIL import Image, ImageDraw, ImageFont

    width, height = int(8.27 * dpi), int(11.69 * dpi)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    size = int(11 / 72 * dpi)
    font_path = next((f for f in FONTS if os.path.exists(f)), None)
    font = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default(size=size)
    words, y = [], int(0.8 * dpi)
    while y < height - int(0.8 * dpi):
        line = [rng.choice(WORDS) for _ in range(13)]
        draw.text((int(0.8 * dpi), y), " ".join(line), fill=0, font=font)
        words += line
        y += int(size * 1.5)
    return image, words


def scanned_pdf(pages: int, dpi: int, rng: random.Random) -> tuple[bytes, list[str]]:
    from pypdf import PdfReader, PdfWriter

    writer, words = PdfWriter(), []
    for _ in range(pages):
        image, page_words = scanned_page(dpi, rng)
        buf = io.BytesIO()
        image.save(buf, "PDF", resolution=dpi)  # PIL stores the page as a JPEG, as scanners do
        writer.append(PdfReader(buf))
        words += page_words
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), words


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=6)
    args = parser.parse_args()
    from rag import ocr
    from rag.readers import ReadLimits, read_pdf

    t0 = time.perf_counter()
    ocr._engine()
    print(f"OCR engine loaded in {time.perf_counter() - t0:.2f} s; {os.cpu_count()} CPU cores")
    rng = random.Random(1)
    for dpi in (150, 200, 300):
        data, words = scanned_pdf(args.pages, dpi, rng)
        t0 = time.perf_counter()
        text = read_pdf(data, ReadLimits()).text
        seconds = time.perf_counter() - t0
        read = text.split()
        exact = sum(1 for a, b in zip(read, words) if a == b) if len(read) == len(words) else \
            sum(1 for w in read if w in WORDS)
        print(f"{dpi} dpi: {args.pages} pages in {seconds:.1f} s = {args.pages / seconds:.2f} pages/s "
              f"({seconds / args.pages:.1f} s a page); words read exactly {exact}/{len(words)} "
              f"({100 * exact / len(words):.0f} %); load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
