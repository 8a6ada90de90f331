"""The generic tool-call grammar (for chat templates with no tool syntax): `{"tool_calls": [...]}` with each
tool's parameter schema, or free text as `{"response": "..."}` under tool_choice auto only; one call when
parallel calls are off."""

from __future__ import annotations

from llmkit.core.structured import StructuredOutput
from llmkit.core.structured.compiler import compile_structured
from llmkit.core.structured.earley import EarleyChart

ADD = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "add", "parameters": ADD}},
    {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
]
ONE = '{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}'
TWO = '{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "now", "arguments": {}}]}'
TEXT = '{"response": "Hello \\"there\\"\\n"}'


def matches(grammar, text: str) -> bool:
    chart = EarleyChart(grammar)
    return chart.accepts_bytes(text.encode()) and chart.can_finish()


def grammar(tool_choice, parallel=True):
    source = {"tools": TOOLS, "tool_choice": tool_choice, "format": "generic", "parallel": parallel}
    return compile_structured(StructuredOutput("tool_calls", source))


def test_auto_allows_calls_or_a_response_and_nothing_else():
    auto = grammar("auto")
    for text in (ONE, TWO, TEXT, '{"response": ""}'):
        assert matches(auto, text), text
    for text in (
        "Hello",  # bare text is not the generic format
        '{"response": "a\nb"}',  # a raw newline inside a JSON string
        '{"tool_calls": []}',  # at least one call
        '{"tool_calls": [{"name": "add", "arguments": {"a": "1", "b": 2}}]}',  # the schema holds
        '{"tool_calls": [{"name": "nope", "arguments": {}}]}',
        ONE + " ",
    ):
        assert not matches(auto, text), text


def test_required_named_and_single_calls():
    assert matches(grammar("required"), TWO) and not matches(grammar("required"), TEXT)
    named = grammar({"type": "function", "function": {"name": "now"}})
    assert matches(named, '{"tool_calls": [{"name": "now", "arguments": {}}]}')
    assert not matches(named, ONE) and not matches(named, TEXT)
    single = grammar("required", parallel=False)
    assert matches(single, ONE) and not matches(single, TWO)
