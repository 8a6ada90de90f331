"""What a run is at a step boundary (saved as a checkpoint), what it returns, and the final-answer tool."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from .errors import CheckpointError
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
    """What every run is at a step boundary, saved whole as JSON after every step: usage, steps, the loop
    detector's history, the outcome, the tool log, and the state of a sub-run in progress (`inner`). Each agent
    kind adds its own fields (`ReActState`, `PlanState`, `HierarchyState`)."""

    run_id: str
    task: str
    usage: Usage = dataclasses.field(default_factory=Usage)
    loops: LoopDetector = dataclasses.field(default_factory=LoopDetector)
    steps: int = 0  # steps completed (for plans and hierarchies: their operators' steps)
    saves: int = 0  # the checkpoint row the next save writes
    status: str = "running"  # running, finished
    answer: Any = None
    stop_reason: str | None = None
    detail: str = ""
    tool_log: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # plans, checks, replans, handoffs
    inner: dict[str, Any] | None = None  # the state of the sub-run in progress (a plan step's operator, ...)

    # fields saved through their own to_dict/from_dict
    nested: ClassVar[dict[str, Any]] = {"usage": Usage, "loops": LoopDetector}

    def finish(self, reason: str, detail: str, answer: Any = None) -> None:
        self.status, self.stop_reason, self.detail, self.answer = "finished", reason, detail, answer

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (later changes to the state do not reach it)."""
        return {
            field.name: getattr(self, field.name).to_dict()
            if field.name in self.nested
            else copy.deepcopy(getattr(self, field.name))
            for field in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        data = dict(data)
        if "step" in data and "steps" not in data:  # ReAct states saved before the run states were unified
            data["steps"] = data.pop("step")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise CheckpointError(f"a saved {cls.__name__} has fields this version does not know: {', '.join(unknown)}")
        try:
            return cls(**{k: cls.nested[k].from_dict(v) if k in cls.nested else v for k, v in data.items()})
        except (TypeError, KeyError) as err:
            raise CheckpointError(f"a saved {cls.__name__} is incomplete or malformed: {err}") from None


@dataclasses.dataclass
class ReActState(RunState):
    """A ReAct run adds its transcript."""

    memory: AgentMemory = dataclasses.field(kw_only=True)

    nested: ClassVar[dict[str, Any]] = {**RunState.nested, "memory": AgentMemory}


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
