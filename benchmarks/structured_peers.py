"""Adapters that drive xgrammar, llguidance and outlines-core like llmkit's matcher (for
benchmarks/structured.py): compile a JSON schema cold and cached, fill a token bitmask, accept a token.

`matcher(compiled)` returns (fill, bitmask, accept): `fill(bitmask)` writes the next-token mask.
`first_mask(schema)` times what a request with a new schema waits for: compile, a matcher, its first mask.

Whitespace as llmkit's default allows it (`JsonOptions(whitespace="flexible")`: runs of spaces, tabs and
newlines between JSON tokens, at most 8 per run): each peer gets its flexible whitespace (xgrammar
`any_whitespace=True`, llguidance `whitespace_flexible`, outlines-core the pattern `[ \t\n]*`), which is
unbounded — smaller automata than llmkit's bounded runs — and accepts every sequence llmkit's grammar
does. (Compact peers against llmkit's flexible default compiled different languages and refused the
default model's outputs, which have newlines.)"""

from __future__ import annotations

import json
import time
from typing import Any

import torch


def timed(function, *args) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


class XGrammarPeer:
    name = "xgrammar"

    def __init__(self, hf_tokenizer, vocab_size: int, stop_ids: list[int]):
        import xgrammar as xgr

        self.xgr = xgr
        self.info = xgr.TokenizerInfo.from_huggingface(hf_tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids)
        self.cached = xgr.GrammarCompiler(self.info, cache_enabled=True)
        self.vocab_size = vocab_size

    def compile_cold(self, schema: dict):
        compiler = self.xgr.GrammarCompiler(self.info, cache_enabled=False)
        return compiler.compile_json_schema(json.dumps(schema), any_whitespace=True)

    compile_first = compile_cold

    def compile_cached(self, schema: dict):
        return self.cached.compile_json_schema(json.dumps(schema), any_whitespace=True)

    def matcher(self, compiled):
        matcher = self.xgr.GrammarMatcher(compiled)
        bitmask = self.xgr.allocate_token_bitmask(1, self.vocab_size)
        return (lambda b: matcher.fill_next_token_bitmask(b, 0)), bitmask, matcher.accept_token


class LLGuidancePeer:
    name = "llguidance"

    def __init__(self, hf_tokenizer, vocab_size: int, stop_ids: list[int]):
        import llguidance
        import llguidance.hf
        import llguidance.torch

        self.ll = llguidance
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size, eos_token=stop_ids[0])
        self.vocab_size = vocab_size

    def compile_cold(self, schema: dict):
        grammar = self.ll.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": True})
        matcher = self.ll.LLMatcher(self.tokenizer, grammar)
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        return grammar

    def compile_first(self, schema: dict):
        """The grammar only: llguidance compiles it when `matcher` makes the LLMatcher (counted there)."""
        return self.ll.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": True})

    compile_cached = None  # llguidance compiles when a matcher is made; it keeps no schema cache

    def matcher(self, grammar):
        matcher = self.ll.LLMatcher(self.tokenizer, grammar)
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        bitmask = self.ll.torch.allocate_token_bitmask(1, self.vocab_size)
        return (lambda b: self.ll.torch.fill_next_token_bitmask(matcher, b, 0)), bitmask, matcher.consume_token


class OutlinesPeer:
    name = "outlines-core"

    def __init__(self, token_bytes: list[bytes | None], vocab_size: int, stop_ids: list[int]):
        from outlines_core import Guide, Index, Vocabulary
        from outlines_core.json_schema import build_regex_from_schema

        self.Guide, self.Index, self.regex = Guide, Index, build_regex_from_schema
        mapping: dict[bytes, list[int]] = {}
        for token_id, data in enumerate(token_bytes):
            if data and token_id not in stop_ids:
                mapping.setdefault(data, []).append(token_id)
        self.vocabulary = Vocabulary(stop_ids[0], mapping)
        self.words = (vocab_size + 31) // 32

    def compile_cold(self, schema: dict):
        return self.Index(self.regex(json.dumps(schema), whitespace_pattern=r"[ \t\n]*"), self.vocabulary)

    compile_first = compile_cold
    compile_cached = None  # outlines-core has no compiled-grammar cache of its own

    def matcher(self, index):
        guide = self.Guide(index)
        bitmask = torch.zeros(self.words, dtype=torch.int32)

        def accept(token: int) -> bool:
            try:
                guide.advance(token)
            except ValueError:
                return False
            return True

        return (lambda b: guide.write_mask_into(b.data_ptr(), b.numel(), b.element_size())), bitmask, accept


def first_mask(peer, schema: dict) -> tuple[Any, float]:
    """(compiled, seconds): a cold compile, a fresh matcher and its first filled mask, timed together."""
    started = time.perf_counter()
    compiled = peer.compile_first(schema)
    fill, bitmask, _ = peer.matcher(compiled)
    fill(bitmask)
    return compiled, time.perf_counter() - started


def make_peers(hf_tokenizer, token_bytes, vocab_size: int, stop_ids: list[int]) -> tuple[list, dict[str, str]]:
    """The peers that import here, and why the others could not be made."""
    peers, missing = [], {}
    for make in (
        lambda: XGrammarPeer(hf_tokenizer, vocab_size, stop_ids),
        lambda: LLGuidancePeer(hf_tokenizer, vocab_size, stop_ids),
        lambda: OutlinesPeer(token_bytes, vocab_size, stop_ids),
    ):
        try:
            peers.append(make())
        except Exception as err:  # a peer that is not installed is reported, not fatal
            missing[repr(make)] = f"{type(err).__name__}: {err}"
    return peers, missing
