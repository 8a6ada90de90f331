"""llmkit.serve's shape: no import cycles within it, and every name the docs show importable from where they say."""

from __future__ import annotations

import pytest
from docs_api import mentions, problem
from import_graph import import_cycles


def test_no_import_cycles():
    assert import_cycles("serve") == []


@pytest.mark.parametrize("mention", mentions("serve"), ids=str)
def test_docs_names_import(mention):
    assert problem(mention) is None
