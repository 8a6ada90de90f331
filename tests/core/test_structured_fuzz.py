"""Fuzzing the compiler: random and malformed schemas, regexes and grammars give a grammar or a
GrammarError — never another exception, never a hang (each compile is timed)."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.random_schemas import schemas
from llmkit.core.structured import GrammarError, StructuredOutput, compile_structured

TIME_LIMIT_S = 20.0


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
