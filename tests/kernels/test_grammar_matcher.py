"""The native grammar matcher against the pure-Python reference (the specification): the same grammars
and token sequences, every step compared — masks, accepts, termination, forced bytes, rollback — on
guided instances and on random walks through the masks; plus every error path and the dispatch."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from llmkit.core.ops import dispatch
from llmkit.core.structured import (
    JsonOptions,
    ReferenceMatcher,
    StructuredOutput,
    automata,
    compile_structured,
    compiled,
    create_matcher,
    dfa,
    fill_next_token_bitmasks,
    vocabulary_index,
    words_for,
)
from llmkit.core.structured.compiler import to_grammar
from llmkit.kernels import _C
from llmkit.kernels.grammar_matcher import NativeGrammarMatcher, TokenBitmask, refine_dfa_rows

SPECS = {
    "object": StructuredOutput("json_schema", {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "n": {"type": "integer", "minimum": -20, "maximum": 300}, "tags": {"type": "array", "items": {"enum": ["a", "bc"]}, "maxItems": 3}}, "required": ["name", "n"], "additionalProperties": False}),
    "bounded": StructuredOutput("json_schema", {"type": "string", "minLength": 3, "maxLength": 120}),
    "any_json": StructuredOutput("json_object"),
    "recursive": StructuredOutput("json_schema", {"$defs": {"t": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/t"}}}, "required": ["v", "kids"], "additionalProperties": False}}, "$ref": "#/$defs/t"}),
    "flexible": StructuredOutput("json_schema", {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}}, JsonOptions(whitespace="flexible", max_whitespace=3)),
    "regex": StructuredOutput("regex", r"(\d{2,3}-)+[a-f]{1,4}"),
    "gbnf": StructuredOutput("grammar", 'root ::= list\nlist ::= "[" (item ("," item)*)? "]"\nitem ::= [a-z]+ | list'),
    "open_object": StructuredOutput("json_schema", {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
    "tools": StructuredOutput("tool_calls", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}], "tool_choice": "auto"}),
}  # fmt: skip
TEXTS = {
    "object": '{"name":"abc","n":-7,"tags":["bc","a"]}',
    "bounded": '"' + "lorem ipsum " * 8 + '"',
    "any_json": '{"a":[1,2.5,{"b":"x y \\n"}],"c":null,"d":true}',
    "recursive": '{"v":1,"kids":[{"v":2,"kids":[]},{"v":3,"kids":[{"v":4,"kids":[]}]}]}',
    "flexible": "[ 0.25, 1,\n0 ]",
    "regex": "12-345-abc",
    "gbnf": "[ab,[cd,[]],e]",
    "open_object": '{"name":"x","employee_id":12345,"ratio":-0.5e3,"tags":["a",{"k":[]}],"ok":false}',
    "tools": '<tool_call>\n{"name": "f", "arguments": {"x": 5}}\n</tool_call>',
}


@pytest.fixture(scope="module")
def vocab(tiny):
    return vocabulary_index(tiny.tokenizer)


@pytest.fixture(scope="module")
def grammars():
    return {name: compile_structured(spec) for name, spec in SPECS.items()}


def assert_same_state(native, reference) -> None:
    np.testing.assert_array_equal(native.allowed_tokens(), reference.allowed_tokens())
    assert native.can_terminate() == reference.can_terminate()
    assert native.is_terminated() == reference.is_terminated()
    assert native.num_accepted_tokens == reference.num_accepted_tokens
    assert native.find_forced_bytes() == reference.find_forced_bytes()


@pytest.mark.parametrize("name", list(SPECS))
def test_agree_along_an_instance_with_rollback(name, tiny, vocab, grammars):
    native, reference = NativeGrammarMatcher(grammars[name], vocab), ReferenceMatcher(grammars[name], vocab)
    tokens = tiny.tokenizer.encode(TEXTS[name])
    for token in tokens:
        assert_same_state(native, reference)
        assert native.accept_token(token) and reference.accept_token(token)
    assert_same_state(native, reference)
    assert native.can_terminate()
    stop = vocab.stop_token_ids[0]
    assert native.accept_token(stop) and reference.accept_token(stop)
    assert_same_state(native, reference)
    back = random.Random(len(tokens)).randint(1, len(tokens))
    native.rollback(back)
    reference.rollback(back)
    assert_same_state(native, reference)


@pytest.mark.parametrize("name", list(SPECS))
def test_agree_on_random_walks_through_the_masks(name, vocab, grammars):
    """Sample allowed tokens (and sometimes refused ones) for fresh random walks each run."""
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    for _ in range(3):
        native, reference = NativeGrammarMatcher(grammars[name], vocab), ReferenceMatcher(grammars[name], vocab)
        for _ in range(40):
            allowed = native.allowed_tokens()
            np.testing.assert_array_equal(allowed, reference.allowed_tokens(), err_msg=f"seed {seed}")
            choices = np.flatnonzero(allowed)
            if not len(choices):
                break
            if rng.random() < 0.2:
                token = rng.randrange(vocab.vocab_size)
            else:
                token = int(rng.choice(list(choices)))
            assert native.accept_token(token) == reference.accept_token(token) == bool(allowed[token]), f"seed {seed}"
            if rng.random() < 0.1 and native.num_accepted_tokens:
                k = rng.randint(1, native.num_accepted_tokens)
                native.rollback(k)
                reference.rollback(k)
            if native.is_terminated():
                break


def test_batched_fill_matches_single_rows(tiny, vocab, grammars):
    matchers = [NativeGrammarMatcher(grammars[n], vocab) for n in SPECS]
    for matcher, name in zip(matchers, SPECS, strict=True):
        for token in tiny.tokenizer.encode(TEXTS[name])[:3]:
            matcher.accept_token(token)
    words = words_for(vocab.vocab_size)
    batched = torch.zeros(len(matchers) + 1, words, dtype=torch.int32)
    fill_next_token_bitmasks(matchers, batched, list(range(1, len(matchers) + 1)))
    for row, matcher in enumerate(matchers, start=1):
        single = torch.zeros(1, words, dtype=torch.int32)
        matcher.fill_next_token_bitmask(single)
        assert torch.equal(batched[row], single[0])
    assert not batched[0].any()


def test_dispatch_prefers_native_unless_reference_is_forced(monkeypatch, vocab, grammars):
    assert isinstance(create_matcher(grammars["regex"], vocab), NativeGrammarMatcher)
    monkeypatch.setenv("LLMKIT_KERNELS", "reference")
    assert dispatch.forced_reference()
    assert isinstance(create_matcher(grammars["regex"], vocab), ReferenceMatcher)


def test_bitmask_and_rollback_errors(vocab, grammars):
    matcher = NativeGrammarMatcher(grammars["object"], vocab)
    words = words_for(vocab.vocab_size)
    with pytest.raises(TypeError, match="bitmask must have dtype"):
        matcher.fill_next_token_bitmask(torch.zeros(1, words, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least"):
        matcher.fill_next_token_bitmask(torch.zeros(1, words - 1, dtype=torch.int32))
    with pytest.raises(ValueError, match="row 2"):
        matcher.fill_next_token_bitmask(torch.zeros(2, words, dtype=torch.int32), 2)
    with pytest.raises(ValueError, match="roll back"):
        matcher.rollback(1)
    assert not matcher.accept_token(-1) and not matcher.accept_token(vocab.vocab_size + 5)
    with pytest.raises(ValueError, match="stop token"):
        NativeGrammarMatcher(grammars["object"], vocab, stop_token_ids=[vocab.vocab_size])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.__setitem__("transitions", [5000, *t["transitions"][1:]]), "transitions"),
        (lambda t: t.__setitem__("byte_class", t["byte_class"][:100]), "byte_class"),
        (lambda t: t.__setitem__("rule_start", [-1]), "rule_start"),
        (lambda t: t.__setitem__("num_classes", 0), "num_classes"),
        (lambda t: t.__setitem__("call_offsets", t["call_offsets"][:-1]), "call_offsets"),
    ],
)
def test_inconsistent_tables_are_value_errors(change, message, grammars):
    g = grammars["recursive"]
    tables = {
        "rule_start": g.rule_start.tolist(),
        "state_rule": g.state_rule.tolist(),
        "accepting": g.accepting.tolist(),
        "byte_class": g.byte_class.tolist(),
        "transitions": g.transitions.reshape(-1).tolist(),
        "num_classes": g.num_classes,
        "call_offsets": g.call_offsets.tolist(),
        "call_rules": g.call_rules.tolist(),
        "call_targets": g.call_targets.tolist(),
    }
    change(tables)
    with pytest.raises(ValueError, match=message):
        _C.GrammarTables(**tables)


def test_bounded_strings_share_mask_cache_entries(vocab, grammars):
    """Depth-L classes: the 120 count states of maxLength collapse to far fewer cache entries."""
    matcher = NativeGrammarMatcher(grammars["bounded"], vocab)
    index = matcher.index
    assert index.num_state_classes < grammars["bounded"].num_states / 2
    assert matcher.accept_token(vocab.token_bytes.index(b'"'))
    token = next(i for i, data in enumerate(vocab.token_bytes) if data == b"a")
    for _ in range(100):
        matcher.allowed_tokens()
        assert matcher.accept_token(token)
    assert index.cache_size < 40


@pytest.mark.parametrize("name", ["recursive", "open_object", "bounded", "tools"])
def test_a_prepared_index_holds_every_state_class_and_gives_the_same_masks(name, tiny, vocab):
    """`prepare` classifies every state class up front (what the engine does on the compiler thread);
    the classes with equal accepted sets share one bitmask."""
    grammar = compile_structured(SPECS[name])  # its own index, not the one the other tests warmed
    NativeGrammarMatcher.prepare(grammar, vocab, num_threads=2)
    native, reference = NativeGrammarMatcher(grammar, vocab), ReferenceMatcher(grammar, vocab)
    index = native.index
    assert index.cache_size == index.num_state_classes
    assert 0 < index.num_masks <= index.num_state_classes and index.cache_bytes > 0
    if name == "bounded":  # the count states of maxLength accept the same tokens: one bitmask for most
        assert index.num_masks < index.num_state_classes / 2
    for token in tiny.tokenizer.encode(TEXTS[name]):
        assert_same_state(native, reference)
        assert native.accept_token(token) and reference.accept_token(token)
    assert index.cache_size == index.num_state_classes  # nothing new to classify


def test_fill_takes_a_torch_tensor_or_a_dlpack_capsule(vocab, grammars):
    native = NativeGrammarMatcher(grammars["object"], vocab)
    rows = torch.zeros(2, words_for(vocab.vocab_size), dtype=torch.int32)
    native.fill_next_token_bitmask(rows, 0)
    capsule = torch.utils.dlpack.to_dlpack(rows)  # borrowed, never consumed: one capsule serves every step
    native.fill_next_token_bitmask(capsule, 1)
    assert rows[0].any() and torch.equal(rows[0], rows[1])
    assert native.accept_token(int(np.flatnonzero(native.allowed_tokens())[0]))
    native.fill_next_token_bitmask(capsule, 1)
    native.fill_next_token_bitmask(rows, 0)
    assert torch.equal(rows[0], rows[1])
    with pytest.raises(TypeError, match="bitmask"):
        native.fill_next_token_bitmask(rows.to(torch.int64), 0)
    with pytest.raises(TypeError, match="bitmask must be a tensor"):
        native.fill_next_token_bitmask([[0] * rows.shape[1]], 0)


def test_a_token_bitmask_is_filled_like_a_tensor_and_torch_views_its_memory(tiny, vocab, grammars):
    native = NativeGrammarMatcher(grammars["recursive"], vocab)
    owned = TokenBitmask(2, vocab.vocab_size)
    assert owned.shape == (2, words_for(vocab.vocab_size)) and owned.tensor.dtype == torch.int32
    assert not owned.tensor.any()
    rows = torch.zeros(1, owned.shape[1], dtype=torch.int32)
    tokens = tiny.tokenizer.encode(TEXTS["recursive"])
    for step, token in enumerate(tokens):
        native.fill_next_token_bitmask(owned, step % 2)
        native.fill_next_token_bitmask(rows, 0)
        assert torch.equal(owned.tensor[step % 2], rows[0]), f"step {step}"
        assert native.accept_token(token)
        if step == len(tokens) // 2:
            native.rollback(3)
            for again in tokens[step - 2 : step + 1]:
                assert native.accept_token(again)
    fresh = NativeGrammarMatcher(grammars["recursive"], vocab)
    NativeGrammarMatcher.fill_batch([native, fresh], owned, [0, 1])
    for row, matcher in enumerate((native, fresh)):
        matcher.fill_next_token_bitmask(rows, 0)
        assert torch.equal(owned.tensor[row], rows[0])
    with pytest.raises(ValueError, match="same matcher twice"):
        NativeGrammarMatcher.fill_batch([native, native], owned, [0, 1])

    view, shared = owned.tensor, np.from_dlpack(owned)
    del owned  # the views keep the memory alive (an AddressSanitizer build checks it)
    view[1, 5] = 123
    assert shared[1, 5] == 123
    with pytest.raises(RuntimeError, match="not resizable"):
        view.resize_(4, 100_000)  # the memory never moves under the matcher


def test_token_bitmask_errors(vocab, grammars):
    native = NativeGrammarMatcher(grammars["object"], vocab)
    with pytest.raises(ValueError, match="rows >= 1"):
        TokenBitmask(0, vocab.vocab_size)
    with pytest.raises(ValueError, match=r"rows \* words <= 2\*\*40"):
        TokenBitmask(1 << 40, vocab.vocab_size)
    with pytest.raises(ValueError, match="row 2 is outside the bitmask's 2 rows"):
        native.fill_next_token_bitmask(TokenBitmask(2, vocab.vocab_size), 2)
    with pytest.raises(ValueError, match="at least"):
        native.fill_next_token_bitmask(TokenBitmask(1, vocab.vocab_size - 64), 0)
    owned = TokenBitmask(1, vocab.vocab_size)
    with pytest.raises(BufferError, match="no stream"):
        owned.__dlpack__(stream=1)
    with pytest.raises(BufferError, match="never copied"):
        owned.__dlpack__(copy=True)
    for device in ((2, 0), (1, 1), [2, 0]):
        with pytest.raises(BufferError, match="DLPack device"):
            owned.__dlpack__(dl_device=device)
    with pytest.raises(TypeError, match="max_version"):
        owned.__dlpack__(max_version=1)
    assert torch.equal(torch.from_dlpack(owned.__dlpack__(max_version=[1, 0], dl_device=[1, 0])), owned.tensor)
    with pytest.raises(TypeError, match="never initialized"):
        native.fill_next_token_bitmask(TokenBitmask.__new__(TokenBitmask), 0)

    class TwoNativeBases(_C.Vocabulary, _C.TokenBitmask):  # read through its TokenBitmask part
        def __init__(self):
            _C.Vocabulary.__init__(self, [b"a", b"b"], [1])
            _C.TokenBitmask.__init__(self, 1, 2)

    logits = torch.zeros(1, 64)
    _C.apply_token_bitmask(logits, TwoNativeBases())
    assert torch.isinf(logits).all()


@pytest.fixture(scope="module")
def real_vocab(smollm2_path):
    from gguf import GGUFReader

    from llmkit.core.models.gguf_loader import read_fields
    from llmkit.core.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_gguf_fields(read_fields(GGUFReader(str(smollm2_path))))
    return tokenizer, vocabulary_index(tokenizer)


@pytest.mark.parametrize("name", ["object", "any_json", "open_object", "bounded", "tools"])
def test_agree_at_every_step_with_the_real_tokenizer(name, real_vocab, grammars):
    """The default model's 49,152-token vocabulary: special tokens, 81-byte tokens, partial UTF-8 tokens."""
    tokenizer, vocab = real_vocab
    native, reference = NativeGrammarMatcher(grammars[name], vocab), ReferenceMatcher(grammars[name], vocab)
    for token in tokenizer.encode(TEXTS[name]):
        np.testing.assert_array_equal(native.allowed_tokens(), reference.allowed_tokens())
        assert native.accept_token(token) and reference.accept_token(token)
    assert native.can_terminate() and reference.can_terminate()


