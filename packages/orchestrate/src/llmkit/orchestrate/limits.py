"""Run limits (steps, tokens, cost), prices per token, and the usage a run has accumulated."""

from __future__ import annotations

import dataclasses
from typing import Any

from .errors import OrchestrateError


@dataclasses.dataclass(frozen=True)
class Pricing:
    """Price per million prompt and completion tokens, in any currency unit."""

    prompt_per_million: float = 0.0
    completion_per_million: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt_per_million + completion_tokens * self.completion_per_million) / 1e6


@dataclasses.dataclass(frozen=True)
class Limits:
    """A run stops, with the limit as its reason, when one is reached. None means no limit."""

    max_steps: int = 10
    max_tokens: int | None = None  # prompt + completion tokens over the whole run
    max_cost: float | None = None  # in Pricing's unit
    max_calls_per_step: int = 8  # tool calls of one reply beyond this are answered "not run"

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_calls_per_step < 1:
            raise OrchestrateError("max_steps and max_calls_per_step must be at least 1")
        for name in ("max_tokens", "max_cost"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise OrchestrateError(f"{name} must be positive (or None for no limit), got {value}")


@dataclasses.dataclass
class Usage:
    """Tokens, calls and cost so far."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    cost: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add_call(self, prompt_tokens: int, completion_tokens: int, pricing: Pricing) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.model_calls += 1
        self.cost += pricing.cost(prompt_tokens, completion_tokens)

    def merge(self, other: Usage) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        return cls(**data)


def exceeded(limits: Limits, usage: Usage, steps_done: int) -> tuple[str, str] | None:
    """(stop reason, detail) for the first limit reached, else None."""
    if steps_done >= limits.max_steps:
        return "max_steps", f"reached the limit of {limits.max_steps} steps"
    if limits.max_tokens is not None and usage.total_tokens >= limits.max_tokens:
        return "max_tokens", f"used {usage.total_tokens} tokens; the limit is {limits.max_tokens}"
    if limits.max_cost is not None and usage.cost >= limits.max_cost:
        return "max_cost", f"spent {usage.cost:.6g}; the limit is {limits.max_cost:g}"
    return None


def remaining(limits: Limits, usage: Usage, steps_done: int, max_steps: int | None = None) -> Limits:
    """The budget left to a sub-run (an objective, a plan step): what `limits` allow after `usage`, with at most
    `max_steps` steps of its own."""
    steps = limits.max_steps - steps_done if max_steps is None else min(max_steps, limits.max_steps - steps_done)
    return Limits(
        max_steps=max(1, steps),
        max_tokens=None if limits.max_tokens is None else max(1, limits.max_tokens - usage.total_tokens),
        max_cost=None if limits.max_cost is None else max(1e-12, limits.max_cost - usage.cost),
        max_calls_per_step=limits.max_calls_per_step,
    )
