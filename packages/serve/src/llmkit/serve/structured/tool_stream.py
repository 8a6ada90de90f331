"""Streaming a constrained tool-call reply as OpenAI deltas: the grammar guarantees the reply is either
free text or tool calls, so text streams as content once it cannot start a call, and each Hermes call
is sent as a `tool_calls` delta as soon as its block closes (other formats: when the reply ends)."""

from __future__ import annotations

from typing import Any

from llmkit.core.assistant_output import parse_assistant_output

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_CALL_STARTS = {"hermes": (_OPEN,), "llama3": ("{",), "mistral": ("[",)}


class ToolCallStream:
    def __init__(self, tool_call_format: str):
        self.format = tool_call_format
        self.text = ""
        self.mode: str | None = None  # "text" or "calls" once known
        self.sent_text = 0
        self.sent_calls = 0
        self.consumed = 0  # characters of text already parsed into calls (Hermes)

    def push(self, delta: str, finished: bool) -> list[dict[str, Any]]:
        """Delta payloads ({"content": ...} or {"tool_calls": [...]}) for the text added so far."""
        self.text += delta
        if self.mode is None:
            self.mode = self._decide(finished)
        if self.mode == "text":
            out = self.text[self.sent_text :]
            self.sent_text = len(self.text)
            return [{"content": out}] if out else []
        if self.mode == "calls":
            return self._calls(finished)
        return []

    @property
    def called(self) -> bool:
        return self.sent_calls > 0

    def _decide(self, finished: bool) -> str | None:
        stripped = self.text.lstrip()
        starts = _CALL_STARTS.get(self.format, (_OPEN,))
        if any(stripped.startswith(s) for s in starts):
            return "calls"
        if not finished and any(s.startswith(stripped) for s in starts):
            return None  # still a possible start of a call
        return "text"

    def _calls(self, finished: bool) -> list[dict[str, Any]]:
        if self.format == "hermes":
            end = self.text.rfind(_CLOSE)
            if end < 0 or end + len(_CLOSE) <= self.consumed:
                return []
            block = self.text[self.consumed : end + len(_CLOSE)]
            self.consumed = end + len(_CLOSE)
        elif finished:
            block = self.text
        else:
            return []
        calls = parse_assistant_output(block, self.format).to_openai().get("tool_calls", [])
        out = []
        for call in calls:
            out.append({"tool_calls": [{"index": self.sent_calls, **call}]})
            self.sent_calls += 1
        return out
