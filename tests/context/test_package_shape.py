"""llmkit.context's shape: no import cycles within it, every name the docs show importable from where they say,
and "block" left to KV blocks."""

from __future__ import annotations

import ast

import pytest
from docs_api import mentions, problem
from import_graph import REPO, import_cycles


def test_no_import_cycles():
    assert import_cycles("context") == []


@pytest.mark.parametrize("mention", mentions("context"), ids=str)
def test_docs_names_import(mention):
    assert problem(mention) is None


def test_block_means_a_kv_block_so_context_names_none():
    """llmkit.context holds no KV blocks, so no name in it says "block" (code in messages is a "snippet")."""
    names = []
    for path in sorted((REPO / "packages/context/src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = (
                getattr(node, "id", None)
                or getattr(node, "arg", None)
                or (node.name if isinstance(node, ast.FunctionDef | ast.ClassDef) else None)
                or (node.attr if isinstance(node, ast.Attribute) else None)
            )
            if isinstance(name, str) and "block" in name.lower():
                names.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert names == []
