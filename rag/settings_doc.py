"""`.env.example` and the README's settings table, written from the fields of `rag.settings.Settings`.

    python -m rag.settings_doc --write     rewrite both after changing a setting
    python -m rag.settings_doc --check     exit 1 if either has drifted (tests/test_settings_doc.py)
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

from .settings import GROUPS, Settings

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"

# Set (not commented out) in .env.example, so that a copied .env names the two folders a user
# most often changes.
ACTIVE_IN_EXAMPLE = ("docs_dir", "store_dir")


def env_name(field: FieldInfo) -> str:
    """The documented environment variable: the first of the field's alias choices."""
    alias = field.validation_alias
    if not isinstance(alias, AliasChoices) or not isinstance(alias.choices[0], str):
        raise TypeError("every setting is declared with rag.settings._env")
    return alias.choices[0]


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def is_secret(field: FieldInfo) -> bool:
    return SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def grouped() -> Iterator[tuple[str, list[tuple[str, FieldInfo]]]]:
    """(group, [(field name, field)]) in the order of GROUPS, fields in declaration order."""
    fields = list(Settings.model_fields.items())
    for group in GROUPS:
        members = [(name, f) for name, f in fields if _extra(f).get("group") == group]
        if members:
            yield group, members


def env_example() -> str:
    lines = [
        "# Copy to .env and edit. Every setting has a working offline default; all are optional.",
        "# Generated from rag/settings.py by `python -m rag.settings_doc --write`: edit the descriptions there.",
    ]
    for group, members in grouped():
        lines += ["", f"# {GROUPS[group]}"]
        for name, field in members:
            default = "unset" if field.default is None else format_value(field.default)
            lines += textwrap.wrap(f"{field.description} Default: {default}", width=100,
                                   initial_indent="# ", subsequent_indent="# ",
                                   break_long_words=False, break_on_hyphens=False)
            # A secret's line stays empty: an example value would read as one to copy.
            value = "" if is_secret(field) else format_value(
                field.default if field.default is not None else _extra(field).get("example"))
            prefix = "" if name in ACTIVE_IN_EXAMPLE else "# "
            lines.append(f"{prefix}{env_name(field)}={value}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for group, members in grouped():
        lines.append(f"| **{_cell(group)}** | | |")
        for _, field in members:
            default = "unset" if field.default is None or is_secret(field) else f"`{format_value(field.default)}`"
            lines.append(f"| `{env_name(field)}` | {default} | {_cell(field.description or '')} |")
    return "\n".join(lines) + "\n"


def readme_with_table(readme: str) -> str:
    """README text with the part between the settings-table markers replaced by settings_table()."""
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {TABLE_START} ... {TABLE_END}")
    return readme[: start + len(TABLE_START)] + "\n" + settings_table() + readme[end:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rag.settings_doc", description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite .env.example and the README table")
    mode.add_argument("--check", action="store_true", help="exit 1 if either differs from the settings")
    args = p.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write(env_example())
        return 0
    wanted = {ENV_EXAMPLE: env_example(), README: readme_with_table(README.read_text(encoding="utf-8"))}
    if args.write:
        for path, text in wanted.items():
            path.write_text(text, encoding="utf-8")
        return 0
    stale = [p.name for p, text in wanted.items() if p.read_text(encoding="utf-8") != text]
    for name in stale:
        print(f"{name} is out of date: run python -m rag.settings_doc --write", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
