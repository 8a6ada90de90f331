"""Checks on `tools` and `tool_choice` before anything is rendered or compiled: OpenAI-shaped 400s that
name the field (the same for every chat template and tool-call format)."""

from __future__ import annotations

import re
from typing import Any

from .errors import APIError

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_CHOICES = ("none", "auto", "required")


def _bad(message: str, param: str) -> APIError:
    return APIError(400, message, param=param, code="invalid_value")


def check_tools(tools: list[dict[str, Any]] | None) -> list[str]:
    """The function names of `tools`, each one checked: {"type": "function", "function": {"name",
    "description"?, "parameters"?}}."""
    names: list[str] = []
    for i, tool in enumerate(tools or []):
        where = f"tools[{i}]"
        if tool.get("type") != "function":
            raise _bad(f"{where}.type must be 'function', got {tool.get('type')!r}", f"{where}.type")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _bad(f"{where}.function must be an object with a 'name'", f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _bad(
                f"{where}.function.name must be 1 to 64 letters, digits, '_' or '-', got {name!r}",
                f"{where}.function.name",
            )
        if name in names:
            raise _bad(f"{where}.function.name {name!r} is used by two tools", f"{where}.function.name")
        if "description" in function and not isinstance(function["description"], str):
            raise _bad(f"{where}.function.description must be a string", f"{where}.function.description")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise _bad(f"{where}.function.parameters must be a JSON Schema object", f"{where}.function.parameters")
        names.append(name)
    return names


def check_tool_choice(tool_choice: str | dict[str, Any] | None, names: list[str]) -> None:
    """auto / none / required / {"type": "function", "function": {"name": one of names}}; a call cannot
    be required (or a function named) when no tools are given."""
    if tool_choice is None or tool_choice in ("none", "auto"):
        return
    if isinstance(tool_choice, str):
        if tool_choice not in TOOL_CHOICES:
            raise _bad(
                f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or a named function, got {tool_choice!r}",
                "tool_choice",
            )
        name = None
    else:
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if tool_choice.get("type") != "function" or not isinstance(name, str):
            raise _bad(
                "tool_choice must be {'type': 'function', 'function': {'name': ...}} to name a function", "tool_choice"
            )
    if not names:
        raise _bad(f"tool_choice {tool_choice!r} is only allowed when tools are specified", "tool_choice")
    if name is not None and name not in names:
        raise _bad(f"tool_choice names {name!r}, which is not among the tools ({', '.join(names)})", "tool_choice")
