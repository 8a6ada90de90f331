"""The plan: structured output against a schema built for this agent's tools and bounds, and the checks
of its shape before anything runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from ..errors import PlanError

VALUE_NAME = r"^[a-z][a-z0-9_]{0,31}$"
ValueName = Annotated[str, StringConstraints(pattern=VALUE_NAME)]


class PlanStep(BaseModel):
    """One step: what to do, the tools it may use, the named values it needs and must produce."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1, description="1 for the first step, then 2, 3, ...")
    instruction: str = Field(min_length=1, max_length=400, description="what this step does, self-contained")
    tools: list[str] = Field(default_factory=list, description="the tools this step needs (may be empty)")
    needs: list[str] = Field(default_factory=list, description="names of values produced by earlier steps")
    produces: list[str] = Field(min_length=1, max_length=4, description="names of the values this step produces")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[PlanStep]


@dataclasses.dataclass(frozen=True)
class PlanBounds:
    min_steps: int = 1
    max_steps: int = 6

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise PlanError(f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")


def plan_schema_model(bounds: PlanBounds, tool_names: Sequence[str]) -> type[Plan]:
    """A Plan model whose JSON Schema carries the bounds and the tool names, so constrained decoding can only
    write plans of an allowed length that name existing tools (the shape is still validated afterwards)."""
    tool_type: Any = Literal[tuple(tool_names)] if tool_names else str  # type: ignore[valid-type]
    step = create_model(
        "PlanStep",
        __base__=PlanStep,
        tools=(list[tool_type], Field(default_factory=list, max_length=max(len(tool_names), 0))),
        needs=(list[ValueName], Field(default_factory=list, max_length=4)),
        produces=(list[ValueName], Field(min_length=1, max_length=4)),
    )
    return create_model(
        "Plan",
        __base__=Plan,
        steps=(list[step], Field(min_length=bounds.min_steps, max_length=bounds.max_steps)),
    )


def plan_problems(plan: Plan, bounds: PlanBounds, tool_names: Iterable[str], inputs: Iterable[str] = ()) -> list[str]:
    """Everything wrong with the plan's shape (empty when it may run)."""
    problems = []
    count = len(plan.steps)
    if not bounds.min_steps <= count <= bounds.max_steps:
        problems.append(f"the plan has {count} steps; it must have {bounds.min_steps} to {bounds.max_steps}")
    known_tools, available = set(tool_names), set(inputs)
    produced_by: dict[str, int] = {}
    for position, step in enumerate(plan.steps, 1):
        if step.id != position:
            problems.append(f"step {position} has id {step.id}; ids must be 1, 2, 3, ... in order")
        unknown = sorted(set(step.tools) - known_tools)
        if unknown:
            problems.append(f"step {position} names unknown tools {unknown}; tools: {sorted(known_tools)}")
        missing = [n for n in step.needs if n not in available]
        if missing:
            problems.append(f"step {position} needs {missing}, which no earlier step produces")
        for name in step.produces:
            if name in produced_by:
                problems.append(f"steps {produced_by[name]} and {position} both produce {name!r}")
            produced_by.setdefault(name, position)
            available.add(name)
    return problems


def validate_plan(plan: Plan, bounds: PlanBounds, tool_names: Iterable[str], inputs: Iterable[str] = ()) -> Plan:
    problems = plan_problems(plan, bounds, tool_names, inputs)
    if problems:
        raise PlanError("invalid plan: " + "; ".join(problems))
    return plan
