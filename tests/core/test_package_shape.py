"""llmkit.core's shape: no import cycles, every name the docs show importable; and the rules core holds
for every package: one seed derivation, one completion budget."""

from __future__ import annotations

import ast

import pytest
from docs_api import mentions, problem
from import_graph import REPO, import_cycles

from llmkit.core import ContextLengthError, SamplingParams
from llmkit.core.sampling.rng import derive_seed


def test_no_import_cycles():
    assert import_cycles("core") == []


@pytest.mark.parametrize("mention", mentions("core"), ids=str)
def test_docs_names_import(mention):
    assert problem(mention) is None


def test_one_derive_seed_in_every_package():
    """Every package derives per-sample and per-step seeds with core's `derive_seed`, none with its own."""
    definitions = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in sorted((REPO / "packages").glob("*/src/**/*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.FunctionDef) and node.name == "derive_seed"
    ]
    assert definitions == ["packages/core/src/llmkit/core/sampling/rng.py:33"]


def test_derived_seeds_are_distinct_signed_64_bit_integers():
    """A derived seed can travel anywhere a seed goes: the server's `seed` takes [-2**63, 2**63)."""
    for seed in (0, 7, 2**31 - 1, 2**62 + 12345, -5):
        assert derive_seed(seed, 0) == seed
        derived = [derive_seed(seed, index) for index in range(1, 200)]
        assert all(-(2**63) <= value < 2**63 for value in derived)
        assert len(set(derived)) == len(derived)
        assert derived == [derive_seed(seed, index) for index in range(1, 200)]


def test_completion_budget_is_max_tokens_cut_to_the_room_left():
    params = SamplingParams(max_tokens=100)
    assert params.completion_budget(prompt_tokens=10, context_length=256) == 100
    assert params.completion_budget(prompt_tokens=250, context_length=256) == 6
    assert params.completion_budget(prompt_tokens=255, context_length=256) == 1
    with pytest.raises(ContextLengthError, match="the prompt has 256 tokens; the model's context holds 256"):
        params.completion_budget(prompt_tokens=256, context_length=256)
