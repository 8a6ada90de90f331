"""Parse generated text into a structured assistant message: reasoning, content and tool calls."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


@dataclasses.dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = dataclasses.field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


@dataclasses.dataclass
class AssistantMessage:
    """What the model said, split apart; `errors` lists tool-call blocks that could not be parsed."""

    content: str
    reasoning: str | None = None
    tool_calls: list[ToolCall] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    def to_openai(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return message


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning, rest): `<think>…</think>` blocks, or everything before a lone `</think>`
    (templates that open the block in the prompt)."""
    blocks = _THINK.findall(text)
    if blocks:
        return "\n".join(b.strip() for b in blocks), _THINK.sub("", text).strip()
    if "</think>" in text:
        reasoning, rest = text.split("</think>", 1)
        return reasoning.strip(), rest.strip()
    return None, text


def _call_from_json(obj: Any, errors: list[str], raw: str) -> ToolCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        errors.append(f"tool call without a function name: {raw[:200]}")
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            errors.append(f"tool call {obj['name']!r} has arguments that are not JSON: {args[:200]}")
            return None
    if not isinstance(args, dict):
        errors.append(f"tool call {obj['name']!r} has arguments that are not an object")
        return None
    return ToolCall(obj["name"], args)


def _parse_json(raw: str, errors: list[str]) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        errors.append(f"tool call is not valid JSON ({err.msg} at {err.pos}): {raw[:200]}")
        return None


def _hermes(text: str) -> AssistantMessage:
    errors: list[str] = []
    calls = []
    for raw in _HERMES.findall(text):
        obj = _parse_json(raw, errors)
        if obj is not None and (call := _call_from_json(obj, errors, raw)):
            calls.append(call)
    content = _HERMES.sub("", text)
    if "<tool_call>" in content:
        errors.append("unterminated <tool_call> block")
    return AssistantMessage(content.strip(), tool_calls=calls, errors=errors)


def _json_calls(text: str, marker: str) -> AssistantMessage:
    """Llama 3 (`<|python_tag|>` + JSON) and Mistral (`[TOOL_CALLS]` + JSON list) tool calls."""
    head, sep, body = text.partition(marker)
    body = body if sep else text
    stripped = body.strip()
    if not stripped.startswith(("{", "[")):
        return AssistantMessage(text.strip())
    errors: list[str] = []
    obj = _parse_json(stripped, errors)
    if obj is None:
        return AssistantMessage(text.strip(), errors=errors)
    items = obj if isinstance(obj, list) else [obj]
    if not sep and not all(isinstance(i, dict) and "name" in i for i in items):
        return AssistantMessage(text.strip())  # plain JSON content, not a call
    calls = [c for item in items if (c := _call_from_json(item, errors, stripped))]
    return AssistantMessage(head.strip(), tool_calls=calls, errors=errors)


TOOL_CALL_FORMATS: dict[str, Callable[[str], AssistantMessage]] = {
    "hermes": _hermes,
    "llama3": lambda text: _json_calls(text, "<|python_tag|>"),
    "mistral": lambda text: _json_calls(text, "[TOOL_CALLS]"),
}


def detect_tool_call_format(template_source: str) -> str:
    """The tool-call format a chat template teaches its model."""
    if "[TOOL_CALLS]" in template_source:
        return "mistral"
    if "<|python_tag|>" in template_source or "<|start_header_id|>" in template_source:
        return "llama3"
    return "hermes"


def parse_assistant_output(text: str, tool_call_format: str = "hermes") -> AssistantMessage:
    if tool_call_format not in TOOL_CALL_FORMATS:
        raise ValueError(f"unknown tool-call format {tool_call_format!r}; known: {', '.join(TOOL_CALL_FORMATS)}")
    reasoning, rest = split_reasoning(text)
    message = TOOL_CALL_FORMATS[tool_call_format](rest)
    message.reasoning = reasoning
    return message
