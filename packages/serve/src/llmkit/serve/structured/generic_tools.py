"""The generic tool-call format, for chat templates with no tool syntax of their own (docs/serve.md):
the tool definitions go into the system turn, the reply is grammar-constrained to
`{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}` or `{"response": "..."}` (as llama.cpp's generic
handler does), and past calls and tool results are written back into the history in that same JSON."""

from __future__ import annotations

import json
import uuid
from typing import Any

from llmkit.core.errors import ChatTemplateError

from .tool_stream import ToolCallStream

GENERIC = "generic"
_CALLS_OPEN, _RESPONSE_OPEN = '{"tool_calls": [', '{"response": "'
_CALL_OPEN, _ARGUMENTS_KEY = '{"name": ', ', "arguments": '


def uses_generic_format(template) -> bool:
    """Whether a chat template leaves tools to the generic format (it never mentions `tools`)."""
    return template is not None and not template.supports_tools


def tools_instructions(tools: list[dict[str, Any]], tool_choice: Any, parallel: bool) -> str:
    """The system-turn text that lists the tools and the reply format the grammar will enforce."""
    listed = "\n".join(
        json.dumps({k: t["function"][k] for k in ("name", "description", "parameters") if k in t["function"]})
        for t in tools
    )
    call = '{"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}'
    how_many = "one or more calls in the list" if parallel else "exactly one call in the list"
    if isinstance(tool_choice, dict):
        rule = f"You must call the tool {json.dumps(tool_choice['function']['name'])}. Reply with only this JSON ({how_many}):\n{call}"
    elif tool_choice == "required":
        rule = f"You must call at least one tool. Reply with only this JSON ({how_many}):\n{call}"
    else:
        rule = (
            f"To call tools, reply with only this JSON ({how_many}):\n{call}\n"
            'To answer without a tool, reply with only this JSON:\n{"response": "<your answer>"}'
        )
    return f"You can call these tools (each with a JSON Schema of its arguments):\n{listed}\n\n{rule}"


def generic_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, tool_choice: Any, parallel: bool
) -> list[dict[str, Any]]:
    """The messages as a template without a tool slot can render them: tools in the system turn (when
    offered), assistant tool calls as their generic JSON, tool results as a user turn of
    `{"tool_response": ...}` lines (consecutive results share one turn). ChatTemplateError for a bad history."""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            out.append({**_without_tool_fields(message), "content": _calls_text(message, index, names)})
        elif role == "tool":
            line = json.dumps({"tool_response": _tool_response(message, index, names)})
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + line
            else:
                out.append({"role": "user", "content": line, "_tool_results": True})
        else:
            out.append(dict(message))
    for message in out:
        message.pop("_tool_results", None)
    if tools:
        instructions = tools_instructions(tools, tool_choice, parallel)
        if out and out[0].get("role") in ("system", "developer"):
            first = out[0]
            out[0] = {**first, "content": instructions + "\n\n" + _text(first.get("content"), 0)}
        else:
            out.insert(0, {"role": "system", "content": instructions})
    return out


def _without_tool_fields(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in ("tool_calls", "tool_call_id")}


