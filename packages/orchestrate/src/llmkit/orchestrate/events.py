"""Progress events an agent reports while it runs (the CLI's live display, tests, custom monitors)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

EVENT_KINDS = (
    "run_started",
    "step_started",
    "model_replied",
    "tool_started",
    "tool_finished",
    "intervention",
    "plan_made",
    "checkpoint_failed",
    "replanned",
    "handoff",
    "handoff_checked",
    "delegated",
    "run_finished",
)


@dataclasses.dataclass(frozen=True)
class AgentEvent:
    kind: str
    agent: str
    step: int
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


EventHandler = Callable[[AgentEvent], None]


def ignore_events(event: AgentEvent) -> None:
    """The default handler: nobody is watching."""
