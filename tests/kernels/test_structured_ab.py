"""benchmarks/structured_ab.py's glue: another revision's structured package imports beside this checkout's
(as llmkit.core.structured_before) without changing the dispatcher's references, and its NFAs compile
through the installed native module."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from llmkit.core.ops import dispatch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "structured_ab.py"


def test_a_revision_compiles_beside_this_checkout(tmp_path):
    spec = importlib.util.spec_from_file_location("benchmark_structured_ab_glue", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec.loader.exec_module(script)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    references = dict(dispatch._references)
    before = script.import_revision("HEAD", tmp_path)
    assert before.__name__ == "llmkit.core.structured_before"
    assert dispatch._references == references
    schemas = json.loads((SCRIPT.parent / "structured_schemas.json").read_text())
    for python_only in (True, False):
        script.compiler(before, python_only)(schemas["person"]["schema"])
    import llmkit.core.structured as after

    script.compiler(after, False)(schemas["person"]["schema"])
