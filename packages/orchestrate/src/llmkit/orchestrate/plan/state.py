"""A plan-and-execute run at a step boundary: the plan, the values produced so far, the step in progress."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..limits import Usage
from .schema import PlanStep


@dataclasses.dataclass
class PlanState:
    """Everything a resumed plan-and-execute run needs, as JSON."""

    run_id: str
    task: str
    plan: list[dict[str, Any]] | None = None  # the current plan's steps (after a replan: the remaining work)
    position: int = 0  # index in `plan` of the next step to execute
    values: dict[str, Any] = dataclasses.field(default_factory=dict)  # named values produced so far
    done: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # completed steps and their values
    replans: int = 0
    attempts: int = 0  # executions of plan steps so far (seeds the operators)
    inner: dict[str, Any] | None = None  # the operator's RunState while a step is in progress
    usage: Usage = dataclasses.field(default_factory=Usage)
    steps: int = 0  # operator (ReAct) steps over the whole run
    saves: int = 0
    status: str = "running"
    answer: Any = None
    stop_reason: str | None = None
    detail: str = ""
    tool_log: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # plans, failed checks, replans

    def finish(self, reason: str, detail: str, answer: Any = None) -> None:
        self.status, self.stop_reason, self.detail, self.answer = "finished", reason, detail, answer

    def current_step(self) -> PlanStep | None:
        if self.plan is None or self.position >= len(self.plan):
            return None
        return PlanStep.model_validate(self.plan[self.position])

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["usage"] = self.usage.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanState:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["usage"] = Usage.from_dict(data["usage"])
        return cls(**values)