def test_string_bodies_that_close_differently_share_one_base_bitmask(real_vocab):
    """The three string bodies below accept different sets (a body closes with `",`, `"]` or `"}` tokens),
    yet the large sets are stored as one shared bitmask and the few tokens where each differs."""
    tokenizer, vocab = real_vocab
    properties = {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "string"}}, "c": {"type": "string"}}
    schema = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
    grammar = compile_structured(StructuredOutput("json_schema", schema))
    native, reference = NativeGrammarMatcher(grammar, vocab), ReferenceMatcher(grammar, vocab)
    dense = set()
    for token in tokenizer.encode('{"a":"one two","b":["three four"],"c":"five six"}'):
        allowed = native.allowed_tokens()
        np.testing.assert_array_equal(allowed, reference.allowed_tokens())
        if allowed.sum() > vocab.vocab_size // 2:
            dense.add(allowed.tobytes())
        assert native.accept_token(token) and reference.accept_token(token)
    assert len(dense) == 3
    assert native.index.num_masks == 1


@pytest.mark.parametrize("name", ["recursive", "any_json", "object", "gbnf"])
def test_budget_restriction_agrees_and_always_leaves_a_way_to_finish(name, tiny, vocab, grammars):
    native, reference = NativeGrammarMatcher(grammars[name], vocab), ReferenceMatcher(grammars[name], vocab)
    words = words_for(vocab.vocab_size)
    rng = random.Random()
    for tokens_left in range(40, 0, -1):
        assert native.finish_cost() == reference.finish_cost()
        rows = torch.zeros(2, words, dtype=torch.int32)
        native.fill_next_token_bitmask(rows, 0)
        reference.fill_next_token_bitmask(rows, 1)
        native.restrict_to_budget(rows, 0, tokens_left)
        reference.restrict_to_budget(rows, 1, tokens_left)
        assert torch.equal(rows[0], rows[1])
        allowed = np.flatnonzero(np.unpackbits(rows[0].numpy().view(np.uint8), bitorder="little"))
        assert len(allowed), f"no way to finish with {tokens_left} tokens left"
        token = int(rng.choice(list(allowed)))
        assert native.accept_token(token) and reference.accept_token(token)
        if native.is_terminated():
            return
    raise AssertionError("the budget did not force the grammar to finish")


