"""llmkit.lab's shape: no import cycles, the docs' names import, and it sits on top (no sibling imports it)."""

from __future__ import annotations

import ast

import pytest
from docs_api import mentions, problem
from import_graph import REPO, import_cycles, package_modules


def test_no_import_cycles():
    assert import_cycles("lab") == []


@pytest.mark.parametrize("mention", mentions("lab"), ids=str)
def test_docs_names_import(mention):
    assert problem(mention) is None


def _llmkit_imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module


def test_the_lab_depends_on_train_and_eval_and_nothing_depends_on_it():
    siblings = {name.split(".")[1] for path in package_modules("lab").values() for name in _llmkit_imports(path)
                if name.startswith("llmkit.")}  # fmt: skip
    # context and orchestrate: `llmkit diagnose` reads session files (and their lint) and saved agent runs
    assert siblings <= {"core", "train", "eval", "context", "orchestrate", "lab"} and {"train", "eval"} <= siblings
    for package in sorted(p.name for p in (REPO / "packages").iterdir() if p.name != "lab"):
        for module, path in package_modules(package).items():
            assert not any(n.startswith("llmkit.lab") for n in _llmkit_imports(path)), module
