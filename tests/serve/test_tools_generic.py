"""Tool calls on a chat template with no tool slot (SmolLM2's own): the generic format of docs/serve.md.
The tools go into the system turn, the grammar holds the reply to `{"tool_calls": [...]}` or
`{"response": ...}`, the server parses it into OpenAI `tool_calls`; every tool_choice mode, parallel calls,
streamed deltas that reassemble to the whole reply, multi-turn history, and 400s for bad values. A tiny
random model shows what the grammar guarantees; the default model shows a real call."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from test_server import MODEL, LiveServer

from llmkit.core import load_pretrained
from llmkit.core.testing import write_tiny_model
from llmkit.serve.engine import Engine
from llmkit.serve.server.preparation import prepare_chat
from llmkit.serve.structured.generic_tools import GenericToolCallStream, generic_message

# SmolLM2-135M-Instruct's chat template, which has no place for tool definitions.
NO_TOOL_SLOT = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
ADD = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Forecast for a city", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "add", "description": "Sum of two integers", "parameters": ADD}},
]  # fmt: skip
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    path = write_tiny_model(tmp_path_factory.mktemp("tiny-no-tool-slot"), max_position_embeddings=2048)
    config = json.loads((path / "tokenizer_config.json").read_text())
    (path / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": NO_TOOL_SLOT}))
    pretrained = load_pretrained(path)
    assert not pretrained.chat_template.supports_tools
    server = LiveServer(Engine(pretrained, num_blocks=512, max_num_seqs=32), max_waiting=64)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def ask(client, messages=QUESTION, **extra):
    return client.chat.completions.create(model=MODEL, messages=messages, **{"max_tokens": 120, **extra})


def prompt_text(live, **body) -> str:
    job = prepare_chat(live.server, {"model": MODEL, "messages": QUESTION, **body})
    return live.engine.tokenizer.decode(job.prompt, skip_special_tokens=False)


def check_calls(message, names) -> list[tuple[str, dict]]:
    assert message.tool_calls and not message.content
    calls = []
    for call in message.tool_calls:
        assert call.function.name in names and call.id.startswith("call_") and call.type == "function"
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, SCHEMAS[call.function.name])
        calls.append((call.function.name, arguments))
    return calls


def test_the_prompt_lists_the_tools_in_the_system_turn(live):
    text = prompt_text(live, tools=TOOLS)
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\n")
    for tool in TOOLS:
        assert json.dumps(tool["function"]) in system
    assert '{"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}' in system
    assert '{"response": "<your answer>"}' in system
    # an existing system message keeps its text, after the tool definitions
    job = prepare_chat(
        live.server,
        {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."}, *QUESTION], "tools": TOOLS},
    )
    text = live.engine.tokenizer.decode(job.prompt, skip_special_tokens=False)
    assert text.count("<|im_start|>system") == 1 and "<arguments>}}]}\n" in text and "\n\nBe brief.<|im_end|>" in text
    named = prompt_text(live, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "add"}})
    assert 'You must call the tool "add"' in named and '{"response"' not in named
    assert "exactly one call" in prompt_text(live, tools=TOOLS, tool_choice="required", parallel_tool_calls=False)
    for not_offered in ({"tool_choice": "none", "tools": TOOLS}, {}):
        assert "get_weather" not in prompt_text(live, **not_offered)


def test_history_with_calls_and_results_renders_in_the_generic_format(live, client):
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
    messages = [
        {"role": "user", "content": "1+2 and 3+4?"},
        {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "call_2", "function": {"name": "add", "arguments": '{"a": 3, "b": 4}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
        {"role": "tool", "tool_call_id": "call_2", "content": "7"},
    ]  # fmt: skip
    job = prepare_chat(live.server, {"model": MODEL, "messages": messages, "tools": TOOLS})
    text = live.engine.tokenizer.decode(job.prompt, skip_special_tokens=False)
    calls = '{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "add", "arguments": {"a": 3, "b": 4}}]}'
    assert f"<|im_start|>assistant\n{calls}<|im_end|>" in text
    results = [
        {"tool_response": {"name": "add", "tool_call_id": "call_1", "content": "3"}},
        {"tool_response": {"name": "add", "tool_call_id": "call_2", "content": "7"}},
    ]
    assert "<|im_start|>user\n" + "\n".join(json.dumps(r) for r in results) + "<|im_end|>" in text
    reply = ask(client, messages, tools=TOOLS, tool_choice="auto", temperature=1.0, seed=3)
    assert reply.choices[0].finish_reason in ("stop", "tool_calls", "length")


def test_required_and_named_calls_follow_the_schemas(client, live):
    for seed in range(3):
        reply = ask(client, tools=TOOLS, tool_choice="required", temperature=1.0, seed=seed, parallel_tool_calls=False)
        assert reply.choices[0].finish_reason == "tool_calls"
        assert len(check_calls(reply.choices[0].message, SCHEMAS)) == 1
    for name in SCHEMAS:
        named = {"type": "function", "function": {"name": name}}
        for seed in range(2):
            reply = ask(client, tools=TOOLS, tool_choice=named, temperature=1.0, seed=seed, parallel_tool_calls=False)
            assert [n for n, _ in check_calls(reply.choices[0].message, {name})] == [name]
    live.wait_idle()


def test_auto_is_text_or_calls_and_none_is_text(client):
    kinds = set()
    for seed in range(8):
        message = ask(client, tools=TOOLS, tool_choice="auto", temperature=1.0, seed=seed).choices[0].message
        if message.tool_calls:
            check_calls(message, SCHEMAS)
            kinds.add("calls")
        else:
            assert isinstance(message.content, str) and not message.content.startswith('{"response"')
            kinds.add("text")
    assert kinds  # each reply was one or the other, never a malformed mix
    for seed in range(2):
        reply = ask(client, tools=TOOLS, tool_choice="none", temperature=1.0, seed=seed)
        assert reply.choices[0].message.tool_calls is None and reply.choices[0].finish_reason != "tool_calls"


def test_parallel_calls_and_the_cap_at_one(client):
    counts = []
    for seed in range(8):
        reply = ask(client, tools=TOOLS, tool_choice="required", temperature=1.0, seed=seed, max_tokens=250)
        counts.append(len(check_calls(reply.choices[0].message, SCHEMAS)))
    assert max(counts) >= 2, counts  # parallel_tool_calls defaults to true: several calls in one turn
    for seed in range(8):
        reply = ask(
            client,
            tools=TOOLS,
            tool_choice="required",
            temperature=1.0,
            seed=seed,
            max_tokens=250,
            parallel_tool_calls=False,
        )
        assert len(check_calls(reply.choices[0].message, SCHEMAS)) == 1


@pytest.mark.parametrize("tool_choice", ["required", "auto"])
def test_streamed_deltas_reassemble_to_the_whole_reply(client, tool_choice):
    for seed in range(3):
        options = {"tools": TOOLS, "tool_choice": tool_choice, "temperature": 1.0, "seed": seed, "max_tokens": 250}
        full = ask(client, **options).choices[0]
        calls: dict[int, dict] = {}
        content, finish, ids = "", None, {}
        for chunk in ask(client, stream=True, **options):
            choice = chunk.choices[0]
            content += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                if delta.id:
                    assert delta.index not in ids and delta.function.name  # id and name come once, first
                    ids[delta.index] = delta.id
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
        assert finish == full.finish_reason
        assert (content or None) == full.message.content
        expected = [(c.function.name, c.function.arguments) for c in full.message.tool_calls or []]
        assert [(calls[i]["name"], calls[i]["arguments"]) for i in sorted(calls)] == expected
        assert sorted(ids) == list(range(len(expected)))


def test_the_stream_reader_is_the_same_in_any_pieces():
    text = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Z\\u00fcrich \\"}", "days": 2}}, {"name": "add", "arguments": {"a": -1, "b": 20}}]}'
    message, finish = generic_message(text, "stop")
    assert finish == "tool_calls" and message["content"] is None
    got = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]
    assert got == [("get_weather", {"city": 'Zürich "}', "days": 2}), ("add", {"a": -1, "b": 20})]
    reply = '{"response": "two\\nlines \\u00e9 and a quote \\" {\\"x\\": 1}"}'
    for whole, expected in ((text, None), (reply, 'two\nlines é and a quote " {"x": 1}')):
        stream = GenericToolCallStream()
        payloads = [p for i, ch in enumerate(whole) for p in stream.push(ch, i == len(whole) - 1)]
        assert "".join(p.get("content", "") for p in payloads) == (expected or "")
        assert all(len(p) == 1 for p in payloads)
        if expected is None:
            arguments = [d["function"]["arguments"] for p in payloads for d in p.get("tool_calls", [])]
            assert "".join(arguments) == '{"city": "Z\\u00fcrich \\"}", "days": 2}{"a": -1, "b": 20}'
    assert generic_message(reply, "stop") == ({"role": "assistant", "content": expected}, "stop")


BAD = [
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice", "nope"),
    ({"tool_choice": "required"}, "tool_choice", "only allowed when tools are specified"),
    ({"tool_choice": {"type": "function", "function": {"name": "add"}}}, "tool_choice", "only allowed when tools"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice", "none, auto, required"),
    ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice", "name a function"),
    ({"tools": [{"type": "function", "function": {"parameters": ADD}}]}, "tools[0].function.name", "letters"),
    ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name", "'a b'"),
    ({"tools": [{"type": "retrieval", "function": {"name": "a"}}]}, "tools[0].type", "'function'"),
    ({"tools": [{"type": "function", "function": {"name": "a", "parameters": "x"}}]}, "tools[0].function.parameters", "JSON Schema"),
    ({"tools": [TOOLS[1], TOOLS[1]]}, "tools[1].function.name", "two tools"),
    ({"tools": [{"type": "function", "function": {"name": "a", "parameters": {"type": "object", "patternProperties": {}}}}]}, "tools", "patternProperties"),
    ({"tools": TOOLS, "messages": [*QUESTION, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "add", "arguments": "{oops"}}]}]}, "messages", "not JSON"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "param", "words"), BAD)
def test_bad_tool_values_are_openai_shaped_400s(live, extra, param, words):
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 8, **extra}
    response = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert words in error["message"], error


def test_the_default_model_calls_a_tool(smollm2):
    """SmolLM2's own template has no tool slot: tools= works on it out of the box."""
    assert not smollm2.chat_template.supports_tools
    server = LiveServer(Engine(smollm2, num_blocks=256, max_num_seqs=4))
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        question = [{"role": "user", "content": "What is the weather in Paris for the next 3 days?"}]
        reply = ask(client, question, tools=TOOLS, tool_choice="required", temperature=0)
        assert reply.choices[0].finish_reason == "tool_calls"
        calls = check_calls(reply.choices[0].message, SCHEMAS)
        assert calls[0][0] == "get_weather", calls
        server.wait_idle()
    finally:
        server.stop()