@pytest.mark.parametrize("name", ["object", "recursive"])
def test_budget_below_the_shortest_completion_leaves_the_mask_as_filled(name, tiny, vocab, grammars):
    native, reference = NativeGrammarMatcher(grammars[name], vocab), ReferenceMatcher(grammars[name], vocab)
    assert native.finish_cost() == reference.finish_cost() > 2
    rows = torch.zeros(3, words_for(vocab.vocab_size), dtype=torch.int32)
    native.fill_next_token_bitmask(rows, 0)
    reference.fill_next_token_bitmask(rows, 1)
    native.fill_next_token_bitmask(rows, 2)
    native.restrict_to_budget(rows, 0, 1)
    reference.restrict_to_budget(rows, 1, 1)
    assert torch.equal(rows[0], rows[2]) and torch.equal(rows[1], rows[2]) and rows[2].any()


def random_schema(rng: random.Random, depth: int = 0) -> dict:
    """A random JSON Schema of the kinds the benchmark serves (objects, arrays, strings, numbers, enums)."""
    kinds = ["string", "integer", "number", "boolean", "enum"] + (["object", "array"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "object":
        names = rng.sample(["id", "name", "tags", "score", "when", "kind", "items"], rng.randint(1, 4))
        properties = {name: random_schema(rng, depth + 1) for name in names}
        required = [name for name in names if rng.random() < 0.7]
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": rng.random() < 0.3,
        }
    if kind == "array":
        return {"type": "array", "items": random_schema(rng, depth + 1), "maxItems": rng.randint(1, 5)}
    if kind == "string":
        return rng.choice(
            [
                {"type": "string"},
                {"type": "string", "maxLength": rng.randint(1, 40)},
                {"type": "string", "format": rng.choice(["date", "uuid", "email"])},
            ]
        )
    if kind == "integer":
        return {"type": "integer", "minimum": rng.randint(-50, 0), "maximum": rng.randint(1, 5000)}
    if kind == "enum":
        return {"enum": rng.sample(["red", "green", "blue", 7, None, True], rng.randint(1, 4))}
    return {"type": kind}


def test_an_unclassified_index_classifies_each_state_on_its_first_visit(real_vocab):
    """`prepare(classify=False)` (what a request waits for in the engine) builds the index only; the first
    mask classifies the states it starts from, no others."""
    _, vocab = real_vocab
    grammar = compile_structured(SPECS["object"])
    NativeGrammarMatcher.prepare(grammar, vocab, classify=False)
    matcher = NativeGrammarMatcher(grammar, vocab)
    assert matcher.index.cache_size == 0 and matcher.index.num_state_classes > 10
    matcher.allowed_tokens()
    assert matcher.index.cache_size == 1


def test_lazily_classified_masks_equal_precomputed_ones_on_random_schemas(real_vocab):
    """Fresh random schemas each run, the default model's vocabulary: a matcher whose index classifies
    states on first visit and one whose index classified every state up front give the same masks along a
    random walk through them (the order states are classified in changes which base bitmasks exist)."""
    _, vocab = real_vocab
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for _ in range(4):
        spec = StructuredOutput("json_schema", random_schema(rng))
        lazy_grammar, eager_grammar = compile_structured(spec), compile_structured(spec)  # separate indexes
        NativeGrammarMatcher.prepare(eager_grammar, vocab, num_threads=2)
        lazy, eager = NativeGrammarMatcher(lazy_grammar, vocab), NativeGrammarMatcher(eager_grammar, vocab)
        for _ in range(60):
            allowed = lazy.allowed_tokens()
            np.testing.assert_array_equal(allowed, eager.allowed_tokens(), err_msg=f"seed {seed}, {spec.source}")
            choices = np.flatnonzero(allowed)
            if len(choices) == 0 or lazy.is_terminated():
                break
            token = int(rng.choice(choices.tolist()))
            assert lazy.accept_token(token) and eager.accept_token(token)
        assert lazy.index.cache_size <= eager.index.cache_size == eager.index.num_state_classes


def test_tables_take_numpy_arrays_of_their_dtype_and_refuse_other_dtypes(grammars):
    g = grammars["recursive"]
    arrays = [g.rule_start, g.state_rule, g.accepting, g.byte_class, g.transitions.reshape(-1), g.num_classes,
              g.call_offsets, g.call_rules, g.call_targets]  # fmt: skip
    assert _C.GrammarTables(*arrays).num_states == g.num_states
    arrays[4] = g.transitions.reshape(-1).astype(np.int64)  # never narrowed silently
    with pytest.raises(TypeError):
        _C.GrammarTables(*arrays)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("max_rounds", [None, 0, 1, 3])
def test_native_dfa_refinement_gives_the_reference_partition(max_rounds):
    """`dfa_refine` (the compiler's DFA minimization) against its reference on fresh random tables, with a
    dead sink most entries lead to, as the compiler's tables have."""
    rng = np.random.default_rng()
    for _ in range(20):
        rows, symbols = int(rng.integers(2, 300)), int(rng.integers(1, 12))
        table = np.where(rng.random((rows, symbols)) < 0.7, rows - 1, rng.integers(0, rows, (rows, symbols)))
        initial = rng.integers(0, 3, rows)
        native = refine_dfa_rows(table, initial, max_rounds)
        assert same_partition(native, dfa.refine(table, initial, max_rounds)), (table.tolist(), initial.tolist())
    with pytest.raises(ValueError, match="not a row"):
        refine_dfa_rows(np.array([[0, 5]]), np.array([0]))
    with pytest.raises(ValueError, match="one block per table row"):
        refine_dfa_rows(np.array([[0]]), np.array([0, 1]))


def test_grammars_compiled_with_native_refinement_equal_the_reference_ones(monkeypatch):
    assert dispatch.implementation(dfa.REFINE_OP, "cpu") is refine_dfa_rows
    # The Python compiler (tables_from_nfas, not the native compiler of op grammar_tables) with each refinement.
    python_tables = lambda spec: compiled.tables_from_nfas(automata.rule_nfas(to_grammar(spec)))  # noqa: E731
    native = {name: python_tables(spec).fingerprint for name, spec in SPECS.items()}
    monkeypatch.setenv("LLMKIT_KERNELS", "reference")
    assert native == {name: python_tables(spec).fingerprint for name, spec in SPECS.items()}
    assert native == {name: compile_structured(spec).fingerprint for name, spec in SPECS.items()}


@pytest.mark.parametrize("name", ["object", "bounded", "recursive"])
def test_a_new_index_classifies_its_first_states_alone_and_adopts_them_into_the_state_classes(name, tiny, vocab):
    """A new grammar's first mask waits for no state classes and no finish costs: the first visited states
    are classified on their own, then the classes are computed and take those entries over; the masks and
    finish costs equal the reference's all along."""
    grammar = compile_structured(SPECS[name])  # its own index
    native, reference = NativeGrammarMatcher(grammar, vocab), ReferenceMatcher(grammar, vocab)
    index = native.index
    assert not index.has_state_classes and index.cache_size == 0
    assert_same_state(native, reference)
    assert not index.has_state_classes and index.cache_size == 1
    assert native.finish_cost() == reference.finish_cost() and not index.has_state_classes
    for token in tiny.tokenizer.encode(TEXTS[name]):
        assert native.accept_token(token) and reference.accept_token(token)
        assert_same_state(native, reference)
        assert native.finish_cost() == reference.finish_cost()
    assert index.has_state_classes  # more first visits than kFirstVisitsBeforeClasses
    assert 0 < index.cache_size <= index.num_state_classes
    NativeGrammarMatcher.prepare(grammar, vocab, num_threads=2)
    assert index.cache_size == index.num_state_classes
    native.reset(), reference.reset()
    assert_same_state(native, reference)
