"""Titles and web furniture on a folder of documents, before and after rag/titles.py and
rag/boilerplate.py (README "Titles and boilerplate").

    .venv/bin/python scripts/measure_furniture.py seeds ../shared/eval/realtimeqa-dev/docs

A title counts as bad when it is not a headline: an ad, share, subscribe, date, URL or byline line
(rag.titles.looks_like_furniture), one of a few plain give-away words (BAD below), more than 150
characters (a paragraph's opening), or it ends in " | Site" (a site name). "Before" is the old
rule: the first non-blank line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from rag.boilerplate import content_regions, furniture_text
from rag.documents import parse_bytes
from rag.titles import looks_like_furniture

BAD = re.compile(r"coming soon|learn more|subscribe|sign up|newsletter|advertisement|cookie (policy|settings)|"
                 r"^\W*share\W*$", re.I)


def old_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:200]
    return ""


def why_bad(title: str) -> str:
    if looks_like_furniture(title) or BAD.search(title):
        return "furniture"
    if len(title) > 150:
        return "paragraph"
    if re.search(r"\s\|\s[^|]{1,40}$", title):
        return "site name"
    return ""


def measure(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    bad_before: dict[str, int] = {}
    bad_after: dict[str, int] = {}
    changed = lines = docs_with = chars = kept = 0
    for path in files:
        try:
            data = path.read_bytes()
            text, title = parse_bytes(data, path.name)
        except Exception:  # noqa: BLE001 - a file the app skips is not measured
            continue
        before = old_title(text)
        for counts, t in ((bad_before, before), (bad_after, title)):
            reason = why_bad(t)
            if reason:
                counts[reason] = counts.get(reason, 0) + 1
        changed += before != title
        found = furniture_text(text)
        lines += len(found)
        docs_with += bool(found)
        chars += len(text.strip())
        kept += sum(e - s for s, e in content_regions(text))
    print(f"{folder}: {len(files)} documents")
    print(f"  bad titles before: {sum(bad_before.values())} {bad_before}")
    print(f"  bad titles after:  {sum(bad_after.values())} {bad_after}")
    print(f"  titles changed: {changed}")
    print(f"  furniture: {lines} lines in {docs_with} documents, {100 * (1 - kept / max(chars, 1)):.1f}% of "
          "the text left out of the chunks")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["seeds"]:
        measure(Path(arg))
