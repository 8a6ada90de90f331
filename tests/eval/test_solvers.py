"""Solvers on a tiny real model and on scripted ones: generation, self-consistency seeds, tool use."""

from __future__ import annotations

from llmkit.core.backends import ModelBackend
from llmkit.eval.client import ModelClient
from llmkit.eval.data import Sample
from llmkit.eval.solvers import Generate, SelfConsistency, ToolUse, tool_schema


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_tool_schema_from_annotations():
    schema = tool_schema("add", add)["function"]
    assert schema["description"] == "Add two integers."
    assert schema["parameters"] == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }


def test_sampled_generation_is_reproducible_through_the_cache_key(tiny):
    client = ModelClient(ModelBackend(tiny), "tiny")
    solver = SelfConsistency(samples=3, temperature=1.0, max_tokens=4)
    sample = Sample("x", {}, "1")
    first = solver.solve([sample], ["1 + 1 ="], client, seed=5)
    again = solver.solve([sample], ["1 + 1 ="], client, seed=5)
    assert first[0]["completions"] == again[0]["completions"] and len(first[0]["answers"]) == 3


def test_generate_with_chat_prompts(tiny):
    client = ModelClient(ModelBackend(tiny), "tiny")
    (response,) = Generate(max_tokens=3).solve(
        [Sample("x", {}, None)], [[{"role": "user", "content": "hi"}]], client, 0
    )
    assert len(response["completions"]) == 1 and client.usage.completion_tokens >= 1


class _ToolCaller:
    """Calls `add` on the first turn, answers with the tool's output on the second."""

    name = "tool-caller"

    def chat(self, conversations, params, tools=None):
        from llmkit.core.assistant_output import AssistantMessage, ToolCall
        from llmkit.core.backends import ChatChoice, ChatResult

        results = []
        for messages in conversations:
            if messages[-1]["role"] == "tool":
                message = AssistantMessage(f"The sum is {messages[-1]['content']}.")
            else:
                message = AssistantMessage("", tool_calls=[ToolCall("add", {"a": 2, "b": 3})])
            results.append(ChatResult([ChatChoice(message, message.content, "stop", [1])], 1))
        return results


def test_tool_use_loop():
    client = ModelClient(_ToolCaller(), "tools")
    (response,) = ToolUse(tools={"add": add}).solve([Sample("t", {}, "5")], ["What is 2 + 3?"], client, 0)
    assert response["completions"] == ["The sum is 5."] and response["tool_calls"] == [
        {"name": "add", "arguments": {"a": 2, "b": 3}, "output": "5"}
    ]
    assert response["finished"]
