"""Tool use: the model may call typed Python tools over several chat turns before it answers."""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmkit.core.plugins import registry
from llmkit.core.sampling import SamplingParams

from ..client import ModelClient
from ..data import Sample
from ..errors import EvalError
from .base import Prompt

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def tool_schema(name: str, function: Callable[..., Any]) -> dict[str, Any]:
    """The OpenAI function schema of a typed callable: parameters from its annotations, description from its docstring."""
    hints = typing.get_type_hints(function)
    properties, required = {}, []
    for parameter in inspect.signature(function).parameters.values():
        annotation = hints.get(parameter.name, str)
        properties[parameter.name] = {"type": _JSON_TYPES.get(typing.get_origin(annotation) or annotation, "string")}
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
    description = inspect.getdoc(function) or name
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description.splitlines()[0],
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def resolve_tools(tools: Mapping[str, Callable[..., Any]] | Sequence[str]) -> dict[str, Callable[..., Any]]:
    """Tools given as callables, or names looked up in the `llmkit_register_tools` registry."""
    if isinstance(tools, Mapping):
        return dict(tools)
    return {name: registry("tools").get(name) for name in tools}


@dataclasses.dataclass(frozen=True)
class ToolUse:
    """Chat with tools for up to `max_turns` model turns; the last reply without tool calls is the answer."""

    tools: Mapping[str, Callable[..., Any]] | tuple[str, ...] = ()
    max_turns: int = 4
    max_tokens: int = 256
    kind: str = "tool_use"

    def solve(self, samples: Sequence[Sample], prompts: Sequence[Prompt], client: ModelClient, seed: int):
        functions = resolve_tools(self.tools)
        if not functions:
            raise EvalError("the tool_use solver needs at least one tool")
        schemas = [tool_schema(name, fn) for name, fn in functions.items()]
        conversations = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
        finals: list[str | None] = [None] * len(samples)
        calls: list[list[dict]] = [[] for _ in samples]
        params = SamplingParams(temperature=0, max_tokens=self.max_tokens, seed=0)
        for _ in range(self.max_turns):
            active = [i for i, final in enumerate(finals) if final is None]
            if not active:
                break
            replies = client.chat([conversations[i] for i in active], [params] * len(active), tools=schemas)
            for i, reply in zip(active, replies, strict=True):
                choice = reply[0]
                if not choice.tool_calls:
                    finals[i] = choice.content
                    conversations[i].append({"role": "assistant", "content": choice.content})
                    continue
                conversations[i].append(
                    {
                        "role": "assistant",
                        "content": choice.content,
                        "tool_calls": [{"name": n, "arguments": a} for n, a in choice.tool_calls],
                    }
                )
                for name, arguments in choice.tool_calls:
                    output = _call_tool(functions, name, arguments)
                    calls[i].append({"name": name, "arguments": arguments, "output": output})
                    conversations[i].append({"role": "tool", "content": output})
        return [
            {"completions": [final or ""], "tool_calls": c, "transcript": conv, "finished": final is not None}
            for final, c, conv in zip(finals, calls, conversations, strict=True)
        ]


def _call_tool(functions: Mapping[str, Callable[..., Any]], name: str, arguments: Mapping[str, Any]) -> str:
    """The tool's result as text; a bad call becomes an error message the model sees (as an API would)."""
    if name not in functions:
        return f"error: no tool named {name!r}"
    try:
        result = functions[name](**arguments)
    except Exception as err:
        return f"error: {type(err).__name__}: {err}"
    return result if isinstance(result, str) else json.dumps(result, default=str)
