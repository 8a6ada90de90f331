"""`llmkit.serve` exports the API its docs page uses: every name docs/serve.md imports from it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import llmkit.serve

DOC = Path(__file__).resolve().parents[2] / "docs" / "serve.md"


def documented_imports() -> list[tuple[str, list[str]]]:
    pattern = re.compile(r"^from (llmkit\.serve[\w.]*) import ([\w, ]+)$", re.MULTILINE)
    return [(module, [n.strip() for n in names.split(",")]) for module, names in pattern.findall(DOC.read_text())]


def test_the_engine_imports_from_the_package():
    from llmkit.serve import AsyncEngine, Engine, EngineConfig

    assert Engine.__module__ == "llmkit.serve.engine" and EngineConfig().block_size > 0
    assert AsyncEngine.__module__ == "llmkit.serve.async_engine"


def test_every_name_the_docs_import_exists():
    imports = documented_imports()
    assert any(module == "llmkit.serve" for module, _ in imports), "docs/serve.md shows no package import"
    for module, names in imports:
        loaded = importlib.import_module(module)
        for name in names:
            assert hasattr(loaded, name), f"docs/serve.md imports {name} from {module}"


def test_the_package_exports_what_it_lists():
    for name in llmkit.serve.__all__:
        assert getattr(llmkit.serve, name) is not None
