"""Fuzzing the compiler: random and malformed schemas, regexes and grammars give a grammar or a
GrammarError — never another exception, never a hang (each compile is timed)."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmkit.core.structured import GrammarError, StructuredOutput, compile_structured

TIME_LIMIT_S = 20.0
KEYWORDS = [
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
    "minLength", "maxLength", "pattern", "format", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "not", "description", "multipleOf",
]  # fmt: skip
TYPES = ["object", "array", "string", "number", "integer", "boolean", "null", "nope"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(TYPES), st.text(max_size=8), st.sampled_from(["#", "#/$defs/a", "#/properties/x", "date", "uuid", "[a-z]+"]),
)  # fmt: skip
schemas = st.recursive(
    scalars | st.just({}),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYWORDS), inner, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", "x"]), inner, max_size=3).map(lambda d: {"type": "object", "properties": d}),
        st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2).map(lambda d: {"$defs": d, "$ref": "#/$defs/a"}),
    ),
    max_leaves=12,
)  # fmt: skip


def compiles_or_refuses(spec: StructuredOutput) -> None:
    started = time.monotonic()
    try:
        compile_structured(spec)
    except GrammarError as err:
        assert str(err)
    assert time.monotonic() - started < TIME_LIMIT_S


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas)
def test_random_schemas(schema):
    compiles_or_refuses(StructuredOutput("json_schema", schema))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab()[]{}|*+?.^$\\-0123,:dws", max_size=16))
def test_random_regexes(pattern):
    compiles_or_refuses(StructuredOutput("regex", pattern))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='root:= "ab()[]|*+?{}12,\n#\\^-x', max_size=40))
def test_random_grammar_texts(text):
    compiles_or_refuses(StructuredOutput("grammar", text))


def test_deeply_nested_schema_is_an_error_not_a_crash():
    schema: dict = {"type": "integer"}
    for _ in range(3000):
        schema = {"type": "array", "items": schema}
    compiles_or_refuses(StructuredOutput("json_schema", schema))


def test_huge_bounded_repetition_is_refused_in_bounded_time():
    compiles_or_refuses(StructuredOutput("json_schema", {"type": "string", "maxLength": 90_000}))
    compiles_or_refuses(StructuredOutput("regex", "(a|b|c){5000}(d|e){3000}"))
