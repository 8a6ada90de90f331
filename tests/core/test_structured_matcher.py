"""The reference matcher on a byte-level BPE tokenizer: masks equal a brute-force check of every token,
rollback, termination, forced bytes, and special tokens never inside grammar text."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmkit.core.structured import (
    JsonOptions,
    ReferenceMatcher,
    StructuredOutput,
    compile_structured,
    create_matcher,
    fill_next_token_bitmasks,
    vocabulary_index,
    words_for,
)
from llmkit.core.structured.earley import EarleyChart
from llmkit.core.structured.vocabulary import VocabularyIndex, gpt2_byte_decoder


@pytest.fixture(scope="module")
def vocab(tiny):
    return vocabulary_index(tiny.tokenizer)


def brute_force(grammar, vocabulary, history: list[int]) -> np.ndarray:
    """The specification of a mask: token t is allowed iff history + t's bytes is a prefix of the grammar."""
    chart = EarleyChart(grammar)
    for token in history:
        assert chart.accepts_bytes(vocabulary.token_bytes[token])
    allowed = np.zeros(vocabulary.vocab_size, dtype=bool)
    for token, data in enumerate(vocabulary.token_bytes):
        if data and chart.accepts_bytes(data):
            chart.pop(len(data))
            allowed[token] = True
    if chart.can_finish():
        allowed[list(vocabulary.stop_token_ids)] = True
    return allowed


SPECS = [
    StructuredOutput("json_schema", {"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}, "b": {"type": "integer", "minimum": 3, "maximum": 70}}, "required": ["a", "b"], "additionalProperties": False}, JsonOptions(whitespace="compact")),
    StructuredOutput("json_object", options=JsonOptions(whitespace="compact")),
    StructuredOutput("regex", r"(ab|cd)+x?"),
    StructuredOutput("grammar", 'root ::= "(" inner ")"\ninner ::= ([a-z] | "(" inner ")")*'),
    StructuredOutput("json_schema", {"type": "array", "items": {"type": "string"}}, JsonOptions(whitespace="flexible", max_whitespace=2)),
]  # fmt: skip
TEXTS = ['{"a":"hey","b":42}', '{"k":[1,{"z":"the cat"}],"m":null}', "abcdabx", "(ab(cd)e)", '[ "one",\n"two" ]']


@pytest.mark.parametrize(("spec", "text"), list(zip(SPECS, TEXTS, strict=True)), ids=[s.kind for s in SPECS])
def test_masks_equal_brute_force_along_an_instance(spec, text, tiny, vocab):
    grammar = compile_structured(spec)
    matcher = ReferenceMatcher(grammar, vocab)
    history: list[int] = []
    for token in tiny.tokenizer.encode(text):
        allowed = matcher.allowed_tokens()
        np.testing.assert_array_equal(allowed, brute_force(grammar, vocab, history))
        assert allowed[token]
        assert matcher.accept_token(token)
        history.append(token)
    assert matcher.can_terminate()
    assert matcher.accept_token(vocab.stop_token_ids[0]) and matcher.is_terminated()
    assert not matcher.allowed_tokens().any()


def test_rollback_restores_every_earlier_state(tiny, vocab):
    grammar = compile_structured(SPECS[1])
    matcher = ReferenceMatcher(grammar, vocab)
    masks = []
    tokens = tiny.tokenizer.encode(TEXTS[1])
    for token in tokens:
        masks.append(matcher.allowed_tokens())
        assert matcher.accept_token(token)
    assert matcher.accept_token(vocab.stop_token_ids[0])
    matcher.rollback(1)
    assert not matcher.is_terminated() and matcher.can_terminate()
    for k in range(len(tokens) - 1, -1, -1):
        matcher.rollback(1)
        np.testing.assert_array_equal(matcher.allowed_tokens(), masks[k])
    with pytest.raises(ValueError, match="roll back"):
        matcher.rollback(1)


def test_rejected_token_leaves_the_matcher_unchanged(tiny, vocab):
    matcher = ReferenceMatcher(compile_structured(SPECS[0]), vocab)
    before = matcher.allowed_tokens()
    bad = int(np.flatnonzero(~before)[5])
    assert not matcher.accept_token(bad) and matcher.num_accepted_tokens == 0
    np.testing.assert_array_equal(matcher.allowed_tokens(), before)
    assert not matcher.accept_token(vocab.stop_token_ids[0])  # cannot end before the object is complete


def test_special_tokens_are_never_grammar_text(tiny, vocab):
    specials = [i for i, data in enumerate(vocab.token_bytes) if data is None]
    assert specials, "the tiny tokenizer has special tokens"
    matcher = ReferenceMatcher(compile_structured(StructuredOutput("json_schema", {"type": "string"})), vocab)
    assert matcher.accept_token(tiny.tokenizer.encode('"')[0])
    allowed = matcher.allowed_tokens()
    assert not allowed[specials].any()


def test_forced_bytes_and_bitmask_rows(tiny, vocab):
    grammar = compile_structured(SPECS[0])
    matcher = ReferenceMatcher(grammar, vocab)
    assert matcher.find_forced_bytes() == b'{"a":"'
    bitmask = torch.zeros(3, words_for(vocab.vocab_size) + 2, dtype=torch.int32)
    matcher.fill_next_token_bitmask(bitmask, 1)
    bits = np.unpackbits(bitmask[1].numpy().view(np.uint8), bitorder="little").astype(bool)[: vocab.vocab_size]
    np.testing.assert_array_equal(bits, matcher.allowed_tokens())
    assert not bitmask[0].any() and not bitmask[2].any()
    other = create_matcher(grammar, vocab)
    many = torch.zeros(2, words_for(vocab.vocab_size), dtype=torch.int32)
    fill_next_token_bitmasks([matcher, other], many, [0, 1])
    assert torch.equal(many[0], many[1])


def test_vocabulary_maps_byte_level_tokens_back_to_bytes():
    decoder = gpt2_byte_decoder()
    assert len(decoder) == 256 and decoder["Ġ"] == 0x20 and decoder["Ċ"] == 0x0A
    index = VocabularyIndex.from_token_bytes([b"ab", b"a", None, b"abc", b"b", b""], (2,))
    assert index.token_node[2] == -1 and index.token_node[5] == -1
    assert index.max_token_length == 3 and len(index.node_depth) == 5  # root, a, ab, abc, b
    assert list(index.subtree_end) == [5, 4, 4, 4, 5]
