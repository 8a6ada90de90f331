"""Sandboxed chat templates, built-ins with tools, and parsing of assistant output."""

from __future__ import annotations

import json

import pytest

from llmkit.core import ChatTemplate, ChatTemplateError, parse_assistant_output
from llmkit.core.assistant_output import detect_tool_call_format

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_generation_prompt_is_optional(smollm2):
    messages = [{"role": "user", "content": "hi"}]
    with_prompt = smollm2.chat_template.render(messages)
    without = smollm2.chat_template.render(messages, add_generation_prompt=False)
    assert with_prompt == without + "<|im_start|>assistant\n"


def test_model_template_uses_given_system_message(smollm2):
    text = smollm2.chat_template.render([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}])
    assert text.startswith("<|im_start|>system\nBe terse.<|im_end|>\n") and "SmolLM" not in text


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.append(1) }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_sandbox_refuses_unsafe_templates(source):
    template = ChatTemplate(source, name="evil")
    with pytest.raises(ChatTemplateError):
        template.render([{"role": "user", "content": "x"}])


def test_raise_exception_becomes_a_clear_error():
    template = ChatTemplate("{{ raise_exception('only user turns') }}")
    with pytest.raises(ChatTemplateError, match="only user turns"):
        template.render([{"role": "user", "content": "x"}])


def test_syntax_error_names_the_template():
    with pytest.raises(ChatTemplateError, match="does not parse"):
        ChatTemplate("{% for %}", name="broken")


@pytest.mark.parametrize(
    "messages,match",
    [
        ([{"role": "wizard", "content": "x"}], "role 'wizard'"),
        ([{"role": "user", "content": 3}], "content must be"),
        ([{"role": "user"}], "no content"),
        (["hello"], "not a mapping"),
    ],
)
def test_bad_messages_are_rejected(messages, match):
    with pytest.raises(ChatTemplateError, match=match):
        ChatTemplate.named("chatml").render(messages)


def test_text_parts_are_flattened():
    text = ChatTemplate.named("chatml").render(
        [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    )
    assert "<|im_start|>user\nab<|im_end|>" in text


def test_tools_refused_by_a_template_without_them(smollm2):
    with pytest.raises(ChatTemplateError, match="no place for tool definitions"):
        smollm2.chat_template.render([{"role": "user", "content": "x"}], tools=[WEATHER_TOOL])


def test_chatml_renders_tool_definitions_calls_and_results():
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18C, sunny"},
    ]
    text = ChatTemplate.named("chatml").render(messages, tools=[WEATHER_TOOL])
    assert "<tools>\n" + json.dumps(WEATHER_TOOL, ensure_ascii=False) + "\n</tools>" in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>' in text
    assert "<|im_start|>user\n<tool_response>\n18C, sunny\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_llama3_builtin_layout():
    template = ChatTemplate.named("llama3", bos_token="<|begin_of_text|>")
    text = template.render([{"role": "system", "content": "S"}, {"role": "user", "content": " U "}])
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    with_tools = template.render([{"role": "user", "content": "x"}], tools=[WEATHER_TOOL])
    assert "Environment: ipython" in with_tools and '"name": "get_weather"' in with_tools


def test_unknown_builtin_is_a_clear_error():
    from llmkit.core import PluginError

    with pytest.raises(PluginError, match="no chat_templates entry named 'nope'"):
        ChatTemplate.named("nope")


def test_parse_hermes_tool_calls_and_thinking():
    text = (
        "<think>The user wants weather.</think>Let me check."
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
        '<tool_call>{"name": "get_time", "arguments": "{\\"tz\\": \\"CET\\"}"}</tool_call>'
    )
    message = parse_assistant_output(text)
    assert message.reasoning == "The user wants weather."
    assert message.content == "Let me check."
    assert [(c.name, c.arguments) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "CET"}),
    ]
    assert message.errors == []
    openai = message.to_openai()
    assert json.loads(openai["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


def test_malformed_tool_call_is_reported_not_lost():
    message = parse_assistant_output('<tool_call>{"name": "f", "arguments": {oops}</tool_call>')
    assert message.tool_calls == [] and len(message.errors) == 1 and "not valid JSON" in message.errors[0]
    assert parse_assistant_output("<tool_call>{").errors == ["unterminated <tool_call> block"]


def test_parse_llama3_and_mistral_formats():
    llama = parse_assistant_output('<|python_tag|>{"name": "f", "parameters": {"x": 1}}', "llama3")
    assert [(c.name, c.arguments) for c in llama.tool_calls] == [("f", {"x": 1})]
    plain_json = parse_assistant_output('{"answer": 42}', "llama3")
    assert plain_json.tool_calls == [] and plain_json.content == '{"answer": 42}'
    mistral = parse_assistant_output(
        '[TOOL_CALLS] [{"name": "f", "arguments": {"x": 2}}, {"name": "g", "arguments": {}}]', "mistral"
    )
    assert [c.name for c in mistral.tool_calls] == ["f", "g"]


def test_lone_closing_think_tag():
    message = parse_assistant_output("reasoning here</think>\n\nanswer")
    assert (message.reasoning, message.content) == ("reasoning here", "answer")


def test_tool_call_format_detection():
    from llmkit.core.chat_template import builtin_template_source

    assert detect_tool_call_format(builtin_template_source("chatml")) == "hermes"
    assert detect_tool_call_format(builtin_template_source("llama3")) == "llama3"