def _text(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
            raise ChatTemplateError(f"message {index} has a content part llmkit cannot render: {part!r}")
        parts.append(part["text"])
    return "".join(parts)


def _calls_text(message: dict[str, Any], index: int, names: dict[str, str]) -> str:
    calls = []
    for k, call in enumerate(message["tool_calls"]):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ChatTemplateError(f"message {index} tool_calls[{k}] needs a function with a name")
        arguments = function.get("arguments", "{}")
        try:
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        except json.JSONDecodeError:
            raise ChatTemplateError(
                f"message {index} tool_calls[{k}].function.arguments is not JSON: {arguments[:100]!r}"
            ) from None
        if isinstance(call.get("id"), str):
            names[call["id"]] = function["name"]
        calls.append({"name": function["name"], "arguments": arguments})
    text = _text(message.get("content"), index)
    body = json.dumps({"tool_calls": calls}, ensure_ascii=False)
    return f"{text}\n{body}" if text else body


def _tool_response(message: dict[str, Any], index: int, names: dict[str, str]) -> dict[str, Any]:
    response: dict[str, Any] = {}
    call_id = message.get("tool_call_id")
    name = message.get("name") or names.get(call_id or "")
    if name:
        response["name"] = name
    if call_id:
        response["tool_call_id"] = call_id
    response["content"] = _text(message.get("content"), index)
    return response


class GenericToolCallStream:
    """Reads a reply in the generic format as it is generated and turns it into OpenAI deltas: the
    `response` string decoded as content, each call announced (index, id, name) as soon as its name is
    complete, then its arguments' JSON text in fragments. Same interface as `ToolCallStream`."""

    def __init__(self) -> None:
        self.text = ""
        self.pos = 0  # characters of text already turned into deltas (or skipped as format)
        self.state = "start"
        self.calls = 0
        self._depth, self._in_string, self._escape, self._scan = 0, False, False, 0

    @property
    def called(self) -> bool:
        return self.calls > 0

    def push(self, delta: str, finished: bool) -> list[dict[str, Any]]:
        self.text += delta
        out: list[dict[str, Any]] = []
        while getattr(self, "_" + self.state)(out, finished):
            pass
        return out

    # --- states: each returns whether it made progress and the next state should run now ---------
    def _start(self, out, finished) -> bool:
        rest = self.text[self.pos :]
        for opening, state in ((_CALLS_OPEN, "call"), (_RESPONSE_OPEN, "response")):
            if rest.startswith(opening):
                self.pos += len(opening)
                self.state = state
                return True
        if not finished and (_CALLS_OPEN.startswith(rest) or _RESPONSE_OPEN.startswith(rest)):
            return False
        self.state = "raw"  # not the generic format (the grammar rules this out): pass it on as it is
        return True

    def _raw(self, out, finished) -> bool:
        if self.pos < len(self.text):
            out.append({"content": self.text[self.pos :]})
            self.pos = len(self.text)
        return False

    def _done(self, out, finished) -> bool:
        return False

    def _response(self, out, finished) -> bool:
        end, closed = _string_end(self.text, self.pos)
        if end > self.pos:
            out.append({"content": json.loads('"' + self.text[self.pos : end] + '"')})
        self.pos = end
        if closed:
            self.pos += 1
            self.state = "done"
        return False

    def _expect(self, literal: str, state: str) -> bool:
        rest = self.text[self.pos :]
        if rest.startswith(literal):
            self.pos += len(literal)
            self.state = state
            return True
        if literal.startswith(rest):
            return False
        self.state = "raw"
        return True

    def _call(self, out, finished) -> bool:
        return self._expect(_CALL_OPEN, "name")

    def _name(self, out, finished) -> bool:
        if not self.text.startswith('"', self.pos):
            return self._expect('"', "name")
        end, closed = _string_end(self.text, self.pos + 1)
        if not closed:
            return False
        name = json.loads(self.text[self.pos : end + 1])
        call = {"index": self.calls, "id": "call_" + uuid.uuid4().hex[:24], "type": "function"}
        out.append({"tool_calls": [{**call, "function": {"name": name, "arguments": ""}}]})
        self.calls += 1
        self.pos = end + 1
        self.state = "arguments_key"
        return True

    def _arguments_key(self, out, finished) -> bool:
        self._depth, self._in_string, self._escape, self._scan = 0, False, False, self.pos + len(_ARGUMENTS_KEY)
        return self._expect(_ARGUMENTS_KEY, "arguments")

    def _arguments(self, out, finished) -> bool:
        end = self._scan_value()
        stop = len(self.text) if end is None else end
        if stop > self.pos:
            fragment = self.text[self.pos : stop]
            out.append({"tool_calls": [{"index": self.calls - 1, "function": {"arguments": fragment}}]})
            self.pos = stop
        if end is None:
            return False
        self.state = "call_close"
        return True

    def _call_close(self, out, finished) -> bool:
        return self._expect("}", "after_call")

    def _after_call(self, out, finished) -> bool:
        rest = self.text[self.pos :]
        if rest.startswith(", "):
            self.pos += 2
            self.state = "call"
            return True
        if ", ".startswith(rest):
            return False  # the next call or the end of the list: not known yet
        return self._expect("]}", "done")

    def _scan_value(self) -> int | None:
        """Where the arguments' JSON value ends (exclusive), or None while it is still open."""
        for j in range(self._scan, len(self.text)):
            c = self.text[j]
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif c == "\\":
                    self._escape = True
                elif c == '"':
                    self._in_string = False
                    if self._depth == 0:
                        return j + 1
            elif c == '"':
                self._in_string = True
            elif c in "{[":
                self._depth += 1
            elif c in "}]":
                if self._depth == 0:
                    return j  # a scalar value ended where the call object closes
                self._depth -= 1
                if self._depth == 0:
                    return j + 1
        self._scan = len(self.text)
        return None


def _string_end(text: str, start: int) -> tuple[int, bool]:
    """(end, closed): the JSON string body from `start` holds complete characters up to `end`; closed when
    text[end] is its closing quote."""
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            return i, True
        if c == "\\":
            width = 6 if text.startswith("u", i + 1) else 2
            if i + width > len(text):
                return i, False
            i += width
        else:
            i += 1
    return i, False


def new_tool_call_stream(tool_call_format: str):
    return GenericToolCallStream() if tool_call_format == GENERIC else ToolCallStream(tool_call_format)


def generic_message(text: str, finish_reason: str | None) -> tuple[dict[str, Any], str | None]:
    """The assistant message of a finished reply in the generic format, built from the very deltas a
    stream sends (so streamed and whole replies agree), and its finish reason."""
    stream = GenericToolCallStream()
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    for payload in stream.push(text, finished=True):
        if "content" in payload:
            content.append(payload["content"])
        for delta in payload.get("tool_calls", []):
            if "id" in delta:
                calls[delta["index"]] = {"id": delta["id"], "type": "function", "function": dict(delta["function"])}
            else:
                calls[delta["index"]]["function"]["arguments"] += delta["function"]["arguments"]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message, "tool_calls" if calls else finish_reason


def set_generic_messages(body_choices: list[dict[str, Any]], choices: dict) -> None:
    """Replace the plain-text messages of a chat response body with their generic-format reading."""
    for entry in body_choices:
        choice = choices[entry["index"]]
        entry["message"], entry["finish_reason"] = generic_message(choice.text, choice.finish_reason)
