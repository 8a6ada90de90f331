"""llmkit.eval's shape: no import cycles, every name the docs show importable, one task registry."""

from __future__ import annotations

import pytest
from docs_api import mentions, problem
from import_graph import import_cycles

from llmkit.eval import EvalError, TaskRegistry, builtin_registry, load_task


def test_no_import_cycles():
    assert import_cycles("eval") == []


@pytest.mark.parametrize("mention", mentions("eval"), ids=str)
def test_docs_names_import(mention):
    assert problem(mention) is None


def test_benchmarks_and_probes_share_one_registry():
    registry = builtin_registry()
    assert {"mmlu", "gsm8k", "humaneval", "verbosity", "lost_in_the_middle"} <= registry.task_builders().keys()
    assert {"match", "choice", "code", "pushback", "recall_by_position"} <= registry.scorer_types().keys()
    assert load_task("verbosity").name == "verbosity" and load_task("mmlu").name == "mmlu"


def test_a_name_registered_twice_names_both_sources():
    registry = TaskRegistry()
    registry.add_task("mine", lambda: load_task("mmlu"), source="plugin-a")
    with pytest.raises(EvalError, match="task 'mine' is registered twice: by plugin-a and by plugin-b"):
        registry.add_task("mine", lambda: load_task("mmlu"), source="plugin-b")
    with pytest.raises(EvalError, match="unknown task 'other'; built-in tasks: mine"):
        registry.task("other")
