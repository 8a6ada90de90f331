"""The native grammar matcher behind the interface of llmkit.core.structured's `ReferenceMatcher`.

The C++ tables, the vocabulary trie and the per-grammar index (with its token-mask cache) are built
once and kept in the `backend_state` of the compiled grammar and of the vocabulary index.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from llmkit.core.structured import CompiledGrammar, GrammarError, VocabularyIndex, automata, ir, nfa, subsets, words_for
from llmkit.core.structured.nfa import START_RULE, RuleNFAs

from . import _C

_lock = threading.Lock()


def native_vocabulary(vocabulary: VocabularyIndex):
    with _lock:
        native = vocabulary.backend_state.get("native")
        if native is None:
            native = _C.Vocabulary(vocabulary.token_bytes, list(vocabulary.stop_token_ids))
            vocabulary.backend_state["native"] = native
        return native


def native_index(grammar: CompiledGrammar, vocabulary: VocabularyIndex):
    """The `_C.GrammarIndex` of this grammar over this vocabulary, built on first use."""
    key = ("native", id(vocabulary))
    hit = grammar.backend_state.get(key)
    if hit is not None and hit[0] is vocabulary:
        return hit[1]
    tables = grammar.backend_state.get("native_tables")
    if tables is None:
        tables = _C.GrammarTables(
            grammar.rule_start,
            grammar.state_rule,
            grammar.accepting,
            grammar.byte_class,
            grammar.transitions.reshape(-1),
            grammar.num_classes,
            grammar.call_offsets,
            grammar.call_rules,
            grammar.call_targets,
        )
        grammar.backend_state["native_tables"] = tables
    index = _C.GrammarIndex(tables, native_vocabulary(vocabulary))
    with _lock:
        grammar.backend_state[key] = (vocabulary, index)
    return index


def refine_dfa_rows(table: np.ndarray, initial: np.ndarray, max_rounds: int | None = None) -> np.ndarray:
    """Native `llmkit.core.structured.dfa.refine` (the compiler's DFA minimization): the same partition of
    the rows, blocks numbered by first appearance instead of in sorted order."""
    table = np.ascontiguousarray(table, dtype=np.int64)
    initial = np.ascontiguousarray(initial, dtype=np.int64)
    return _C.refine_dfa_rows(table, initial, max_rounds)


def compile_rule_nfas(nfas: RuleNFAs, description: str = "") -> CompiledGrammar:
    """Native op `grammar_tables` (llmkit.core.structured.compiled.tables_from_nfas is the reference):
    subset construction, trimming, empty-rule pruning and flattening in C++. The same language for every
    rule as the reference's minimal DFA, not minimized (within a few percent of minimal on the benchmark
    schemas; minimizing cost 40% of the native compile); byte classes merged where the tables agree."""
    thompson = nfas.nfa
    masks = np.frombuffer(b"".join(mask.to_bytes(32, "little") for mask in thompson.masks), dtype="<u8")
    rule_index = {name: k for k, name in enumerate(nfas.names)}
    result = _C.compile_rule_nfas(  # the edge lists go as they are: the binding reads lists of ints fastest
        thompson.size,
        thompson.eps_src,
        thompson.eps_dst,
        thompson.byte_src,
        thompson.byte_mask,
        thompson.byte_dst,
        masks,
        thompson.call_src,
        [rule_index[rule] for rule in thompson.call_rule],
        thompson.call_dst,
        nfas.entries,
        nfas.finals,
        subsets.MAX_DFA_STATES,
    )
    if isinstance(result, str):
        raise GrammarError(result)
    return _compiled_grammar(nfas.names, *result, description)


IR_TYPES = (ir.Bytes, ir.Seq, ir.Alt, ir.Repeat, ir.Ref, ir.Exclude, ir.Avoid)  # in the order the binding reads


def compile_grammar_ir(grammar: ir.Grammar, description: str = "") -> CompiledGrammar:
    """Native op `grammar_ir_tables` (llmkit.core.structured.compiled.tables_from_ir is the reference): the
    plan (`automata.nfa_plan`: undefined rules refused, reachable, recursive and nullable rules) and the rule
    NFAs (`automata.rule_nfas`' construction) built in C++ from the IR's objects, then `compile_rule_nfas`'
    compiler with no hand-over through Python lists. Exclusion and avoidance products and the minimal DFAs
    of shared pieces come from Python through two hooks. It keeps its own process-wide record of pieces."""
    plan = None

    def product_fragment(expr: ir.Exclude | ir.Avoid):  # rare: Python's plan only when a product is met
        nonlocal plan
        plan = plan or automata.nfa_plan(grammar)
        return plan.product_fragment(expr)

    result = _C.compile_grammar_ir(
        grammar.rules,
        grammar.root,
        grammar.called,
        START_RULE,
        ir.Ref(grammar.root),
        product_fragment,
        automata.minimal_fragment,
        IR_TYPES,
        nfa.MAX_NFA_STATES,
        subsets.MAX_DFA_STATES,
    )
    if isinstance(result, str):
        raise GrammarError(result)
    names, arrays, tables = result
    return _compiled_grammar(names, arrays, tables, description)


def _compiled_grammar(names: list[str], arrays: tuple, tables, description: str) -> CompiledGrammar:
    kept, rule_start, state_rule, accepting, byte_class, classes, transitions, offsets, rules, targets = arrays
    grammar = CompiledGrammar(
        [names[k] for k in kept.tolist()],
        rule_start,
        state_rule,
        accepting,
        byte_class,
        transitions.reshape(-1, classes),
        offsets,
        rules,
        targets,
        description,
    )
    grammar.backend_state["native_tables"] = tables  # built by the compiler: native_index need not check them
    return grammar


class TokenBitmask(_C.TokenBitmask):
    """An int32 `[rows, ceil(vocab_size / 32)]` CPU bitmask in memory the native module owns, zeroed.

    `fill_next_token_bitmask` (and `apply_token_bitmask_`) read it directly, which saves the DLPack
    export a torch tensor costs on every call (about 0.3 µs, the larger part of a cached fill);
    `tensor` is a torch view of the same memory (no copy) for masking logits. Allocate one per
    generation loop and reuse it.
    """

    def __init__(self, rows: int, vocab_size: int):
        super().__init__(rows, words_for(vocab_size))
        self.tensor = torch.from_dlpack(self)


class NativeGrammarMatcher(_C.GrammarMatcher):
    """Byte-level Earley matching in C++; masks come from the shared cache plus run-time checks.

    A subclass of the native class, so the per-token methods (`accept_token`, `fill_next_token_bitmask`
    taking a torch tensor, `rollback`, ...) are C++ calls with no Python frame in between.
    """

    def __init__(self, grammar: CompiledGrammar, vocabulary: VocabularyIndex, stop_token_ids=None):
        self.grammar, self.vocabulary = grammar, vocabulary
        self.stop_token_ids = tuple(vocabulary.stop_token_ids if stop_token_ids is None else stop_token_ids)
        self.index = native_index(grammar, vocabulary)
        super().__init__(self.index, list(self.stop_token_ids))

    @staticmethod
    def prepare(
        grammar: CompiledGrammar, vocabulary: VocabularyIndex, num_threads: int | None = None, classify: bool = True
    ) -> None:
        """Build the grammar's index over the vocabulary now (its state classes and finish costs) and, with
        `classify`, classify the tokens of every state too, on `num_threads` threads (default: torch's),
        without the GIL; otherwise each state's tokens are classified on its first visit."""
        index = native_index(grammar, vocabulary)
        if classify:
            index.precompute(torch.get_num_threads() if num_threads is None else num_threads)

    def accept_bytes(self, data: bytes) -> bool:
        return super().accept_bytes(bytes(data))

    def allowed_tokens(self) -> np.ndarray:
        bitmask = torch.zeros(1, words_for(self.vocabulary.vocab_size), dtype=torch.int32)
        self.fill_next_token_bitmask(bitmask)
        bits = np.unpackbits(bitmask.numpy().view(np.uint8), bitorder="little").astype(bool)
        return bits[: self.vocabulary.vocab_size]

    @staticmethod
    def fill_batch(matchers: list[NativeGrammarMatcher], bitmask: torch.Tensor | TokenBitmask, rows: list[int]) -> None:
        """All rows in one call: the GIL is released and the rows are filled by torch's thread count."""
        _C.fill_grammar_bitmasks(list(matchers), bitmask, [int(r) for r in rows], torch.get_num_threads())
