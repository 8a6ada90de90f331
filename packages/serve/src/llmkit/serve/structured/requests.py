"""OpenAI request fields -> `StructuredOutput`: response_format (json_object, json_schema with strict,
and the extensions regex and grammar) and tools with tool_choice."""

from __future__ import annotations

from typing import Any

from llmkit.core.structured import GrammarError, JsonOptions, StructuredOutput

RESPONSE_FORMATS = ("text", "json_object", "json_schema", "regex", "grammar")


def from_response_format(response_format: dict[str, Any] | None) -> StructuredOutput | None:
    """None for plain text; GrammarError (naming the field) for a malformed or unknown format."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind not in RESPONSE_FORMATS:
        raise GrammarError(f"response_format.type must be one of {', '.join(RESPONSE_FORMATS)}, got {kind!r}")
    if kind == "text":
        return None
    if kind == "json_object":
        return StructuredOutput("json_object")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or "schema" not in spec:
            raise GrammarError("response_format.json_schema must be an object with a 'schema'")
        strict = spec.get("strict") is True
        return StructuredOutput("json_schema", spec["schema"], JsonOptions(strict=strict))
    field = "pattern" if kind == "regex" else "grammar"
    source = response_format.get(field)
    if not isinstance(source, str) or not source:
        raise GrammarError(f"response_format of type {kind!r} needs a non-empty string {field!r}")
    return StructuredOutput(kind, source)


def from_tools(tools: list[dict[str, Any]], tool_choice: Any, parallel: bool | None, fmt: str) -> StructuredOutput:
    """The grammar of the template's tool-call syntax for these tools (tool_choice auto/required/named)."""
    return StructuredOutput(
        "tool_calls",
        {"tools": tools, "tool_choice": tool_choice or "auto", "format": fmt, "parallel": parallel is not False},
    )
