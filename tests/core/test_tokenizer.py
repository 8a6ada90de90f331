"""Tokenizers built from GGUF metadata and tokenizer.json; streaming detokenization."""

from __future__ import annotations

import pytest

TEXTS = [
    "Hello world",
    "  leading spaces and trailing  ",
    "digits 1234567890 and 3.14159, 1e-9",
    "def f(x):\n\treturn x ** 2  # comment\n",
    "Ünïcödé: naïve café, 日本語のテキスト, emoji 🙂🚀👩‍👩‍👧",
    "<|im_start|>user\nspecial tokens inline<|im_end|>\n",
    "Mixed CASE words, URLs https://example.com/a?b=c&d=e, and e-mail a.b@c.org",
    "\n\n\nnewlines\r\nand\ttabs",
]


def test_gguf_tokenizer_matches_transformers_conversion(smollm2_path, smollm2):
    """transformers converts the same GGUF metadata independently; both must give identical ids."""
    transformers = pytest.importorskip("transformers")
    reference = transformers.AutoTokenizer.from_pretrained(str(smollm2_path.parent), gguf_file=smollm2_path.name)
    for text in TEXTS:
        assert smollm2.tokenizer.encode(text) == reference.encode(text, add_special_tokens=False), text


def test_special_tokens_of_default_model(smollm2):
    tok = smollm2.tokenizer
    assert tok.bos_token_id == 1 and tok.eos_token_ids == (2,)
    assert tok.id_to_token(0) == "<|endoftext|>"
    assert tok.encode("<|im_start|>") == [1]
    assert tok.decode([1, 2], skip_special_tokens=True) == ""
    assert tok.decode([1, 2], skip_special_tokens=False) == "<|im_start|><|im_end|>"
    assert tok.encode("Hello", add_special_tokens=True) == tok.encode("Hello")  # add_bos_token is false


def test_roundtrip_decode(smollm2):
    for text in TEXTS:
        assert smollm2.tokenizer.decode(smollm2.tokenizer.encode(text), skip_special_tokens=False) == text


@pytest.mark.parametrize("text", TEXTS)
def test_incremental_detokenizer_never_splits_characters(smollm2, text):
    tok = smollm2.tokenizer
    ids = tok.encode(text)
    stream = tok.detokenizer(skip_special_tokens=False)
    deltas = [stream.push(i) for i in ids]
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)


def test_multibyte_character_waits_for_its_last_byte(smollm2):
    tok = smollm2.tokenizer
    ids = tok.encode("🚀")
    assert len(ids) > 1, "the emoji should span several byte-level tokens"
    stream = tok.detokenizer()
    deltas = [stream.push(i) for i in ids]
    assert deltas[:-1] == [""] * (len(ids) - 1) and deltas[-1] == "🚀"


def test_pieces_cover_the_text(smollm2):
    pieces = smollm2.tokenizer.pieces("Hello, 42 wörlds")
    assert "".join(text for _, _, text in pieces) == "Hello, 42 wörlds"
    assert [p[0] for p in pieces] == smollm2.tokenizer.encode("Hello, 42 wörlds")
    assert [p[2] for p in pieces if p[2].strip().isdigit()] == ["4", "2"]  # smollm splits digits


def test_unknown_token_id_is_a_clear_error(smollm2):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        smollm2.tokenizer.id_to_token(10**6)
