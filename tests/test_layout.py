"""The layers the tree shows (docs/ARCHITECTURE.md): no import runs back up or sideways.

frontends -> backend -> model, training beside model, and the client on its own. Checked on the
source text, so a violation fails here even when no test happens to execute the import.
"""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

# Each top-level folder and the top-level packages it must never import.
FORBIDDEN = {
    "client": {"backend", "frontends", "model", "training", "tests"},  # usable without the server
    "model": {"backend", "frontends", "client", "training", "tests"},  # serving only
    "backend": {"frontends", "training", "tests"},  # frontends and commands come through entry points
    "training": {"backend", "frontends", "client", "tests"},
    "frontends": {"training", "tests"},
    "scripts": {"tests"},
    "bench": {"tests"},
}


def imported_packages(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_import_runs_against_the_layers(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"{folder}/ has no Python files: update FORBIDDEN"
    wrong = {str(f.relative_to(ROOT)): sorted(imported_packages(f) & FORBIDDEN[folder]) for f in files}
    assert {f: bad for f, bad in wrong.items() if bad} == {}


def test_the_backend_imports_nothing_by_string():
    calls = [str(f.relative_to(ROOT)) for f in sorted((ROOT / "backend").rglob("*.py"))
             if "import_module(" in f.read_text(encoding="utf-8") or "__import__(" in f.read_text(encoding="utf-8")]
    assert calls == []
