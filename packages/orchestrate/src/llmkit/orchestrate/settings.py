"""What every agent is configured with, whatever its step policy: identity, sampling, limits, loop detection,
approval, checkpoints, tracing. ReAct, plan-and-execute and hierarchical agents share one `AgentSettings`, and
hand a narrowed copy of it to the agents they run inside themselves (a plan's operators, an objective's planner)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

from llmkit.core.sampling import SamplingParams

from .checkpoints import CheckpointStore
from .errors import OrchestrateError
from .events import EventHandler, ignore_events
from .gates import Approver, ToolPolicy, deny_all
from .limits import Limits, Pricing
from .loops import LoopDetector
from .tracing import Tracer

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful assistant that solves the task step by step with the tools you are given. "
    "Call a tool when you need a fact or a computation; when you have what the task asks for, give the "
    "final answer, using the tool results."
)
ToolChoice = Literal["auto", "required"]


@dataclasses.dataclass(frozen=True)
class AgentSettings:
    """`name` and `limits` left as None take the agent kind's default ("agent" and 10 steps for ReAct, "planner"
    and 20 for plan-and-execute, "strategist" and 40 for hierarchical). `policy` None: each tool's own permission;
    a tool the policy does not name is forbidden. `on_step` is called with the run's state after every step."""

    name: str | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # sampling
    params: SamplingParams | None = None
    constrain: bool | None = None  # None: constrain tool calls where the backend can
    pricing: Pricing | None = None
    seed: int = 0
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    # limits and loop detection
    limits: Limits | None = None
    loop_detector: LoopDetector = dataclasses.field(default_factory=LoopDetector)
    # approval
    policy: ToolPolicy | None = None
    approver: Approver = deny_all
    # guards (llmkit.core.guards, or specs like "prompt_injection"): tool arguments before a tool runs, tool
    # results before the model sees them
    guards: tuple[Any, ...] = ()
    # checkpoints, tracing, observers
    checkpoints: CheckpointStore | None = None
    tracer: Tracer | None = None
    on_event: EventHandler = ignore_events
    on_step: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        if self.tool_choice not in ("auto", "required"):
            raise OrchestrateError(f"tool_choice must be 'auto' or 'required', got {self.tool_choice!r}")
        if not isinstance(self.loop_detector, LoopDetector):
            raise OrchestrateError(f"loop_detector must be a LoopDetector, got {type(self.loop_detector).__name__}")

    @classmethod
    def of(cls, settings: AgentSettings | None, options: Mapping[str, Any]) -> AgentSettings:
        """`settings` (or the defaults) with keyword `options` on top; an unknown option is an error naming it."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(
                f"unknown agent option(s) {', '.join(unknown)}; the settings are: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(settings or cls(), **options)
