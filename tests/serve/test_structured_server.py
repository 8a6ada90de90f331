"""Structured outputs through the OpenAI-compatible server (tiny model): response_format json_object,
json_schema (strict), regex and grammar; tools with tool_choice auto/required/named, streamed tool_calls
deltas; bad schemas are 400s that name the keyword and its JSON pointer."""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
import openai
import pytest
from test_server import MODEL, LiveServer

from llmkit.core import load_pretrained
from llmkit.core.testing import write_tiny_model
from llmkit.serve.engine import Engine

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Forecast", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"], "additionalProperties": False}}},
]  # fmt: skip


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A tiny model with room for the tool descriptions the chat template adds to the prompt."""
    path = write_tiny_model(tmp_path_factory.mktemp("tiny-long"), max_position_embeddings=2048)
    server = LiveServer(Engine(load_pretrained(path), num_blocks=512, max_num_seqs=32), max_waiting=64)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def ask(client, **extra):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], max_tokens=160, **extra
    )


def test_json_object_and_json_schema(client, live):
    reply = ask(client, response_format={"type": "json_object"}, temperature=1.0, seed=1)
    assert isinstance(json.loads(reply.choices[0].message.content), dict)
    for strict in (True, False):
        fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER, "strict": strict}}
        reply = ask(client, response_format=fmt, temperature=0)
        jsonschema.validate(json.loads(reply.choices[0].message.content), WEATHER)
    live.wait_idle()


def test_regex_and_grammar_extensions(live):
    base = {"model": MODEL, "messages": [{"role": "user", "content": "code?"}], "max_tokens": 40, "temperature": 1.0}
    reply = httpx.post(
        f"{live.url}/v1/chat/completions",
        json={**base, "response_format": {"type": "regex", "pattern": "[A-Z]{3}-\\d{4}"}},
        timeout=60,
    ).json()
    assert re.fullmatch(r"[A-Z]{3}-\d{4}", reply["choices"][0]["message"]["content"])
    grammar = 'root ::= answer\nanswer ::= "yes" | "no" | "maybe"'
    reply = httpx.post(
        f"{live.url}/v1/chat/completions",
        json={**base, "response_format": {"type": "grammar", "grammar": grammar}},
        timeout=60,
    ).json()
    assert reply["choices"][0]["message"]["content"] in ("yes", "no", "maybe")


@pytest.mark.parametrize(
    ("response_format", "words"),
    [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string", "contentSchema": {}}}}}}, ["contentSchema", "#/properties/a/contentSchema"]),
        ({"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}, ["additionalProperties"]),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, ["schema"]),
        ({"type": "regex", "pattern": "(unclosed"}, ["missing ')'"]),
        ({"type": "grammar", "grammar": "root ::= missing"}, ["undefined rule"]),
        ({"type": "yaml"}, ["response_format.type"]),
    ],
)  # fmt: skip
def test_bad_formats_are_400_naming_the_problem(live, response_format, words):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "response_format": response_format}
    response = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "response_format"
    for word in words:
        assert word in error["message"]


def check_calls(message, names) -> None:
    assert message.tool_calls and not message.content
    for call in message.tool_calls:
        assert call.function.name in names
        arguments = json.loads(call.function.arguments)
        schema = next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == call.function.name)
        jsonschema.validate(arguments, schema)


def test_tool_choice_required_and_named(client, live):
    for seed in range(3):
        reply = ask(client, tools=TOOLS, tool_choice="required", temperature=1.0, seed=seed, parallel_tool_calls=False)
        assert reply.choices[0].finish_reason == "tool_calls"
        check_calls(reply.choices[0].message, {"get_weather", "add"})
    named = {"type": "function", "function": {"name": "add"}}
    reply = ask(client, tools=TOOLS, tool_choice=named, temperature=1.0, seed=4, parallel_tool_calls=False)
    check_calls(reply.choices[0].message, {"add"})
    assert len(reply.choices[0].message.tool_calls) == 1
    live.wait_idle()


def test_tool_choice_auto_is_text_or_calls_never_both(client):
    for seed in range(4):
        choice = ask(client, tools=TOOLS, tool_choice="auto", temperature=1.0, seed=seed, parallel_tool_calls=False)
        message = choice.choices[0].message
        if message.tool_calls:
            check_calls(message, {"get_weather", "add"})
        else:
            assert "<tool_call>" not in (message.content or "")


def test_streamed_tool_calls_equal_the_full_response(client):
    full = ask(client, tools=TOOLS, tool_choice="required", temperature=0, parallel_tool_calls=False)
    calls: dict[int, dict] = {}
    finish = None
    for chunk in ask(
        client, tools=TOOLS, tool_choice="required", temperature=0, stream=True, parallel_tool_calls=False
    ):
        choice = chunk.choices[0]
        for delta in choice.delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            entry["name"] += delta.function.name or ""
            entry["arguments"] += delta.function.arguments or ""
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    expected = [(c.function.name, json.loads(c.function.arguments)) for c in full.choices[0].message.tool_calls]
    assert [(calls[i]["name"], json.loads(calls[i]["arguments"])) for i in sorted(calls)] == expected


def test_tools_with_unknown_named_function_is_400(live):
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "x"}],
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "nope"}},
    }
    response = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400 and "nope" in response.json()["error"]["message"]


def test_openai_client_errors_are_bad_requests(client):
    with pytest.raises(openai.BadRequestError, match="patternProperties"):
        ask(
            client,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object", "patternProperties": {"a": {}}}},
            },
        )


def test_the_server_prewarms_structured_outputs_at_startup(tiny):
    """`llmkit serve` builds the vocabulary index and the shared JSON pieces while it starts, on the mask
    worker, so the first structured request does not wait for them; nothing lands in the grammar cache."""
    engine = Engine(tiny, num_blocks=64, max_num_seqs=4)
    server = LiveServer(engine)
    try:
        assert server.server.prewarmed is not None
        assert server.server.prewarmed.result(timeout=60) is None
        assert engine.structured._vocabulary is not None
        assert engine.structured.compiler.misses == 0 and engine.structured.compiler.hits == 0
        reply = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 20,
                  "response_format": {"type": "json_object"}},
            timeout=60,
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
    finally:
        server.stop()
