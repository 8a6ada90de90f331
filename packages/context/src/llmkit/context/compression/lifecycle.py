"""The tool-result lifecycle: verbatim while fresh, a one-line summary for a while, then evicted."""

from __future__ import annotations

import dataclasses

from ..errors import ContextError
from ..items import ContextItem
from .base import HistoryView


def one_line_summary(item: ContextItem, text: str, max_chars: int = 120) -> str:
    """The result's own summary if it gave one, else its first non-empty line, with its size."""
    name = item.metadata.get("name", "tool")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    head = item.metadata.get("summary") or (lines[0] if lines else "(empty)")
    if len(head) > max_chars:
        head = head[: max_chars - 1] + "…"
    return f"[{name} result, {len(lines)} lines, summarized: {head}]"


@dataclasses.dataclass
class ToolResultLifecycle:
    """Tool results younger than `verbatim_turns` stay verbatim; until `summary_turns`, one line; then gone."""

    verbatim_turns: int = 2
    summary_turns: int = 6
    name: str = "tool_results"

    def __post_init__(self) -> None:
        if not 0 <= self.verbatim_turns <= self.summary_turns:
            raise ContextError(
                f"need 0 <= verbatim_turns <= summary_turns, got {self.verbatim_turns}, {self.summary_turns}"
            )

    def apply(self, view: HistoryView) -> None:
        for item in view.items:
            text = view.text(item)
            if item.kind != "tool_result" or text is None:
                continue
            age = view.current_turn - item.turn
            if age < self.verbatim_turns:
                continue
            if age < self.summary_turns:
                view.decide(item, self.name, "summarize", f"tool result {age} turns old", one_line_summary(item, text))
            else:
                view.decide(item, self.name, "evict", f"tool result {age} turns old (limit {self.summary_turns})", None)
