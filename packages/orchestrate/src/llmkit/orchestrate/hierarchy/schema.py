"""The strategic level's output: the task decomposed into objectives, each handed to the tactical level."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..plan.schema import ValueName


class Objective(BaseModel):
    """One objective: a goal a tactical planner can pursue with a fresh context."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1, description="1 for the first objective, then 2, 3, ...")
    goal: str = Field(min_length=1, max_length=400, description="what to achieve, self-contained")
    context: str = Field(default="", max_length=1000, description="only the facts the goal needs")
    depends_on: list[int] = Field(default_factory=list, description="ids of earlier objectives whose results it uses")
    produces: ValueName = Field(description="the name of this objective's result, lower_snake_case")


class Decomposition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    objectives: list[Objective]


def decomposition_model(max_objectives: int) -> type[Decomposition]:
    """The schema with its bounds, so constrained decoding writes 1..max_objectives objectives."""
    return create_model(
        "Decomposition",
        __base__=Decomposition,
        objectives=(list[Objective], Field(min_length=1, max_length=max_objectives)),
    )


def decomposition_problems(decomposition: Decomposition, max_objectives: int) -> list[str]:
    """Shape problems: objective count, ids in order, dependencies on earlier objectives only, unique results."""
    objectives = decomposition.objectives
    problems = []
    if not 1 <= len(objectives) <= max_objectives:
        problems.append(f"{len(objectives)} objectives; there must be 1 to {max_objectives}")
    seen: set[str] = set()
    for position, objective in enumerate(objectives, 1):
        if objective.id != position:
            problems.append(f"objective {position} has id {objective.id}; ids must be 1, 2, 3, ... in order")
        later = [d for d in objective.depends_on if not 1 <= d < position]
        if later:
            problems.append(f"objective {position} depends on {later}; it may depend only on earlier objectives")
        if objective.produces in seen:
            problems.append(f"two objectives produce {objective.produces!r}")
        seen.add(objective.produces)
    return problems
