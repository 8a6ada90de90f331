"""Property tests with the default model's real tokenizer: instances drawn independently from a schema
(hypothesis strategies built from the schema here, checked with `jsonschema`) are accepted token by token
through several tokenizations, and corruptions are rejected no earlier than the corrupted byte and never
accepted as complete. (hypothesis-jsonschema does not run on this hypothesis release, hence `instances`.)"""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
from gguf import GGUFReader
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from llmkit.core.models.gguf_loader import read_fields
from llmkit.core.structured import ReferenceMatcher, StructuredOutput, compile_structured, vocabulary_index
from llmkit.core.tokenizer import Tokenizer

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "pattern": "^[a-z]{1,8}@[a-z]{1,8}\\.com$"},
        "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
SCHEMAS = {
    "person": PERSON,
    "scores": {
        "type": "array",
        "items": {"type": "number", "minimum": -10, "maximum": 10},
        "minItems": 1,
        "maxItems": 4,
    },
    "any_of": {"anyOf": [{"type": "integer", "minimum": 100}, {"type": "string", "maxLength": 6}, {"type": "null"}]},
    "nested": {
        "type": "object",
        "properties": {"items": {"type": "array", "items": PERSON, "maxItems": 2}, "total": {"type": "integer"}},
        "required": ["items", "total"],
        "additionalProperties": False,
    },
    "free_text": {"type": "string"},
}


@pytest.fixture(scope="module")
def real(smollm2_path):
    tokenizer = Tokenizer.from_gguf_fields(read_fields(GGUFReader(str(smollm2_path))))
    return tokenizer, vocabulary_index(tokenizer)


@pytest.fixture(scope="module")
def grammars():
    return {name: compile_structured(StructuredOutput("json_schema", schema)) for name, schema in SCHEMAS.items()}


def instances(schema) -> st.SearchStrategy:
    """Values valid for the schema subset used here, generated without the compiler."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of(*(instances(s) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 30))
    if kind == "array":
        return st.lists(
            instances(schema["items"]), min_size=schema.get("minItems", 0), max_size=schema.get("maxItems", 4)
        )
    props, required = schema["properties"], set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {k: instances(v) for k, v in props.items() if k in required},
        optional={k: instances(v) for k, v in props.items() if k not in required},
    )


def ordered(value, schema):
    """The instance with object keys in the schema's declaration order (the order the grammar writes)."""
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        return {k: ordered(value[k], props[k]) for k in props if k in value}
    if isinstance(value, list) and "items" in schema:
        return [ordered(v, schema["items"]) for v in value]
    return value


def dump(value) -> str:
    """Compact JSON; floats in plain decimal notation (bounded numbers are written without exponents)."""
    if isinstance(value, float):
        text = repr(value)
        return format(value, ".20f").rstrip("0").rstrip(".") if "e" in text else text
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + dump(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def tokenizations(tokenizer, text: str, rng: random.Random) -> list[list[int]]:
    """The canonical one, a random segmentation, and one token per character where each exists."""
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, 3))) if len(text) > 1 else []
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    out = [tokenizer.encode(text), [t for piece in pieces for t in tokenizer.encode(piece)]]
    out.append([t for ch in text for t in tokenizer.encode(ch)])
    return out


def accepts(grammar, vocab, tokens) -> tuple[int, bool]:
    """(tokens accepted before the first refusal, whether all were accepted and the grammar can end)."""
    matcher = ReferenceMatcher(grammar, vocab)
    for k, token in enumerate(tokens):
        if not matcher.accept_token(token):
            return k, False
    return len(tokens), matcher.can_terminate()


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_valid_instances_are_accepted_through_every_tokenization(name, real, grammars):
    tokenizer, vocab = real
    schema = SCHEMAS[name]

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(instances(schema), st.randoms(use_true_random=False))
    def check(instance, rng):
        text = dump(ordered(instance, schema))
        jsonschema.validate(json.loads(text), schema)
        for tokens in tokenizations(tokenizer, text, rng):
            # a few code points have no byte token in this vocabulary; the tokenizer drops them
            assume(b"".join(vocab.token_bytes[t] for t in tokens) == text.encode())
            accepted, complete = accepts(grammars[name], vocab, tokens)
            assert complete, f"{text!r}: refused token {accepted} of {len(tokens)}"

    check()


CORRUPTIONS = [",", "}", "]", '"', ":", "x", "1", "-", " ", "{", "[", "\\", "e"]


@pytest.mark.parametrize("name", ["person", "scores", "nested"])
def test_corruptions_are_rejected_at_or_after_the_bad_byte(name, real, grammars):
    tokenizer, vocab = real
    schema = SCHEMAS[name]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(instances(schema), st.randoms(use_true_random=False))
    def check(instance, rng):
        text = dump(ordered(instance, schema))
        position = rng.randrange(len(text))
        corrupted = text[:position] + rng.choice(CORRUPTIONS) + text[position + rng.choice([0, 1]) :]
        try:
            jsonschema.validate(json.loads(corrupted), schema)
            return  # the corruption happens to be valid (e.g. a digit for a digit)
        except (json.JSONDecodeError, jsonschema.ValidationError):
            pass
        tokens = tokenizer.encode(corrupted)
        assume(b"".join(vocab.token_bytes[t] for t in tokens) == corrupted.encode())
        accepted, complete = accepts(grammars[name], vocab, tokens)
        assert not complete, f"accepted invalid {corrupted!r}"
        clean_bytes = len(corrupted[:position].encode())
        consumed = sum(len(vocab.token_bytes[t]) for t in tokens[:accepted])
        first_bad_end = consumed + (len(vocab.token_bytes[tokens[accepted]]) if accepted < len(tokens) else 0)
        assert first_bad_end > clean_bytes or accepted == len(tokens), f"{corrupted!r}: refused before the corruption"

    check()
