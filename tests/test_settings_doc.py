"""`.env.example` and the README's settings table are generated from rag/settings.py; these fail
when someone edits a setting without running `python -m rag.settings_doc --write`."""

import pytest

from rag import settings_doc
from rag.settings import GROUPS, Settings

from .conftest import ROOT

FIELDS = list(Settings.model_fields.items())


def test_env_example_matches_settings():
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == settings_doc.env_example(), (
        ".env.example is out of date: run python -m rag.settings_doc --write")


def test_readme_table_matches_settings():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_doc.readme_with_table(readme) == readme, (
        "README.md's settings table is out of date: run python -m rag.settings_doc --write")


@pytest.mark.parametrize("name,field", FIELDS, ids=[n for n, _ in FIELDS])
def test_every_setting_is_described_and_grouped(name, field):
    assert field.description and field.description.strip(), f"{name} has no description"
    assert field.json_schema_extra["group"] in GROUPS


def test_every_setting_appears_in_both_documents():
    example, table = settings_doc.env_example(), settings_doc.settings_table()
    for _, field in FIELDS:
        var = settings_doc.env_name(field)
        assert f"{var}=" in example
        assert f"| `{var}` |" in table


def test_secrets_have_no_value_in_the_example():
    secrets = [f for _, f in FIELDS if settings_doc.is_secret(f)]
    assert secrets  # OPENAI_API_KEY and RAG_AUTH
    lines = settings_doc.env_example().splitlines()
    for field in secrets:
        var = settings_doc.env_name(field)
        assert f"# {var}=" in lines
        assert not any(line.lstrip("# ").startswith(f"{var}=") and line.split("=", 1)[1] for line in lines)


def test_only_the_folders_are_set_in_the_example():
    active = [line.split("=")[0] for line in settings_doc.env_example().splitlines()
              if line and not line.startswith("#")]
    assert active == ["RAG_DOCS_DIR", "RAG_STORE_DIR"]


def test_example_values_parse_as_settings():
    # Uncommenting every line of .env.example must give valid settings (secrets left out: empty).
    values = {}
    for line in settings_doc.env_example().splitlines():
        line = line.removeprefix("# ")
        if "=" in line and line.split("=", 1)[0].isupper():
            var, value = line.split("=", 1)
            if value:
                values[var] = value
    assert len(values) == len(FIELDS) - sum(settings_doc.is_secret(f) for _, f in FIELDS)
    s = Settings(**values)
    assert s.top_k == 5 and str(s.docs_dir) == "seeds" and s.chroma_host == "127.0.0.1"


def test_write_and_check(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{settings_doc.TABLE_START}\nold table\n{settings_doc.TABLE_END}\n\nafter\n")
    monkeypatch.setattr(settings_doc, "README", readme)
    monkeypatch.setattr(settings_doc, "ENV_EXAMPLE", tmp_path / ".env.example")
    (tmp_path / ".env.example").write_text("stale\n")
    assert settings_doc.main(["--check"]) == 1
    assert settings_doc.main(["--write"]) == 0
    assert settings_doc.main(["--check"]) == 0
    text = readme.read_text()
    assert "old table" not in text and text.endswith(f"{settings_doc.TABLE_END}\n\nafter\n")
    assert "| `RAG_TOP_K` | `5` |" in text
