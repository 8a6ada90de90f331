"""Guards on tool calls (`AgentSettings.guards`): arguments are checked before a tool runs, results before the
model sees them. A block becomes a tool error the agent reads (and a warning in the log); a redaction replaces
the matched text."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from llmkit.core.assistant_output import ToolCall
from llmkit.core.guards import Guard, check_all, open_guard

from .results import ToolResult

logger = logging.getLogger(__name__)

GuardLike = Guard | str  # a guard, or a spec such as "prompt_injection" or "pii:action=block"


def open_guards(guards: Sequence[GuardLike]) -> list[Guard]:
    return [open_guard(g) if isinstance(g, str) else g for g in guards]


def blocked_arguments(guards: Sequence[Guard], call: ToolCall, kwargs: dict[str, Any]) -> str | None:
    """The error the agent sees when a guard blocks the call's arguments, else None."""
    text = json.dumps(kwargs, ensure_ascii=False, default=str)
    outcome = check_all(guards, text, "tool_arguments")
    if outcome.blocked is None:
        return None
    verdict = outcome.blocked
    logger.warning("guard %s blocked a call of %s: %s", verdict.guard, call.name, verdict.reason)
    return (
        f"error: guard '{verdict.guard}' blocked this call of {call.name} ({verdict.category}): {verdict.reason}. "
        "The tool did not run."
    )


def guarded_result(guards: Sequence[Guard], result: ToolResult) -> ToolResult:
    """`result` as the model may see it: withheld (status error) when a guard blocks it, or redacted."""
    outcome = check_all(guards, result.content, "tool_result")
    if outcome.blocked is not None:
        verdict = outcome.blocked
        logger.warning("guard %s withheld the result of %s: %s", verdict.guard, result.name, verdict.reason)
        result.content = (
            f"error: guard '{verdict.guard}' withheld the result of {result.name} ({verdict.category}): "
            f"{verdict.reason}. Do not rely on this tool result."
        )
        result.status = "error"
    elif outcome.spans:
        result.content = outcome.redacted
    return result
