"""The shape of the code: no import cycles, no function too long to read in one sitting, the UI above
the API; and the fusion functions that retrieval rests on."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from rag.retrieval import rrf_fuse, zscore_fuse

from .conftest import ROOT

PACKAGES = ("rag", "ui", "rageval")
MODULES = sorted(f"{p}.{f.stem}" if f.stem != "__init__" else p
                 for p in PACKAGES for f in (ROOT / p).glob("*.py") if f.stem != "__main__")


def _package_imports(path: Path, package: str) -> set[str]:
    """Modules of the same package that a module imports at load time (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
            found |= {f"{package}.{n.split('.')[0]}" for n in names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package + "."):
            found.add(".".join(node.module.split(".")[:2]))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_so_any_module_can_be_imported_first(package):
    graph = {f"{package}.{f.stem}": _package_imports(f, package) for f in (ROOT / package).glob("*.py")}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join(path + (name,))
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, path + (name,))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_rag_modules_import_in_reverse_order():
    names = " ".join(f"import {m};" for m in reversed(MODULES) if m.startswith("rag"))
    out = subprocess.run([sys.executable, "-c", names], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_is_over_60_lines(package):
    long = []
    for path in (ROOT / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []


def test_errors_module_imports_nothing_of_the_package():
    tree = ast.parse((ROOT / "rag" / "errors.py").read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports == []


def test_the_engine_never_imports_the_ui_or_the_eval_package_at_module_level():
    for path in (ROOT / "rag").glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("ui", "rageval")), path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith(("ui", "rageval")) for a in node.names), path.name


def test_rrf_fuse_adds_weighted_reciprocal_ranks():
    fused = rrf_fuse([(["a", "b"], 1.0), (["b", "c"], 2.0)], k=60)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 2 / 61)
    assert fused["c"] == pytest.approx(2 / 62)
    assert max(fused, key=fused.get) == "b"


def test_zscore_fuse_standardises_each_list_and_counts_a_missing_candidate_as_the_weakest():
    dense = {"a": 0.9, "b": 0.5, "c": 0.1}  # cosine
    bm25 = {"b": 30.0, "c": 10.0}  # another scale entirely
    fused = zscore_fuse([(dense, 1.0), (bm25, 1.0)])
    assert set(fused) == {"a", "b", "c"}
    # a is missing from BM25: it gets BM25's floor (c's standardised score), so b wins overall
    assert fused["b"] > fused["a"] > fused["c"]
    assert zscore_fuse([(dense, 1.0), (bm25, 0.0)]) == pytest.approx({"a": 1.2247, "b": 0.0, "c": -1.2247}, abs=1e-3)
    same = zscore_fuse([({"x": 1.0, "y": 1.0}, 1.0)])
    assert same == {"x": 0.0, "y": 0.0}  # no spread: no division by zero
