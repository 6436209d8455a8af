"""Text in images (scanned PDF pages, .png/.jpg files) by OCR: rapidocr-onnxruntime, whose wheel
ships its ONNX models, so it works offline. The engine is loaded on first use, once per process,
and used by one thread at a time."""

from __future__ import annotations

import threading
from statistics import median
from typing import Any

from .text import LIST_ITEM

_LOCK = threading.Lock()
_ENGINE: Any = None
_MIN_SCORE = 0.5  # recognitions below this confidence are mostly noise (specks, stamps, ruled lines)
# Measured on rendered pages (3 fonts, 150 and 300 dpi, single-spaced): with the default line boxes
# (unclip 1.6) the recogniser drops two spaces in three ("costsgrewregion"); boxes grown to 2.2 keep
# them (105 of 105 lines exact). The 180-degree line classifier then flips some upright lines into
# gibberish, and scans are upright: it is off.
_OPTIONS = {"unclip_ratio": 2.2, "use_cls": False, "box_thresh": 0.5, "text_score": _MIN_SCORE}


def _engine():
    global _ENGINE
    if _ENGINE is None:
        from rapidocr_onnxruntime import RapidOCR

        _ENGINE = RapidOCR()
    return _ENGINE


def image_text(image) -> str:
    """The text of a PIL image: its lines in reading order, wrapped lines joined into paragraphs."""
    import numpy as np

    rgb = image.convert("RGB")
    pixels = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])  # the engine expects OpenCV's BGR order
    with _LOCK:
        result, _ = _engine()(pixels, **_OPTIONS)
    boxes = [(box, text) for box, text, score in (result or []) if text.strip() and float(score) >= _MIN_SCORE]
    return paragraphs(boxes)


def paragraphs(boxes: list[tuple[list, str]]) -> str:
    """Recognised (box, text) pairs as text: boxes on one line joined left to right, lines that follow
    each other closely joined into a paragraph, a wider gap starting a new one."""
    if not boxes:
        return ""
    items = []
    for box, text in boxes:
        ys = [p[1] for p in box]
        xs = [p[0] for p in box]
        items.append((min(ys), max(ys), min(xs), text.strip(), max(xs) - min(xs)))
    items.sort(key=lambda it: ((it[0] + it[1]) / 2, it[2]))
    lines: list[list[tuple[float, float, float, str, float]]] = []
    for item in items:
        top, bottom = item[0], item[1]
        if lines:
            line = lines[-1]
            l_top, l_bottom = min(i[0] for i in line), max(i[1] for i in line)
            if (top + bottom) / 2 < l_bottom and (top + bottom) / 2 > l_top:  # same line: centres overlap it
                line.append(item)
                continue
        lines.append([item])
    height = median(max(i[1] for i in line) - min(i[0] for i in line) for line in lines) or 1.0
    left = min(it[2] for it in items)
    rights = [max(i[2] + i[4] for i in line) for line in lines]
    full = max(rights) - left
    out, prev_bottom, prev_right = "", None, 0.0
    for line, right in zip(lines, rights):
        text = " ".join(i[3] for i in sorted(line, key=lambda i: i[2]))
        top = min(i[0] for i in line)
        if prev_bottom is None:
            out = text
        elif top - prev_bottom > 0.9 * height:  # a blank line's worth of space: a new paragraph
            out += "\n\n" + text
        elif LIST_ITEM.match(text) or prev_right - left < 0.7 * full:  # an item; after a short line (a heading)
            out += "\n" + text
        else:  # a wrapped line
            out += " " + text
        prev_bottom, prev_right = max(i[1] for i in line), right
    return out

