"""What a run is at a step boundary (saved as a checkpoint), what it returns, and the final-answer tool."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .limits import Usage
from .loops import LoopDetector
from .memory import AgentMemory
from .tools.schema import parameters_schema
from .tools.tool import Tool

FINAL_ANSWER = "final_answer"
STOP_REASONS = (
    "answer",
    "max_steps",
    "max_tokens",
    "max_cost",
    "loop",
    "context_length",
    "invalid_plan",
    "replan_limit",
    "handoff_rejected",
    "failed",
)


class TextAnswer(BaseModel):
    """The default final answer: one text."""

    model_config = ConfigDict(extra="forbid")
    answer: str = Field(description="the final answer to the task, using the tool results")


def final_answer_tool(schema: type[BaseModel] | None) -> Tool:
    """The tool that ends a run; its arguments are the answer (validated against `schema`)."""
    model = schema or TextAnswer

    def final_answer(**answer: Any) -> str:
        return "accepted"

    return Tool(
        FINAL_ANSWER,
        "Give the final answer to the task and finish. Call it once you have what the task asks for.",
        parameters_schema(model),
        final_answer,
        model,
    )


def answer_value(arguments: dict[str, Any], schema: type[BaseModel] | None) -> Any:
    """The answer a run returns: the text for the default schema, else the validated object as a dict."""
    if schema is None:
        return arguments["answer"]
    return {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in arguments.items()}


@dataclasses.dataclass
class RunState:
    """Everything a resumed run needs, as JSON: the transcript, usage, loop history, step count, outcome."""

    run_id: str
    task: str
    memory: AgentMemory
    usage: Usage = dataclasses.field(default_factory=Usage)
    loops: LoopDetector = dataclasses.field(default_factory=LoopDetector)
    step: int = 0  # steps completed
    status: str = "running"  # running, finished
    answer: Any = None
    stop_reason: str | None = None
    detail: str = ""
    tool_log: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def finish(self, reason: str, detail: str, answer: Any = None) -> None:
        self.status, self.stop_reason, self.detail, self.answer = "finished", reason, detail, answer

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task": self.task,
            "memory": self.memory.to_dict(),
            "usage": self.usage.to_dict(),
            "loops": self.loops.to_dict(),
            "step": self.step,
            "status": self.status,
            "answer": self.answer,
            "stop_reason": self.stop_reason,
            "detail": self.detail,
            "tool_log": self.tool_log,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        return cls(
            data["run_id"],
            data["task"],
            AgentMemory.from_dict(data["memory"]),
            Usage.from_dict(data["usage"]),
            LoopDetector.from_dict(data["loops"]),
            data["step"],
            data["status"],
            data["answer"],
            data["stop_reason"],
            data["detail"],
            data["tool_log"],
        )


@dataclasses.dataclass
class AgentResult:
    """How a run ended: `stop_reason` is "answer" when it answered, else the limit or failure that stopped it."""

    run_id: str
    answer: Any
    stop_reason: str
    detail: str
    steps: int
    usage: Usage
    messages: list[dict[str, Any]]
    tool_log: list[dict[str, Any]]
    values: dict[str, Any] = dataclasses.field(default_factory=dict)  # plan runs: the named values produced
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # plans, checks, replans, handoffs

    @property
    def ok(self) -> bool:
        return self.stop_reason == "answer"

    @classmethod
    def of(cls, state: RunState) -> AgentResult:
        return cls(
            state.run_id,
            state.answer,
            state.stop_reason or "failed",
            state.detail,
            state.step,
            state.usage,
            state.memory.render(state.step + 1),
            state.tool_log,
        )
