"""Structured outputs: JSON Schema / regex / GBNF grammars compiled to byte-level rule DFAs, and the
matchers that turn them into token masks (docs/structured-outputs.md).

The matcher implementation is an op of the kernel dispatcher, "grammar_matcher": this package
registers the pure-Python `ReferenceMatcher` (the specification); llmkit-kernels registers the
native one, and `LLMKIT_KERNELS=reference` forces the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..ops.dispatch import implementation, register_reference
from .compiled import CompiledGrammar, compile_grammar_ir
from .compiler import GrammarCompiler, StructuredOutput, any_json_grammar, compile_structured
from .gbnf import parse_gbnf
from .ir import Grammar, GrammarError
from .json_schema import JsonOptions, compile_json_schema
from .matcher import ReferenceMatcher, pack_mask, words_for
from .regex import regex_to_ir
from .vocabulary import VocabularyIndex, vocabulary_index

MATCHER_OP = "grammar_matcher"
register_reference(MATCHER_OP, ReferenceMatcher)


def create_matcher(grammar: CompiledGrammar, vocabulary: VocabularyIndex, stop_token_ids=None) -> Any:
    """A matcher from the best registered implementation (native when llmkit-kernels is installed)."""
    return implementation(MATCHER_OP, "cpu")(grammar, vocabulary, stop_token_ids)


def prepare_matcher(
    grammar: CompiledGrammar, vocabulary: VocabularyIndex, num_threads: int | None = None, classify: bool = True
) -> None:
    """Build the best matcher implementation's tables for this grammar now (native: its index over the
    vocabulary and, with `classify`, the token classification of every grammar state, on `num_threads`
    threads), so a generation's first tokens do not pay for it. Implementations without per-grammar tables
    (the Python reference) have nothing to do."""
    prepare = getattr(implementation(MATCHER_OP, "cpu"), "prepare", None)
    if prepare is not None:
        prepare(grammar, vocabulary, num_threads, classify)


def fill_next_token_bitmasks(matchers: Sequence[Any], bitmask: torch.Tensor, rows: Sequence[int]) -> None:
    """Fill one bitmask row per matcher; implementations with a batched `fill_batch` do it in one call."""
    kinds = {type(m) for m in matchers}
    if len(kinds) == 1 and hasattr(next(iter(kinds)), "fill_batch"):
        next(iter(kinds)).fill_batch(list(matchers), bitmask, list(rows))
        return
    for matcher, row in zip(matchers, rows, strict=True):
        matcher.fill_next_token_bitmask(bitmask, row)


__all__ = [
    "MATCHER_OP",
    "CompiledGrammar",
    "Grammar",
    "GrammarCompiler",
    "GrammarError",
    "JsonOptions",
    "ReferenceMatcher",
    "StructuredOutput",
    "VocabularyIndex",
    "any_json_grammar",
    "compile_grammar_ir",
    "compile_json_schema",
    "compile_structured",
    "create_matcher",
    "fill_next_token_bitmasks",
    "pack_mask",
    "parse_gbnf",
    "prepare_matcher",
    "regex_to_ir",
    "vocabulary_index",
    "words_for",
]
