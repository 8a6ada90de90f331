"""A plan-and-execute run at a step boundary: the plan, the values produced so far, the step in progress."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..run_state import RunState
from .schema import PlanStep


@dataclasses.dataclass
class PlanState(RunState):
    """Everything a resumed plan-and-execute run needs, as JSON; `inner` holds the operator's state while a step
    is in progress, `steps` counts operator (ReAct) steps over the whole run."""

    plan: list[dict[str, Any]] | None = None  # the current plan's steps (after a replan: the remaining work)
    position: int = 0  # index in `plan` of the next step to execute
    values: dict[str, Any] = dataclasses.field(default_factory=dict)  # named values produced so far
    done: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # completed steps and their values
    replans: int = 0
    attempts: int = 0  # executions of plan steps so far (seeds the operators)

    def current_step(self) -> PlanStep | None:
        if self.plan is None or self.position >= len(self.plan):
            return None
        return PlanStep.model_validate(self.plan[self.position])
