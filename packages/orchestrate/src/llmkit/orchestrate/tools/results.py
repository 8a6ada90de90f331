"""Tool results: what a call returned, as the text the model sees (size-limited) with its status."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from pydantic import BaseModel

ResultStatus = Literal["ok", "error", "invalid_arguments", "refused", "not_available", "not_run"]


@dataclasses.dataclass
class ToolResult:
    """One call's outcome; `content` is size-limited, `summary` is its one-line form once it ages."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    content: str
    status: ResultStatus = "ok"
    duration_s: float = 0.0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def summary(self) -> str:
        first = next((line.strip() for line in self.content.splitlines() if line.strip()), "(empty)")
        return f"{self.status}: {first[:100]}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def render_value(value: Any) -> str:
    """A tool's return value as text: strings as they are, models and containers as JSON."""
    if value is None:
        return "(no result)"
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, dict | list | tuple | int | float | bool):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def limit_text(text: str, max_chars: int) -> tuple[str, bool]:
    """At most `max_chars` characters; a cut says how much was left out."""
    if len(text) <= max_chars:
        return text, False
    kept = text[:max_chars]
    return f"{kept}\n[... cut: {len(text) - max_chars} more characters of {len(text)}]", True
