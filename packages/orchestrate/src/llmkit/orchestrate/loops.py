"""Loop detection: the same call with the same arguments, or a cycle of calls, gets an intervention
message; a loop that goes on after the intervention stops the run with the loop as its reason.

Calls are compared semantically: argument names and JSON key order, string case and whitespace, and
number formatting do not make two calls different (`{"q": " Paris "}` equals `{"q": "paris"}`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Literal

from llmkit.core.assistant_output import ToolCall


def normalize(value: Any) -> Any:
    """A form where semantically equal arguments are equal: strings folded, numbers as floats."""
    if isinstance(value, str):
        return " ".join(value.casefold().split())
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {str(k).casefold(): normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    return str(value)


def call_signature(call: ToolCall) -> str:
    return call.name + json.dumps(normalize(call.arguments), sort_keys=True, separators=(",", ":"))


def describe_call(call: ToolCall) -> str:
    return f"{call.name}({json.dumps(call.arguments, ensure_ascii=False, sort_keys=True)[:200]})"


@dataclasses.dataclass(frozen=True)
class LoopVerdict:
    action: Literal["intervene", "stop"]
    message: str  # to the model (intervene) or the run's stop detail (stop)


@dataclasses.dataclass
class LoopDetector:
    """`max_repeats`: an identical call made this many times in a row, or this many times in all, is a loop;
    a sequence of calls of length 2..`max_cycle` that repeats back-to-back is a cycle;
    `max_interventions`: how many times the model is warned before the run stops."""

    max_repeats: int = 2
    max_total_repeats: int = 3
    max_cycle: int = 4
    max_interventions: int = 1
    history: list[str] = dataclasses.field(default_factory=list)
    interventions: int = 0

    def observe(self, calls: Sequence[ToolCall]) -> LoopVerdict | None:
        """Record this step's calls; a verdict when they make a loop."""
        found = None
        for call in calls:
            self.history.append(call_signature(call))
            found = found or self._loop(call)
        if found is None:
            return None
        if self.interventions >= self.max_interventions:
            return LoopVerdict("stop", f"loop detected after {self.interventions} intervention(s): {found}")
        self.interventions += 1
        self.history.clear()  # the warning starts a new window
        return LoopVerdict(
            "intervene",
            f"Loop detected: {found}. Repeating it will give the same result. Use the results you already "
            "have to take a different step, or give your final answer now.",
        )

    def _loop(self, call: ToolCall) -> str | None:
        history, signature = self.history, self.history[-1]
        if len(history) >= self.max_repeats and all(s == signature for s in history[-self.max_repeats :]):
            return f"{describe_call(call)} was called {self.max_repeats} times in a row"
        if history.count(signature) >= self.max_total_repeats:
            return f"{describe_call(call)} was called {history.count(signature)} times"
        for period in range(2, self.max_cycle + 1):
            block = history[-period:]
            if len(history) >= 2 * period and block == history[-2 * period : -period] and len(set(block)) > 1:
                return f"the last {period} calls repeat the {period} before them (a cycle)"
        return None

    def fresh(self) -> LoopDetector:
        """The same settings with an empty history: the detector a new run starts with."""
        return dataclasses.replace(self, history=[], interventions=0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopDetector:
        return cls(**data)
